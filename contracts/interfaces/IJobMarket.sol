// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {JobParams, Contribution} from "./Types.sol";

/// @notice Errors of the JobMarket.
interface IJobMarketErrors {
    error JobMarketInvalidParams(string reason);
    error JobMarketCheatingPays(uint256 detectionWad, uint256 minNodeStake, uint256 rewardPerSlot);
    error JobMarketUnknownJob(uint256 jobId);
    error JobMarketJobNotOpen(uint256 jobId);
    error JobMarketWrongRound(uint256 jobId, uint256 round, uint256 currentRound);
    error JobMarketSlotOutOfRange(uint256 slot, uint256 slotsPerRound);
    error JobMarketSlotTaken(uint256 jobId, uint256 round, uint256 slot);
    error JobMarketNotClaimed(uint256 jobId, uint256 round, uint256 slot);
    error JobMarketClaimNotExpired(uint256 deadline);
    error JobMarketNotClaimant(address caller, address claimant);
    error JobMarketClaimExpired(uint256 deadline);
    error JobMarketUnknownContribution(uint256 contributionId);
    error JobMarketContributionSettled(uint256 contributionId);
    error JobMarketRoundIncomplete(uint256 jobId, uint256 round, uint256 accepted, uint256 needed);
    error JobMarketAggregateExists(uint256 jobId, uint256 round);
    error JobMarketNoPendingAggregate(uint256 jobId, uint256 round);
    error JobMarketAggregateWindowOpen(uint256 jobId, uint256 round, uint256 readyAt);
    error JobMarketAggregateWindowClosed(uint256 jobId, uint256 round, uint256 deadline);
    error JobMarketAggregateNotDisputed(uint256 jobId, uint256 round);
    error JobMarketAggregatePending(uint256 jobId, uint256 round);
    error JobMarketNotSponsor(address caller);
    error JobMarketNotFinished(uint256 jobId);
    error JobMarketNothingToRefund(uint256 jobId);
}

/// @notice Events of the JobMarket, read by the indexer, nodes, verifiers, sponsors and auditors.
interface IJobMarketEvents {
    /// a bounty posted; `escrow` moved from the sponsor into the StakeRegistry vault
    event JobCreated(
        uint256 indexed jobId, address indexed sponsor, JobParams params, string specCid, string initialModelCid, uint256 escrow
    );
    /// a slot claimed; the node's `minNodeStake` is locked until `deadline` (inclusive) passes
    /// or its contribution settles
    event SlotClaimed(uint256 indexed jobId, uint256 round, uint256 slot, address indexed node, uint256 deadline);
    /// an expired claim released (by takeover or by `expireClaim`); the node's lock is released
    event ClaimExpired(uint256 indexed jobId, uint256 round, uint256 slot, address indexed node);
    event ContributionSubmitted(
        uint256 indexed contributionId,
        uint256 indexed jobId,
        uint256 round,
        uint256 slot,
        address indexed node,
        bytes32 outputDigest,
        bytes32 traceRoot,
        string outputCid,
        string manifestCid
    );
    /// JobMarket's side of settlement: `reward` and `fee` left escrow (rejected: both zero and
    /// the slot reopens)
    event ContributionSettled(uint256 indexed contributionId, bool accepted, uint256 reward, uint256 fee);
    /// G_{r+1} proposed; its poster's `disputeBond` is locked; challengeable until `challengeDeadline`
    event AggregatePosted(
        uint256 indexed jobId,
        uint256 round,
        bytes32 modelDigest,
        string modelCid,
        uint256 validationLossMicro,
        address indexed poster,
        uint256 challengeDeadline
    );
    /// a pending aggregate went to a dispute committee
    event AggregateDisputed(uint256 indexed jobId, uint256 round, uint256 indexed disputeId);
    /// the committee upheld the aggregate: it is pending again (final once its window has passed)
    event AggregateUpheld(uint256 indexed jobId, uint256 round);
    /// the committee found the aggregate wrong: the challenger's digest replaces it, with a new
    /// challenge window
    event AggregateReplaced(
        uint256 indexed jobId,
        uint256 round,
        bytes32 modelDigest,
        string modelCid,
        uint256 validationLossMicro,
        address indexed poster,
        uint256 challengeDeadline
    );
    /// the round's aggregate is final and the job moved to round `round + 1`
    event RoundAggregated(
        uint256 indexed jobId, uint256 round, bytes32 modelDigest, string modelCid, uint256 validationLossMicro, address indexed poster
    );
    event JobCompleted(uint256 indexed jobId);
    /// the sponsor stopped the job: no new claims; work in flight still settles
    event JobCancelled(uint256 indexed jobId, uint256 round);
    event EscrowRefunded(uint256 indexed jobId, address indexed sponsor, uint256 amount);
}

/// @notice Job escrow, rounds, slot claims, contribution records and round aggregates.
interface IJobMarket is IJobMarketErrors, IJobMarketEvents {
    /// @notice Seconds after a verdict or an aggregate during which it can be disputed.
    function challengeWindow() external view returns (uint256);
    /// @notice A contribution's record (empty, status None, if unknown).
    function getContribution(uint256 contributionId) external view returns (Contribution memory);
    /// @notice A job's parameters as created.
    function jobParams(uint256 jobId) external view returns (JobParams memory);

    /// @notice The verifier fee of the job a contribution belongs to (token units).
    function verifierFeeOf(uint256 contributionId) external view returns (uint256);
    /// @notice The reveal window of the job a contribution belongs to (seconds; 0: nothing to
    /// reveal, every checkpoint is published at submission).
    function revealWindowOf(uint256 contributionId) external view returns (uint256);
    /// @notice Settle a contribution (Settlement only). Accepted: the slot is done and
    /// `reward` (+ `fee` when `payFee`) leave the job's escrow; rejected: the slot reopens.
    /// @return node the contribution's node
    /// @return reward what the node is owed (zero when rejected)
    /// @return fee what the verifier is owed (zero when rejected or not `payFee`)
    function settleContribution(uint256 contributionId, bool accepted, bool payFee)
        external
        returns (address node, uint256 reward, uint256 fee);

    /// @notice Put a pending aggregate under dispute (Disputes only), within its challenge window.
    /// @return poster who posted it
    /// @return modelDigest what was posted
    function disputeAggregate(uint256 jobId, uint256 round, uint256 disputeId)
        external
        returns (address poster, bytes32 modelDigest);

    /// @notice Close an aggregate's dispute (Disputes only): keep it, or replace it by the
    /// challenger's, whose bond becomes the aggregate's bond.
    function resolveAggregate(
        uint256 jobId,
        uint256 round,
        bool replace,
        address newPoster,
        bytes32 newDigest,
        string calldata newCid,
        uint256 newLossMicro
    ) external;
}
