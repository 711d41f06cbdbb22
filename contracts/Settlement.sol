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
/// @notice Turns a submitted contribution into money. Records the sampling seed from the block
/// after the submission (the sample is fixed once and never re-rolled) and draws the verifier
/// stake-weighted from the verifier snapshot of the submission block (locking `verifierLock` of
/// its stake), or queues the contribution when no eligible verifier is drawn. It takes the
/// verdict within `attestWindow` seconds; a missed one is slashed and replaced by a fresh random
/// draw seeded by a later block (at most MAX_TAKEOVERS times, then the slot is redone without a
/// slash). Once `challengeWindow` seconds pass without a dispute it pays node and verifier (pull
/// payments in the StakeRegistry) or, on a fail, slashes the node: the verifier gets exactly its
/// normal fee out of the slashed lock, the rest is burned. Disputed verdicts are settled here as
/// the Disputes committee rules.
///
/// Availability on demand: a job with a reveal window has its node publish, at submission,
/// only the manifest (every checkpoint's CID and digest), the output and its update. Once the
/// seed fixes the sample, the node publishes the start and end checkpoints of each sampled
/// segment and calls `reveal` within the window; only then can the verifier attest (its window
/// runs from the later of assignment and reveal). A node that does not reveal in time fails as
/// a failed check would (`failUnrevealed`); revealed content that cannot be fetched is failed by
/// the verifier as unavailable, which the node can contest (the committee fetches it).
contract Settlement is ISettlement, AccessControl, ReentrancyGuardTransient {
    /// @notice The largest sample count (JobMarket.MAX_SAMPLES): bounds the sampling view's loop.
    uint256 public constant MAX_SAMPLES = 32;
    /// @notice The Disputes contract: opens and settles disputes of verdicts.
    bytes32 public constant DISPUTES_ROLE = keccak256("DISPUTES_ROLE");
    /// @notice The Canaries contract: settles revealed canaries.
    bytes32 public constant CANARIES_ROLE = keccak256("CANARIES_ROLE");

    /// @dev Word 0 of a contribution: everything attest and finalize touch.
    struct Record {
        address verifier;
        uint40 assignedAt;
        uint40 attestedAt;
        Verdict verdict;
        Phase phase;
    }

    /// @dev Word 1: the state of the verifier draw (written by recordSeed, takeovers, queues).
    struct DrawState {
        /// snapshot block of the current draw: the submission block, or the block of the
        /// takeover request (whose next block's hash seeds the takeover draw)
        uint40 snapshotBlock;
        /// next ticket counter of the current draw seed
        uint32 counter;
        /// missed-attestation takeovers so far
        uint8 takeovers;
        /// the verifier that missed its window last (excluded from the takeover draw)
        address previous;
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
    mapping(uint256 contributionId => DrawState) private _draws;
    mapping(uint256 contributionId => bytes32) private _seeds;
    /// @dev The seed of the current verifier draw when it is not the sampling seed (takeovers)
    /// or the draw is queued; zero while a takeover waits for its seed block.
    mapping(uint256 contributionId => bytes32) private _drawSeeds;
    mapping(uint256 contributionId => bytes32) private _recomputed;

    /// @dev The reveal of the sampled checkpoints (availability on demand): a zero deadline
    /// means the job reveals nothing (everything was published at submission).
    struct Reveal {
        uint40 deadline;
        uint40 revealedAt;
    }

    mapping(uint256 contributionId => Reveal) private _reveals;

    /// @param stakes_ the StakeRegistry (this contract needs LOCKER, SLASHER and TREASURER roles)
    /// @param market_ the JobMarket (this contract needs its SETTLEMENT_ROLE)
    /// @param admin receives DEFAULT_ADMIN_ROLE (grants DISPUTES_ROLE at deployment)
    /// @param attestWindow_ seconds after the assignment within which the verifier must attest
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

    /// @notice Record the sampling seed of a contribution, keccak256(abi.encode(blockhash(
    /// submitBlock + 1), contributionId)), which fixes its sample for good, and draw its
    /// verifier stake-weighted from the snapshot of the submission block (never its node; its
    /// `verifierLock` gets locked). When the drawn verifier has no `verifierLock` free, the
    /// contribution is queued for it (`assignVerifier` retries the same ticket later; no redraw,
    /// so keeping verifiers busy biases nothing), as when no ticket lands outside the node.
    /// Anyone may call, from the block after the seed block while its hash is readable (256
    /// blocks, 8191 with EIP-2935); after that the contribution can only be failed
    /// (`failUnrecorded`).
    /// @param contributionId a submitted, unsettled contribution
    function recordSeed(uint256 contributionId) external nonReentrant {
        Contribution memory c = market.getContribution(contributionId);
        if (c.status != ContributionStatus.Submitted) revert SettlementNotSubmitted(contributionId);
        Record storage r = _records[contributionId];
        if (r.phase != Phase.None) revert SettlementSeedAlreadyRecorded(contributionId);
        uint256 seedBlock = uint256(c.submitBlock) + 1;
        if (block.number <= seedBlock) revert SettlementSeedNotReady(contributionId, seedBlock);
        bytes32 blockHash = Sampling.blockHashOf(seedBlock);
        // slither-disable-next-line incorrect-equality (zero is how the EVM reports an expired hash)
        if (blockHash == bytes32(0)) revert SettlementSeedExpired(contributionId, seedBlock);
        bytes32 seed = keccak256(abi.encode(blockHash, contributionId));
        _seeds[contributionId] = seed;
        DrawState storage d = _draws[contributionId];
        d.snapshotBlock = uint40(c.submitBlock);
        uint256 revealWindow = market.revealWindowOf(contributionId);
        if (revealWindow != 0) {
            // capped at the attest window, so the longest open verdict stays bounded (the
            // unbonding delay is checked against it at deployment)
            if (revealWindow > attestWindow) revealWindow = attestWindow;
            // block.timestamp + a uint32 window fits uint40 until the year 36812
            _reveals[contributionId].deadline = uint40(block.timestamp + revealWindow);
        }
        address verifier = _draw(contributionId, r, d, seed, c.node);
        emit SeedRecorded(contributionId, seed, seedBlock, verifier);
    }

    /// @notice Continue a queued verifier draw (the drawn verifier was busy, or a missed
    /// assignment awaits its fresh draw): the same ticket again (then the next ones past excluded
    /// parties) of the same draw seed, from the same snapshot. A takeover draw's seed is keccak256(abi.encode(seed, blockhash(requestBlock +
    /// 1), takeovers)); if that hash is no longer readable the takeover's request block moves to
    /// this one (the sample is never affected). Anyone may call.
    /// @param contributionId a queued contribution
    function assignVerifier(uint256 contributionId) external nonReentrant {
        Record storage r = _records[contributionId];
        if (r.phase != Phase.Queued) revert SettlementNotQueued(contributionId);
        DrawState storage d = _draws[contributionId];
        bytes32 drawSeed = _drawSeeds[contributionId];
        // slither-disable-next-line incorrect-equality (an unset seed, not a balance)
        if (drawSeed == bytes32(0)) {
            uint256 seedBlock = uint256(d.snapshotBlock) + 1;
            if (block.number <= seedBlock) revert SettlementSeedNotReady(contributionId, seedBlock);
            bytes32 blockHash = Sampling.blockHashOf(seedBlock);
            // slither-disable-next-line incorrect-equality (zero is how the EVM reports an expired hash)
            if (blockHash == bytes32(0)) {
                d.snapshotBlock = uint40(block.number);
                emit TakeoverSeedReset(contributionId, block.number + 1);
                return;
            }
            drawSeed = keccak256(abi.encode(_seeds[contributionId], blockHash, uint256(d.takeovers)));
        }
        _draw(contributionId, r, d, drawSeed, market.getContribution(contributionId).node);
    }

    /// @notice The node says it has published the start and end checkpoints of every sampled
    /// segment (their CIDs and digests are in the manifest it submitted), up to and including
    /// the reveal deadline (seed recording + the job's reveal window). O(1): nothing is stored
    /// but the time; the attest window of an already assigned verifier runs from now.
    /// @param contributionId a contribution of the caller whose seed is recorded
    function reveal(uint256 contributionId) external {
        address node = market.getContribution(contributionId).node;
        if (msg.sender != node) revert SettlementNotNode(msg.sender, node);
        Reveal storage rv = _pendingReveal(contributionId, _records[contributionId].phase);
        if (block.timestamp > rv.deadline) revert SettlementRevealWindowClosed(contributionId, rv.deadline);
        rv.revealedAt = uint40(block.timestamp);
        emit CheckpointsRevealed(contributionId, node, block.timestamp);
    }

    /// @notice Fail a contribution whose node did not reveal its sampled checkpoints by the
    /// reveal deadline, as a failed check: the node's lock is slashed, an assigned verifier is
    /// credited exactly the job's fee out of it (its lock released), the rest is burned, the
    /// slot reopens. Nothing to judge (the missing reveal is on chain), so no challenge window.
    /// Anyone may call.
    /// @param contributionId an unrevealed contribution past its reveal deadline
    function failUnrevealed(uint256 contributionId) external nonReentrant {
        Record storage r = _records[contributionId];
        Reveal storage rv = _pendingReveal(contributionId, r.phase);
        if (block.timestamp <= rv.deadline) revert SettlementRevealWindowOpen(contributionId, rv.deadline);
        address verifier = r.verifier;
        r.phase = Phase.Rejected;
        uint256 fee = verifier == address(0) ? 0 : market.verifierFeeOf(contributionId);
        if (fee > nodeLock) fee = nodeLock;
        // a rejection pays nothing from escrow: the reward and fee it returns are zero
        // slither-disable-next-line unused-return
        (address node,,) = market.settleContribution(contributionId, false, false);
        emit RevealMissed(contributionId, node, rv.deadline);
        emit ContributionFinalized(contributionId, false, 0, fee, nodeLock);
        stakes.slashWithPayment(node, nodeLock, verifier, fee);
        if (verifier != address(0)) stakes.unlock(verifier, verifierLock);
    }

    /// @notice The assigned verifier's verdict on the sampled segments, up to and including
    /// the later of `assignedAt` and the reveal, plus `attestWindow` (unix seconds). Needs the
    /// reveal where the job has one.
    /// @param contributionId the contribution
    /// @param pass true when every sampled segment re-executed to its committed checkpoint
    /// @param reportCid CID of the JSON report of what the verifier recomputed
    /// @param recomputedDigestsHash keccak256(abi.encode(bytes32[] digests)) of the sha256
    /// digests of the checkpoints the verifier recomputed, in sample order: a wrong pass is
    /// provable by comparing them with the committed ones
    function attest(uint256 contributionId, bool pass, string calldata reportCid, bytes32 recomputedDigestsHash)
        external
    {
        Record storage r = _records[contributionId];
        if (r.phase != Phase.Assigned) revert SettlementSeedNotRecorded(contributionId);
        if (msg.sender != r.verifier) revert SettlementNotAssignedVerifier(msg.sender, r.verifier);
        if (r.verdict != Verdict.None) revert SettlementAlreadyAttested(contributionId);
        Reveal memory rv = _reveals[contributionId];
        // slither-disable-next-line incorrect-equality (an unset time, not a balance)
        if (rv.deadline != 0 && rv.revealedAt == 0) revert SettlementNotRevealed(contributionId);
        uint256 deadline = _attestDeadline(r, rv);
        if (block.timestamp > deadline) revert SettlementAttestWindowClosed(contributionId, deadline);
        r.verdict = pass ? Verdict.Pass : Verdict.Fail;
        r.attestedAt = uint40(block.timestamp);
        _recomputed[contributionId] = recomputedDigestsHash;
        emit Attested(contributionId, msg.sender, pass, reportCid, recomputedDigestsHash);
    }

    /// @notice Replace a verifier that let its attest window pass: its `verifierLock` is slashed
    /// (all burned: no one, not even a sybil of it, profits) and a fresh verifier is drawn from
    /// the snapshot of this block with the hash of the next block (`assignVerifier`), excluding
    /// the node and the missing verifier. A draw queued for longer than the attest window (no
    /// eligible verifier in its snapshot) is redrawn the same way, with nobody slashed. After
    /// MAX_TAKEOVERS takeovers the contribution is rejected without a slash of the node: the
    /// slot is redone. Anyone may call.
    /// @param contributionId an assigned contribution with no verdict after its window, or a
    /// queued one
    function requestTakeover(uint256 contributionId) external nonReentrant {
        Record storage r = _records[contributionId];
        // slither-disable-next-line incorrect-equality (an unset seed, not a balance)
        bool queued = r.phase == Phase.Queued && _drawSeeds[contributionId] != bytes32(0);
        if (r.phase != Phase.Assigned && !queued) revert SettlementSeedNotRecorded(contributionId);
        if (r.verdict != Verdict.None) revert SettlementAlreadyAttested(contributionId);
        Reveal memory rv = _reveals[contributionId];
        // a verifier cannot be blamed for checkpoints the node has not revealed
        if (!queued && rv.deadline != 0 && rv.revealedAt == 0) revert SettlementNotRevealed(contributionId);
        uint256 deadline = queued ? uint256(r.assignedAt) + attestWindow : _attestDeadline(r, rv);
        if (block.timestamp <= deadline) revert SettlementAttestWindowOpen(contributionId, deadline);
        address previous = r.verifier;
        DrawState storage d = _draws[contributionId];
        uint256 takeovers = uint256(d.takeovers) + 1;
        if (takeovers > Limits.MAX_TAKEOVERS) {
            r.phase = Phase.Rejected;
            // a rejection pays nothing: the reward and fee it returns are zero
            // slither-disable-next-line unused-return
            (address node,,) = market.settleContribution(contributionId, false, false);
            uint256 penalty = previous == address(0) ? 0 : verifierLock;
            emit AttestationMissed(contributionId, previous, penalty, takeovers, 0);
            emit ContributionFinalized(contributionId, false, 0, 0, penalty);
            if (previous != address(0)) stakes.slash(previous, verifierLock, address(0), new address[](0));
            stakes.payout(node, nodeLock, 0, address(0), 0, 0);
            return;
        }
        r.verifier = address(0);
        r.phase = Phase.Queued;
        // takeovers <= MAX_TAKEOVERS
        d.takeovers = uint8(takeovers);
        // a redrawn queue has nobody to slash and keeps excluding the last verifier that missed
        if (previous != address(0)) d.previous = previous;
        d.snapshotBlock = uint40(block.number);
        d.counter = 0;
        delete _drawSeeds[contributionId];
        uint256 slashed = previous == address(0) ? 0 : verifierLock;
        emit AttestationMissed(contributionId, previous, slashed, takeovers, block.number + 1);
        if (previous != address(0)) stakes.slash(previous, verifierLock, address(0), new address[](0));
    }

    /// @notice Fail a contribution whose seed was never recorded while its seed block's hash
    /// was readable: the node's lock is slashed (burned), nothing is paid, the slot reopens.
    /// Anyone may call.
    /// @param contributionId a submitted contribution with no seed and an unreadable seed block
    function failUnrecorded(uint256 contributionId) external nonReentrant {
        Contribution memory c = market.getContribution(contributionId);
        if (c.status != ContributionStatus.Submitted) revert SettlementNotSubmitted(contributionId);
        Record storage r = _records[contributionId];
        if (r.phase != Phase.None) revert SettlementSeedAlreadyRecorded(contributionId);
        uint256 seedBlock = uint256(c.submitBlock) + 1;
        // slither-disable-next-line incorrect-equality (zero is how the EVM reports an expired hash)
        if (block.number <= seedBlock || Sampling.blockHashOf(seedBlock) != bytes32(0)) {
            revert SettlementSeedReadable(contributionId, seedBlock);
        }
        r.phase = Phase.Rejected;
        // a rejection pays nothing: the reward and fee it returns are zero
        // slither-disable-next-line unused-return
        market.settleContribution(contributionId, false, false);
        emit SeedExpired(contributionId, seedBlock);
        emit ContributionFinalized(contributionId, false, 0, 0, nodeLock);
        stakes.slash(c.node, nodeLock, address(0), new address[](0));
    }

    /// @notice Settle an attested, undisputed contribution once its challenge window has closed
    /// (from `attestedAt + challengeWindow + 1`, unix seconds). A pass credits the node's reward
    /// and the verifier's fee and releases both locks. A fail slashes the node's lock: the
    /// verifier is credited exactly the job's verifier fee out of it (what a pass would have
    /// paid: failing earns nothing extra), the rest is burned; the verifier's lock is released
    /// and the slot reopens. Anyone may call.
    /// @param contributionId the contribution
    function finalize(uint256 contributionId) external nonReentrant {
        Record storage r = _records[contributionId];
        if (r.verdict == Verdict.None) revert SettlementNotAttested(contributionId);
        if (r.phase == Phase.Disputed) revert SettlementUnderDispute(contributionId);
        if (r.phase != Phase.Assigned) revert SettlementAlreadyFinalized(contributionId);
        uint256 ready = uint256(r.attestedAt) + challengeWindow + 1;
        if (block.timestamp < ready) revert SettlementChallengeWindowOpen(contributionId, ready);
        address verifier = r.verifier;
        if (r.verdict == Verdict.Pass) {
            r.phase = Phase.Accepted;
            (address node, uint256 reward, uint256 fee) = market.settleContribution(contributionId, true, true);
            emit ContributionFinalized(contributionId, true, reward, fee, 0);
            stakes.payout(node, nodeLock, reward, verifier, verifierLock, fee);
        } else {
            r.phase = Phase.Rejected;
            uint256 fee = market.verifierFeeOf(contributionId);
            if (fee > nodeLock) fee = nodeLock;
            // a rejection pays nothing from escrow: the reward and fee it returns are zero
            // slither-disable-next-line unused-return
            (address node,,) = market.settleContribution(contributionId, false, false);
            emit ContributionFinalized(contributionId, false, 0, fee, nodeLock);
            stakes.slashWithPayment(node, nodeLock, verifier, fee);
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
        if (block.timestamp > deadline) revert SettlementChallengeWindowClosed(contributionId, deadline);
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
    function settleCanary(uint256 contributionId)
        external
        onlyRole(CANARIES_ROLE)
        nonReentrant
        returns (address verifier, Verdict verdict)
    {
        Record storage r = _records[contributionId];
        verdict = r.verdict;
        if (verdict == Verdict.None) revert SettlementNotAttested(contributionId);
        if (r.phase == Phase.Disputed) revert SettlementUnderDispute(contributionId);
        if (r.phase != Phase.Assigned) revert SettlementAlreadyFinalized(contributionId);
        r.phase = Phase.Rejected;
        verifier = r.verifier;
        // a canary is never accepted: the reward and fee it returns are zero
        // slither-disable-next-line unused-return
        market.settleContribution(contributionId, false, false);
        emit ContributionFinalized(contributionId, false, 0, 0, 0);
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

    /// @notice The verification record of a contribution. Times are unix seconds.
    /// @param contributionId the contribution
    function verification(uint256 contributionId) external view returns (Verification memory v) {
        Record storage r = _records[contributionId];
        DrawState storage d = _draws[contributionId];
        v.seed = _seeds[contributionId];
        uint256 submitBlock = market.getContribution(contributionId).submitBlock;
        if (submitBlock != 0) v.seedBlock = uint64(submitBlock + 1);
        v.seedRecordedAt = r.assignedAt;
        v.verifier = r.verifier;
        v.verdict = r.verdict;
        v.attestedAt = r.attestedAt;
        v.finalized = r.phase == Phase.Accepted || r.phase == Phase.Rejected;
        v.phase = r.phase;
        Reveal memory rv = _reveals[contributionId];
        if (r.phase != Phase.None && r.verifier != address(0)) {
            v.attestDeadline = uint64(_attestDeadline(r, rv));
        }
        if (r.verdict != Verdict.None) v.challengeDeadline = uint64(uint256(r.attestedAt) + challengeWindow);
        v.snapshotBlock = d.snapshotBlock;
        v.drawCounter = d.counter;
        v.takeovers = d.takeovers;
        v.previousVerifier = d.previous;
        v.drawSeed = r.phase == Phase.Queued ? _drawSeeds[contributionId] : bytes32(0);
        v.recomputedDigestsHash = _recomputed[contributionId];
        v.revealDeadline = rv.deadline;
        v.revealedAt = rv.revealedAt;
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
    /// @param proof the Merkle proof in the checkpoint tree (OpenZeppelin standard tree)
    /// @param seal the trace's seal (in its manifest), which the trace root binds
    function verifyCheckpoint(
        uint256 contributionId,
        uint256 index,
        bytes32 digest,
        bytes32[] calldata proof,
        bytes32 seal
    ) external view returns (bool) {
        bytes32 root = market.getContribution(contributionId).traceRoot;
        return TraceCommitment.verify(proof, root, seal, index, digest);
    }

    /// @dev The reveal a contribution still owes: its seed is recorded (phase Assigned or
    /// Queued), its job reveals on demand, and the node has not revealed yet.
    function _pendingReveal(uint256 contributionId, Phase phase) private view returns (Reveal storage rv) {
        if (phase != Phase.Assigned && phase != Phase.Queued) revert SettlementSeedNotRecorded(contributionId);
        rv = _reveals[contributionId];
        if (rv.deadline == 0) revert SettlementInvalidParams("nothing to reveal");
        if (rv.revealedAt != 0) revert SettlementAlreadyRevealed(contributionId);
    }

    /// @dev The attest deadline of the current assignment: its window runs from the assignment
    /// or, when that came first, from the node's reveal.
    function _attestDeadline(Record storage r, Reveal memory rv) private view returns (uint256) {
        uint256 start = r.assignedAt;
        if (rv.revealedAt > start) start = rv.revealedAt;
        return start + attestWindow;
    }

    /// @dev Draw one verifier from `drawSeed` at the draw's snapshot, continuing at its counter:
    /// assign it (phase Assigned, attest window starts) or queue the contribution.
    function _draw(uint256 contributionId, Record storage r, DrawState storage d, bytes32 drawSeed, address node)
        private
        returns (address verifier)
    {
        // The registry is an immutable protocol contract whose drawAndLock makes no external call
        // and is itself nonReentrant (as are the callers): the writes below depend on its result.
        // slither-disable-next-line reentrancy-no-eth
        (address[] memory drawn, uint256 next) = stakes.drawAndLock(
            drawSeed, Sampling.VERIFIER_TAG, d.snapshotBlock, 1, d.counter, [node, d.previous, address(0)], true
        );
        // counters grow by at most MAX_DRAW_PROBES per call: uint32 lasts 2^27 calls
        d.counter = uint32(next);
        // slither-disable-next-line incorrect-equality (an empty draw, not a balance)
        if (drawn.length == 0) {
            // the queue's start (not moved by retries): an attest window later a fresh snapshot
            // may be drawn (requestTakeover)
            // slither-disable-next-line incorrect-equality (an unset seed, not a balance)
            if (r.phase != Phase.Queued || _drawSeeds[contributionId] == bytes32(0)) {
                r.assignedAt = uint40(block.timestamp);
            }
            r.phase = Phase.Queued;
            _drawSeeds[contributionId] = drawSeed;
            emit VerifierQueued(contributionId, next);
            return address(0);
        }
        verifier = drawn[0];
        r.verifier = verifier;
        r.assignedAt = uint40(block.timestamp);
        r.phase = Phase.Assigned;
        emit VerifierAssigned(contributionId, verifier, next - 1, block.timestamp + attestWindow);
    }
}
