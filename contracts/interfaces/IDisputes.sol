// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {DisputeKind, DisputeStatus, Ruling} from "./Types.sol";

/// @notice Errors of the Disputes contract.
interface IDisputesErrors {
    error DisputesInvalidParams(string reason);
    error DisputesUnknownDispute(uint256 disputeId);
    error DisputesNotAwaitingCommittee(uint256 disputeId);
    error DisputesSeedNotReady(uint256 disputeId, uint256 seedBlock);
    error DisputesNotVoting(uint256 disputeId);
    error DisputesVoteWindowClosed(uint256 disputeId, uint256 deadline);
    error DisputesVoteWindowOpen(uint256 disputeId, uint256 deadline);
    error DisputesNotMember(address caller);
    error DisputesAlreadyVoted(address member);
    error DisputesPartyCannotChallenge(address caller);
    error DisputesSameDigest(bytes32 digest);
}

/// @notice Events of the Disputes contract, read by verifiers (committee duty), nodes,
/// aggregators, the indexer and auditors.
interface IDisputesEvents {
    /// a dispute opened: the disputer's `disputeBond` is locked; its committee is drawn from the
    /// hash of `seedBlock`. Contribution disputes carry `contributionId` (job and round zero);
    /// aggregate disputes carry `jobId` and `round` (contribution zero).
    event DisputeOpened(
        uint256 indexed disputeId,
        DisputeKind kind,
        uint256 indexed contributionId,
        uint256 indexed jobId,
        uint256 round,
        address disputer,
        address defendant,
        uint256 seedBlock
    );
    /// the aggregate a challenger says is right (sha256, CID and validation loss of its G_{r+1})
    event AlternativeAggregate(uint256 indexed disputeId, bytes32 modelDigest, string modelCid, uint256 validationLossMicro);
    /// the committee seed block's hash expired undrawn: the seed comes from `newSeedBlock`
    event CommitteeSeedReset(uint256 indexed disputeId, uint256 newSeedBlock);
    /// fewer votes than the quorum: round `round` draws a new committee with the hash of
    /// `seedBlock` (`absent` members of the last one were slashed their seat lock)
    event DisputeEscalated(uint256 indexed disputeId, uint256 round, uint256 absent, uint256 seedBlock);
    /// the committee (each member's `verifierLock` locked) votes until `voteDeadline` inclusive
    /// (unix seconds)
    event CommitteeDrawn(uint256 indexed disputeId, bytes32 seed, address[] members, uint256 voteDeadline);
    /// `valid`: the node's work is honest (contribution) or the posted aggregate is right
    event Voted(uint256 indexed disputeId, address indexed member, bool valid, string reportCid);
    /// the dispute settled; `absent` members were slashed their seat lock
    event DisputeResolved(
        uint256 indexed disputeId, Ruling ruling, uint256 validVotes, uint256 invalidVotes, uint256 absent
    );
}

/// @notice Disputes of verdicts and aggregates, judged by committees of staked verifiers.
interface IDisputes is IDisputesErrors, IDisputesEvents {
    /// @notice A dispute's record.
    struct DisputeView {
        DisputeKind kind;
        DisputeStatus status;
        Ruling ruling;
        uint256 contributionId;
        uint256 jobId;
        uint256 round;
        address disputer;
        address node;
        address defendant;
        uint256 seedBlock;
        bytes32 seed;
        uint256 voteDeadline;
        address[] members;
        uint256 validVotes;
        uint256 invalidVotes;
        /// escalation round (0 = first committee)
        uint256 escalation;
    }
}
