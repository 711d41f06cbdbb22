// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {JobParams, JobStatus, SlotStatus, Contribution} from "./Types.sol";

/// @notice Errors of the JobMarket.
interface IJobMarketErrors {
    error JobMarketInvalidParams(string reason);
    error JobMarketUnknownJob(uint256 jobId);
    error JobMarketJobNotOpen(uint256 jobId);
    error JobMarketWrongRound(uint256 jobId, uint256 round, uint256 currentRound);
    error JobMarketSlotOutOfRange(uint256 slot, uint256 slotsPerRound);
    error JobMarketSlotTaken(uint256 jobId, uint256 round, uint256 slot);
    error JobMarketNotClaimant(address caller, address claimant);
    error JobMarketClaimExpired(uint256 deadline);
    error JobMarketUnknownContribution(uint256 contributionId);
    error JobMarketContributionSettled(uint256 contributionId);
    error JobMarketRoundIncomplete(uint256 jobId, uint256 round, uint256 accepted, uint256 needed);
    error JobMarketNotStaked(address account);
    error JobMarketNotSponsor(address caller);
    error JobMarketNotCompleted(uint256 jobId);
    error JobMarketNothingToRefund(uint256 jobId);
}

/// @notice Events of the JobMarket, read by the indexer, nodes and auditors.
interface IJobMarketEvents {
    event JobCreated(
        uint256 indexed jobId, address indexed sponsor, JobParams params, string specCid, string initialModelCid, uint256 escrow
    );
    event SlotClaimed(uint256 indexed jobId, uint256 round, uint256 slot, address indexed node, uint256 deadline);
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
    event ContributionSettled(uint256 indexed contributionId, bool accepted, uint256 reward, uint256 fee);
    event RoundAggregated(
        uint256 indexed jobId, uint256 round, bytes32 modelDigest, string modelCid, uint256 validationLossMicro, address indexed poster
    );
    event JobCompleted(uint256 indexed jobId);
    event EscrowRefunded(uint256 indexed jobId, address indexed sponsor, uint256 amount);
}

/// @notice Job escrow, rounds, slot claims and contribution records.
interface IJobMarket is IJobMarketErrors, IJobMarketEvents {
    function getContribution(uint256 contributionId) external view returns (Contribution memory);
    function jobParams(uint256 jobId) external view returns (JobParams memory);
    function settleContribution(uint256 contributionId, bool accepted) external;
}
