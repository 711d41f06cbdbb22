// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ISettlement} from "./interfaces/ISettlement.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {Contribution, ContributionStatus, JobParams, Verdict, Phase} from "./interfaces/Types.sol";
import {Limits} from "./libraries/Limits.sol";
import {Sampling} from "./libraries/Sampling.sol";
import {TraceCommitment} from "./libraries/TraceCommitment.sol";

/// @title Settlement
/// @notice Turns a submitted contribution into money. Records the sampling seed from a block
/// after the submission and draws the verifier (locking `verifierLock` of its stake), takes its
/// verdict within `attestWindow` blocks (or hands the assignment to any other verifier, slashing
/// the one that missed it), and once `challengeWindow` blocks pass without a dispute pays node
/// and verifier (pull payments in the StakeRegistry) or slashes the node. Disputed verdicts are
/// settled here as the Disputes committee rules.
contract Settlement is ISettlement, AccessControl, ReentrancyGuardTransient {
    /// @notice The largest sample count (JobMarket.MAX_SAMPLES): bounds the sampling view's loop.
    uint256 public constant MAX_SAMPLES = 32;
    /// @notice The Disputes contract: opens and settles disputes of verdicts.
    bytes32 public constant DISPUTES_ROLE = keccak256("DISPUTES_ROLE");

    /// @dev One word per contribution.
    struct Record {
        address verifier;
        uint40 assignedAt;
        uint40 attestedAt;
        Verdict verdict;
        Phase phase;
    }

    /// @notice The vault and stake book.
    IStakeRegistry public immutable stakes;
    /// @notice The job market holding the contributions.
    IJobMarket public immutable market;
    /// @inheritdoc ISettlement
    uint256 public immutable attestWindow;
    /// @inheritdoc ISettlement
    uint256 public immutable challengeWindow;
    /// @notice Node stake locked per claim (the registry's `minNodeStake`), slashed on a fail.
    uint256 public immutable nodeLock;
    /// @notice Verifier stake locked per assignment (the registry's `verifierLock`).
    uint256 public immutable verifierLock;
    /// @notice The winner's share of a slash (the registry's `slashRewardBps`), for event amounts.
    uint256 public immutable slashRewardBps;

    mapping(uint256 contributionId => Record) private _records;
    mapping(uint256 contributionId => bytes32) private _seeds;
    /// @dev Set only when the seed block had to move (its hash expired unrecorded).
    mapping(uint256 contributionId => uint256) private _movedSeedBlocks;

    /// @param stakes_ the StakeRegistry (this contract needs LOCKER, SLASHER and TREASURER roles)
    /// @param market_ the JobMarket (this contract needs its SETTLEMENT_ROLE)
    /// @param admin receives DEFAULT_ADMIN_ROLE (grants DISPUTES_ROLE at deployment)
    /// @param attestWindow_ blocks after the assignment within which the verifier must attest
    /// (1..2^32-1)
    constructor(IStakeRegistry stakes_, IJobMarket market_, address admin, uint256 attestWindow_) {
        if (address(stakes_) == address(0) || address(market_) == address(0) || admin == address(0)) {
            revert SettlementInvalidParams("address");
        }
        if (attestWindow_ == 0 || attestWindow_ > type(uint32).max) revert SettlementInvalidParams("attestWindow");
        stakes = stakes_;
        market = market_;
        attestWindow = attestWindow_;
        challengeWindow = market_.challengeWindow();
        nodeLock = stakes_.minNodeStake();
        verifierLock = stakes_.verifierLock();
        slashRewardBps = stakes_.slashRewardBps();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Record the sampling seed of a contribution from the hash of the block after its
    /// submission, and draw its verifier (never its node; one with `verifierLock` free stake,
    /// which gets locked). Anyone may call. If that block's hash is no longer available (more
    /// than 256 blocks passed), nothing is drawn: the seed block moves to the block after this
    /// call, whose hash no caller can know or choose.
    /// @param contributionId a submitted, unsettled contribution
    function recordSeed(uint256 contributionId) external nonReentrant {
        Contribution memory c = market.getContribution(contributionId);
        if (c.status != ContributionStatus.Submitted) revert SettlementNotSubmitted(contributionId);
        Record storage r = _records[contributionId];
        if (r.phase != Phase.None) revert SettlementSeedAlreadyRecorded(contributionId);
        uint256 seedBlock = _seedBlockOf(contributionId, c.submitBlock);
        if (block.number <= seedBlock) revert SettlementSeedNotReady(contributionId, seedBlock);
        bytes32 blockHash = blockhash(seedBlock);
        // slither-disable-next-line incorrect-equality (zero is how the EVM reports an expired hash)
        if (blockHash == bytes32(0)) {
            _movedSeedBlocks[contributionId] = block.number + 1;
            emit SeedBlockReset(contributionId, block.number + 1);
            return;
        }
        bytes32 seed = keccak256(abi.encode(blockHash, contributionId));
        // The registry is an immutable protocol contract whose drawAndLock makes no external call
        // and is itself nonReentrant (as is this function): the writes below depend on its result.
        // slither-disable-next-line reentrancy-no-eth
        address[] memory drawn =
            stakes.drawAndLock(seed, Sampling.VERIFIER_TAG, 1, [c.node, address(0), address(0)]);
        // slither-disable-next-line incorrect-equality (an empty draw, not a balance)
        if (drawn.length == 0) revert SettlementNoVerifiers();
        _seeds[contributionId] = seed;
        r.verifier = drawn[0];
        r.assignedAt = uint40(block.number);
        r.phase = Phase.Assigned;
        emit SeedRecorded(contributionId, seed, seedBlock, drawn[0]);
    }

    /// @notice The assigned verifier's verdict on the sampled segments, up to and including the
    /// block `assignedAt + attestWindow`.
    /// @param contributionId the contribution
    /// @param pass true when every sampled segment re-executed to its committed checkpoint
    /// @param reportCid CID of the JSON report of what the verifier recomputed
    function attest(uint256 contributionId, bool pass, string calldata reportCid) external {
        Record storage r = _records[contributionId];
        if (r.phase == Phase.None) revert SettlementSeedNotRecorded(contributionId);
        if (msg.sender != r.verifier) revert SettlementNotAssignedVerifier(msg.sender, r.verifier);
        if (r.verdict != Verdict.None) revert SettlementAlreadyAttested(contributionId);
        uint256 deadline = uint256(r.assignedAt) + attestWindow;
        if (block.number > deadline) revert SettlementAttestWindowClosed(contributionId, deadline);
        r.verdict = pass ? Verdict.Pass : Verdict.Fail;
        r.attestedAt = uint40(block.number);
        emit Attested(contributionId, msg.sender, pass, reportCid);
    }

    /// @notice Take over an assignment whose verifier let its attest window pass: the missing
    /// verifier's `verifierLock` is slashed (the caller gets the winner's share, the rest is
    /// burned), the caller's own `verifierLock` is locked and its attest window starts now. Open
    /// to any registered verifier but the node and the missing verifier.
    /// @param contributionId an assigned contribution with no verdict after its window
    function claimAttestation(uint256 contributionId) external nonReentrant {
        Record storage r = _records[contributionId];
        if (r.phase == Phase.None) revert SettlementSeedNotRecorded(contributionId);
        if (r.verdict != Verdict.None) revert SettlementAlreadyAttested(contributionId);
        uint256 deadline = uint256(r.assignedAt) + attestWindow;
        if (block.number <= deadline) revert SettlementAttestWindowOpen(contributionId, deadline);
        address previous = r.verifier;
        if (
            msg.sender == previous || !stakes.isVerifier(msg.sender)
                || msg.sender == market.getContribution(contributionId).node
        ) revert SettlementNotEligible(msg.sender);
        r.verifier = msg.sender;
        r.assignedAt = uint40(block.number);
        emit AttestationReassigned(contributionId, previous, msg.sender, verifierLock, block.number + attestWindow);
        stakes.slash(previous, verifierLock, msg.sender, new address[](0));
        stakes.lock(msg.sender, verifierLock);
    }

    /// @notice Settle an attested, undisputed contribution once its challenge window has closed
    /// (from block `attestedAt + challengeWindow + 1`). A pass credits the node's reward and the
    /// verifier's fee and releases both locks; a fail slashes the node's lock (`slashRewardBps`
    /// of it to the verifier, the rest burned), releases the verifier's and reopens the slot.
    /// Anyone may call.
    /// @param contributionId the contribution
    function finalize(uint256 contributionId) external nonReentrant {
        Record storage r = _records[contributionId];
        if (r.verdict == Verdict.None) revert SettlementNotAttested(contributionId);
        if (r.phase == Phase.Disputed) revert SettlementUnderDispute(contributionId);
        if (r.phase != Phase.Assigned) revert SettlementAlreadyFinalized(contributionId);
        uint256 ready = uint256(r.attestedAt) + challengeWindow + 1;
        if (block.number < ready) revert SettlementChallengeWindowOpen(contributionId, ready);
        address verifier = r.verifier;
        if (r.verdict == Verdict.Pass) {
            r.phase = Phase.Accepted;
            (address node, uint256 reward, uint256 fee) = market.settleContribution(contributionId, true, true);
            emit ContributionFinalized(contributionId, true, reward, fee, 0);
            stakes.payout(node, nodeLock, reward, verifier, verifierLock, fee);
        } else {
            r.phase = Phase.Rejected;
            // a rejection pays nothing: the reward and fee it returns are zero
            // slither-disable-next-line unused-return
            (address node,,) = market.settleContribution(contributionId, false, false);
            uint256 share = (nodeLock * slashRewardBps) / Limits.BPS;
            emit ContributionFinalized(contributionId, false, 0, share, nodeLock);
            stakes.slash(node, nodeLock, verifier, new address[](0));
            stakes.unlock(verifier, verifierLock);
        }
    }

    /// @inheritdoc ISettlement
    function openDispute(uint256 contributionId, address disputer, uint256 disputeId)
        external
        onlyRole(DISPUTES_ROLE)
        returns (address node, address verifier, Verdict verdict)
    {
        Record storage r = _records[contributionId];
        verdict = r.verdict;
        if (verdict == Verdict.None) revert SettlementNotAttested(contributionId);
        if (r.phase == Phase.Disputed) revert SettlementUnderDispute(contributionId);
        if (r.phase != Phase.Assigned) revert SettlementAlreadyFinalized(contributionId);
        uint256 deadline = uint256(r.attestedAt) + challengeWindow;
        if (block.number > deadline) revert SettlementChallengeWindowClosed(contributionId, deadline);
        node = market.getContribution(contributionId).node;
        verifier = r.verifier;
        if (verdict == Verdict.Fail) {
            if (disputer != node) revert SettlementNotNode(disputer, node);
        } else if (disputer == node || disputer == verifier) {
            revert SettlementPartyCannotChallenge(disputer);
        }
        r.phase = Phase.Disputed;
        emit VerdictDisputed(contributionId, disputeId, disputer);
    }

    /// @inheritdoc ISettlement
    function settleDisputed(uint256 contributionId, DisputeSettlement calldata outcome, address[] calldata voters)
        external
        onlyRole(DISPUTES_ROLE)
        nonReentrant
    {
        Record storage r = _records[contributionId];
        if (r.phase != Phase.Disputed) revert SettlementNotDisputed(contributionId);
        r.phase = outcome.accepted ? Phase.Accepted : Phase.Rejected;
        address verifier = r.verifier;
        (address node, uint256 reward, uint256 fee) =
            market.settleContribution(contributionId, outcome.accepted, outcome.payFee);
        _emitDisputed(contributionId, outcome, verifier, reward, fee);
        _slashAndPay(node, verifier, reward, fee, outcome, voters);
    }

    function _emitDisputed(
        uint256 contributionId,
        DisputeSettlement calldata outcome,
        address verifier,
        uint256 reward,
        uint256 fee
    ) private {
        uint256 slashed = 0;
        uint256 verifierPayment = fee;
        if (outcome.slashNode) {
            slashed = nodeLock;
            if (outcome.beneficiary == verifier) verifierPayment += (nodeLock * slashRewardBps) / Limits.BPS;
        }
        if (outcome.slashVerifier) slashed += verifierLock;
        emit ContributionFinalized(contributionId, outcome.accepted, reward, verifierPayment, slashed);
    }

    function _slashAndPay(
        address node,
        address verifier,
        uint256 reward,
        uint256 fee,
        DisputeSettlement calldata outcome,
        address[] calldata voters
    ) private {
        uint256 nodeUnlock = nodeLock;
        uint256 verifierUnlock = verifierLock;
        if (outcome.slashNode) {
            stakes.slash(node, nodeLock, outcome.beneficiary, voters);
            nodeUnlock = 0;
        }
        if (outcome.slashVerifier) {
            stakes.slash(verifier, verifierLock, outcome.beneficiary, voters);
            verifierUnlock = 0;
        }
        stakes.payout(node, nodeUnlock, reward, verifier, verifierUnlock, fee);
    }

    // -- views -----------------------------------------------------------------------------

    /// @notice The verification record of a contribution.
    /// @param contributionId the contribution
    function verification(uint256 contributionId) external view returns (Verification memory v) {
        Record storage r = _records[contributionId];
        v.seed = _seeds[contributionId];
        uint256 moved = _movedSeedBlocks[contributionId];
        if (moved != 0) {
            v.seedBlock = uint64(moved);
        } else {
            uint256 submitBlock = market.getContribution(contributionId).submitBlock;
            if (submitBlock != 0) v.seedBlock = uint64(submitBlock + 1);
        }
        v.seedRecordedAt = r.assignedAt;
        v.verifier = r.verifier;
        v.verdict = r.verdict;
        v.attestedAt = r.attestedAt;
        v.finalized = r.phase == Phase.Accepted || r.phase == Phase.Rejected;
        v.phase = r.phase;
        if (r.phase != Phase.None) v.attestDeadline = uint64(uint256(r.assignedAt) + attestWindow);
        if (r.verdict != Verdict.None) v.challengeDeadline = uint64(uint256(r.attestedAt) + challengeWindow);
    }

    /// @notice Unclaimed credits of `account` (kept in the StakeRegistry vault; withdraw there).
    /// @param account any address
    function credits(address account) external view returns (uint256) {
        return stakes.creditsOf(account);
    }

    /// @notice The segment indices the verifier must re-execute (needs the seed).
    /// @param contributionId the contribution
    function sampledSegments(uint256 contributionId) external view returns (uint256[] memory) {
        bytes32 seed = _seeds[contributionId];
        // slither-disable-next-line incorrect-equality (no seed recorded, not a balance)
        if (seed == bytes32(0)) revert SettlementSeedNotRecorded(contributionId);
        JobParams memory p = market.jobParams(market.getContribution(contributionId).jobId);
        return Sampling.sampleIndices(seed, p.numSegments, p.sampleCount);
    }

    /// @notice The sampling rule itself, exposed so anyone can check it against their own copy.
    /// @param seed the seed
    /// @param n segments to choose from
    /// @param k how many to choose (<= n, and at most 32 like any job's sample count)
    function sampleIndices(bytes32 seed, uint256 n, uint256 k) external pure returns (uint256[] memory) {
        if (k > MAX_SAMPLES) revert SettlementInvalidParams("k");
        return Sampling.sampleIndices(seed, n, k);
    }

    /// @notice Whether checkpoint `index` with sha256 `digest` belongs to the contribution's trace.
    /// @param contributionId the contribution
    /// @param index the checkpoint's index in the trace
    /// @param digest the checkpoint file's sha256
    /// @param proof the Merkle proof (OpenZeppelin standard tree)
    function verifyCheckpoint(uint256 contributionId, uint256 index, bytes32 digest, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        bytes32 root = market.getContribution(contributionId).traceRoot;
        return TraceCommitment.verify(proof, root, index, digest);
    }

    function _seedBlockOf(uint256 contributionId, uint256 submitBlock) private view returns (uint256) {
        uint256 moved = _movedSeedBlocks[contributionId];
        return moved != 0 ? moved : submitBlock + 1;
    }
}
