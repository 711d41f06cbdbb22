// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Verdict, Phase} from "./Types.sol";

/// @notice Errors of the Settlement contract.
interface ISettlementErrors {
    error SettlementInvalidParams(string reason);
    error SettlementNotSubmitted(uint256 contributionId);
    error SettlementSeedAlreadyRecorded(uint256 contributionId);
    error SettlementSeedNotReady(uint256 contributionId, uint256 seedBlock);
    error SettlementSeedNotRecorded(uint256 contributionId);
    error SettlementNoVerifiers();
    error SettlementNotAssignedVerifier(address caller, address assigned);
    error SettlementAlreadyAttested(uint256 contributionId);
    error SettlementAttestWindowClosed(uint256 contributionId, uint256 deadline);
    error SettlementAttestWindowOpen(uint256 contributionId, uint256 deadline);
    error SettlementNotEligible(address caller);
    error SettlementNotAttested(uint256 contributionId);
    error SettlementAlreadyFinalized(uint256 contributionId);
    error SettlementUnderDispute(uint256 contributionId);
    error SettlementNotDisputed(uint256 contributionId);
    error SettlementChallengeWindowOpen(uint256 contributionId, uint256 readyBlock);
    error SettlementChallengeWindowClosed(uint256 contributionId, uint256 deadline);
    error SettlementNotNode(address caller, address node);
    error SettlementPartyCannotChallenge(address caller);
    error SettlementSeedExpired(uint256 contributionId, uint256 seedBlock);
    error SettlementSeedReadable(uint256 contributionId, uint256 seedBlock);
    error SettlementNotQueued(uint256 contributionId);
    error SettlementNotRevealed(uint256 contributionId);
    error SettlementAlreadyRevealed(uint256 contributionId);
    error SettlementRevealWindowClosed(uint256 contributionId, uint256 deadline);
    error SettlementRevealWindowOpen(uint256 contributionId, uint256 deadline);
}

/// @notice Events of the Settlement contract, read by verifiers, nodes, the indexer, auditors.
interface ISettlementEvents {
    /// the sampling seed (fixed for good) and the assigned verifier (whose `verifierLock` is now
    /// locked); `verifier` is zero when the draw was queued (see VerifierQueued)
    event SeedRecorded(uint256 indexed contributionId, bytes32 seed, uint256 seedBlock, address indexed verifier);
    /// a verifier was assigned (by recordSeed or assignVerifier) with ticket `counter`; it must
    /// attest by `deadline` (unix seconds, inclusive; later when the node reveals after this:
    /// the window then runs from the reveal)
    event VerifierAssigned(uint256 indexed contributionId, address indexed verifier, uint256 counter, uint256 deadline);
    /// no eligible verifier was drawn: the draw continues at ticket `nextCounter` (assignVerifier)
    event VerifierQueued(uint256 indexed contributionId, uint256 nextCounter);
    /// a takeover's seed block hash expired before its draw: the seed comes from `newSeedBlock`
    /// (the sample is unaffected)
    event TakeoverSeedReset(uint256 indexed contributionId, uint256 newSeedBlock);
    /// the seed was never recorded while `seedBlock`'s hash was readable: the contribution failed
    event SeedExpired(uint256 indexed contributionId, uint256 seedBlock);
    /// a verdict; `recomputedDigestsHash` commits to the digests the verifier recomputed
    event Attested(
        uint256 indexed contributionId, address indexed verifier, bool pass, string reportCid, bytes32 recomputedDigestsHash
    );
    /// the assigned verifier missed its window: its lock was slashed and burned (`penalty`);
    /// takeover number `takeover` is drawn with the hash of `drawBlock` (zero: no takeover left,
    /// the slot is redone without slashing the node)
    event AttestationMissed(
        uint256 indexed contributionId,
        address indexed previousVerifier,
        uint256 penalty,
        uint256 takeover,
        uint256 drawBlock
    );
    /// the node published the sampled checkpoints (their CIDs are in the manifest; availability
    /// on demand): the verifier may now fetch them and attest
    event CheckpointsRevealed(uint256 indexed contributionId, address indexed node, uint256 revealedAt);
    /// the node did not reveal by `deadline`: the contribution failed as a failed check would
    event RevealMissed(uint256 indexed contributionId, address indexed node, uint256 deadline);
    /// a verdict went to a dispute committee (Disputes)
    event VerdictDisputed(uint256 indexed contributionId, uint256 indexed disputeId, address indexed disputer);
    /// money moved for a contribution: reward to the node, payment (fee or slash share) to the
    /// verifier, node stake slashed (plus the verifier's, on a lost dispute)
    event ContributionFinalized(
        uint256 indexed contributionId, bool accepted, uint256 nodeReward, uint256 verifierPayment, uint256 slashed
    );
}

/// @notice Seeds, sampling, verifier assignment, attestations and the settlement of verdicts.
interface ISettlement is ISettlementErrors, ISettlementEvents {
    /// @notice What the chain knows about a contribution's verification. The first seven fields
    /// keep the layout of the first release; `seedRecordedAt` is the start of the current
    /// assignment (unix seconds; it moves when a missed assignment is taken over). All times are
    /// unix seconds; `seedBlock` and `snapshotBlock` are block numbers.
    struct Verification {
        bytes32 seed;
        uint64 seedBlock;
        uint64 seedRecordedAt;
        address verifier;
        Verdict verdict;
        uint64 attestedAt;
        bool finalized;
        Phase phase;
        uint64 attestDeadline;
        uint64 challengeDeadline;
        /// snapshot block of the current verifier draw
        uint64 snapshotBlock;
        /// next ticket counter of the current draw
        uint64 drawCounter;
        /// missed-attestation takeovers so far
        uint64 takeovers;
        /// the verifier that missed its window last
        address previousVerifier;
        /// seed of a queued draw (zero when not queued, or a takeover awaits its seed block)
        bytes32 drawSeed;
        /// what the verdict committed to (see `attest`)
        bytes32 recomputedDigestsHash;
        /// when the node must have revealed the sampled checkpoints (0: nothing to reveal, the
        /// job publishes every checkpoint at submission, or no seed yet)
        uint64 revealDeadline;
        /// when it did (0: not yet)
        uint64 revealedAt;
    }

    /// @notice Seconds after an assignment within which its verifier must attest.
    function attestWindow() external view returns (uint256);
    /// @notice Node stake locked per claim (the registry's `minNodeStake`).
    function nodeLock() external view returns (uint256);
    /// @notice Verifier stake locked per assignment (the registry's `verifierLock`).
    function verifierLock() external view returns (uint256);
    /// @notice The segment indices the verifier must re-execute (needs the seed).
    function sampledSegments(uint256 contributionId) external view returns (uint256[] memory);

    /// @notice Settle an attested, undisputed, unfinalized contribution as a revealed canary
    /// (Canaries only): rejected, no escrow moves, the slot reopens; the locks are left to the
    /// caller, which pays or slashes the verifier and releases the node.
    /// @return verifier the assigned verifier
    /// @return verdict its verdict
    function settleCanary(uint256 contributionId) external returns (address verifier, Verdict verdict);
    /// @notice Seconds after a verdict during which it can be disputed (JobMarket's window).
    function challengeWindow() external view returns (uint256);

    /// @notice Put an attested contribution under dispute (Disputes only) within its challenge
    /// window. A fail may only be contested by its node; a pass may be challenged by anyone but
    /// its node and verifier.
    /// @return node the contribution's node
    /// @return verifier its assigned verifier
    /// @return verdict the disputed verdict
    function openDispute(uint256 contributionId, address disputer, uint256 disputeId)
        external
        returns (address node, address verifier, Verdict verdict);

    /// @notice How a committee's ruling settles a disputed contribution.
    struct DisputeSettlement {
        /// pay the node (and the verifier's fee when `payFee`) or reopen the slot
        bool accepted;
        bool payFee;
        /// slash the node's claim lock instead of releasing it
        bool slashNode;
        /// slash the verifier's assignment lock instead of releasing it
        bool slashVerifier;
        /// who receives the winner's share of those slashes
        address beneficiary;
    }

    /// @notice Settle a disputed contribution as its committee ruled (Disputes only).
    /// @param contributionId the disputed contribution
    /// @param outcome what the ruling means for payments and locks
    /// @param voters majority voters who share the committee's part of the slashes
    function settleDisputed(uint256 contributionId, DisputeSettlement calldata outcome, address[] calldata voters)
        external;
}
