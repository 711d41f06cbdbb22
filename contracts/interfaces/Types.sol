// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice Parameters of a training job, fixed at creation. Units: token base units for
/// amounts, seconds for durations, basis points (1/10000) for fractions.
struct JobParams {
    /// sha256 of the canonical JSON job spec (its CID is in the JobCreated event)
    bytes32 specDigest;
    /// sha256 of the initial global checkpoint G_0
    bytes32 initialModelDigest;
    /// number of DiLoCo rounds R, 1..1000
    uint32 rounds;
    /// slots per round W, 1..256
    uint32 slotsPerRound;
    /// checkpoints per slot minus one: H / c segments, 1..4096
    uint32 numSegments;
    /// segments sampled for re-execution (k), 1..min(32, numSegments)
    uint32 sampleCount;
    /// paid to the node of each accepted slot, < 2^96
    uint128 rewardPerSlot;
    /// paid to the verifier of each accepted slot, < 2^96
    uint128 verifierFee;
    /// seconds a claim stays valid before another node may take the slot, 1..2^32-1
    uint64 claimTimeout;
    /// the fraction f of segments a cheat is assumed to fake, in basis points, 1..10000;
    /// createJob refuses the job unless detection p = 1-(1-f)^k makes cheating a loss
    uint16 cheatFractionBps;
    /// seconds after the seed is recorded within which the node must publish the sampled
    /// checkpoints and call `Settlement.reveal` (capped at the attest window); 0: every
    /// checkpoint is published at submission and nothing needs revealing
    uint32 revealWindow;
}

/// @notice Lifecycle of a job: Open -> Completed (last round aggregated) or Cancelled (by the
/// sponsor). Both end states let the sponsor take back every token nothing can still claim.
enum JobStatus {
    None,
    Open,
    Completed,
    Cancelled
}

/// @notice Lifecycle of a slot within a round: Open -> Claimed -> Submitted -> Accepted; an
/// expired claim or a rejected contribution returns it to Open.
enum SlotStatus {
    Open,
    Claimed,
    Submitted,
    Accepted
}

/// @notice Lifecycle of a contribution as JobMarket reports it.
enum ContributionStatus {
    None,
    Submitted,
    Accepted,
    Rejected
}

/// @notice A node's submitted work for one slot, as `JobMarket.getContribution` returns it.
/// (Storage keeps a packed form; `stakeLocked` is always `minNodeStake`.)
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

/// @notice Where a contribution stands in Settlement: seed recorded and verifier assigned,
/// under dispute, finally accepted or rejected, or seed recorded and waiting for a verifier.
enum Phase {
    None,
    Assigned,
    Disputed,
    Accepted,
    Rejected,
    /// seed recorded (the sample is fixed) but no verifier assigned yet: no eligible verifier
    /// was drawn, or a missed assignment awaits its fresh draw
    Queued
}

/// @notice Lifecycle of a round's aggregate G_{r+1}: Pending (challenge window open) ->
/// Disputed (a committee is judging it) -> Pending again (upheld or replaced) -> Final.
enum AggregateStatus {
    None,
    Pending,
    Disputed,
    Final
}

/// @notice What a dispute is about.
enum DisputeKind {
    None,
    /// the node contests a verifier's fail
    Contest,
    /// a staked party challenges a verifier's pass
    Challenge,
    /// a staked party challenges a posted round aggregate
    Aggregate
}

/// @notice Lifecycle of a dispute: opened -> committee drawn (voting) -> resolved.
enum DisputeStatus {
    None,
    AwaitingCommittee,
    Voting,
    Resolved
}

/// @notice A committee's ruling on the disputed subject (a contribution's work, or an
/// aggregate's digest): Valid or Invalid by a strict majority of the votes cast; Undecided on
/// a tie or no votes, in which case the original verdict (or the posted aggregate) stands.
enum Ruling {
    None,
    Valid,
    Invalid,
    Undecided
}
