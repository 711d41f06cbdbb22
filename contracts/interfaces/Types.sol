// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice Parameters of a training job, fixed at creation. Units: token base units for
/// amounts, blocks for durations.
struct JobParams {
    /// sha256 of the canonical JSON job spec (its CID is in the JobCreated event)
    bytes32 specDigest;
    /// sha256 of the initial global checkpoint G_0
    bytes32 initialModelDigest;
    /// number of DiLoCo rounds R
    uint32 rounds;
    /// slots per round W
    uint32 slotsPerRound;
    /// checkpoints per slot minus one: H / c segments
    uint32 numSegments;
    /// segments sampled for re-execution (k)
    uint32 sampleCount;
    /// paid to the node of each accepted slot
    uint128 rewardPerSlot;
    /// paid to the verifier of each accepted slot
    uint128 verifierFee;
    /// blocks a claim stays valid before another node may take the slot
    uint64 claimTimeout;
}

/// @notice Lifecycle of a job.
enum JobStatus {
    None,
    Open,
    Completed
}

/// @notice Lifecycle of a slot within a round.
enum SlotStatus {
    Open,
    Claimed,
    Submitted,
    Accepted
}

/// @notice Lifecycle of a contribution.
enum ContributionStatus {
    None,
    Submitted,
    Accepted,
    Rejected
}

/// @notice A node's submitted work for one slot. Packed into four storage words.
struct Contribution {
    address node;
    uint64 jobId;
    uint32 round;
    uint32 slot;
    uint64 submitBlock;
    uint128 stakeLocked;
    ContributionStatus status;
    bytes32 outputDigest;
    bytes32 traceRoot;
}

/// @notice Verdict of the assigned verifier.
enum Verdict {
    None,
    Pass,
    Fail
}
