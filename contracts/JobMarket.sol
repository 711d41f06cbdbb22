// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {
    JobParams,
    JobStatus,
    SlotStatus,
    Contribution,
    ContributionStatus,
    AggregateStatus
} from "./interfaces/Types.sol";
import {Economics} from "./libraries/Economics.sol";
import {Limits} from "./libraries/Limits.sol";

/// @title JobMarket
/// @notice Training bounties and the work done on them: jobs of R rounds of W slots, claims
/// backed by locked stake that time out, one contribution per slot (digests stored, CIDs only
/// emitted), round aggregates that can be challenged before they become final, and the sponsor's
/// cancel and refund. Escrow tokens sit in the StakeRegistry vault; this contract keeps each
/// job's share of it and moves it only through `settleContribution` (Settlement) and `refund`.
contract JobMarket is IJobMarket, AccessControl, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice The Settlement contract: settles contributions.
    bytes32 public constant SETTLEMENT_ROLE = keccak256("SETTLEMENT_ROLE");
    /// @notice The Disputes contract: puts aggregates under dispute and resolves them.
    bytes32 public constant DISPUTES_ROLE = keccak256("DISPUTES_ROLE");
    /// @notice May pause new jobs and claims (never settlement, refunds or withdrawals).
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    /// @notice Upper bounds that keep every counter packed and every product bounded.
    uint256 public constant MAX_ROUNDS = 1000;
    uint256 public constant MAX_SLOTS_PER_ROUND = 256;
    uint256 public constant MAX_SEGMENTS = 4096;
    uint256 public constant MAX_SAMPLES = 32;
    /// @notice Longest claim, in seconds (keeps the uint40 deadline far from overflow).
    uint256 public constant MAX_CLAIM_TIMEOUT = type(uint32).max;

    struct Job {
        // word 0: everything a claim, a settlement and an aggregation update
        address sponsor;
        JobStatus status;
        uint16 currentRound;
        uint16 acceptedInRound;
        /// slots of the current round that are claimed or submitted (their pay stays reserved)
        uint16 claimsOpen;
        uint40 createdBlock;
        // word 1
        uint256 escrow;
        // word 2
        bytes32 currentModelDigest;
        // words 3-6
        JobParams params;
    }

    struct Slot {
        address node;
        uint40 deadline;
        SlotStatus status;
        uint48 contributionId;
    }

    /// @dev One word of metadata plus the two digests; the stake locked is always `nodeStake`
    /// and the status follows from the slot (see `getContribution`).
    struct StoredContribution {
        address node;
        uint32 jobId;
        uint16 round;
        uint8 slot;
        uint40 submitBlock;
        bytes32 outputDigest;
        bytes32 traceRoot;
    }

    struct Aggregate {
        address poster;
        uint40 postedAt;
        AggregateStatus status;
        bytes32 modelDigest;
        uint256 validationLossMicro;
        string modelCid;
    }

    /// @notice The vault and stake book.
    IStakeRegistry public immutable stakes;
    /// @notice The escrow token (the registry's token, cached).
    IERC20 public immutable token;
    /// @notice Stake locked by each claim: the registry's `minNodeStake`, cached.
    uint256 public immutable nodeStake;
    /// @notice Stake locked behind a posted aggregate: the registry's `disputeBond`, cached.
    uint256 public immutable aggregateBond;
    /// @inheritdoc IJobMarket
    uint256 public immutable challengeWindow;

    /// @notice Jobs created so far (ids 1..jobCount).
    /// @dev Packed with contributionCount: once a job exists the word is non-zero, so the first
    /// contribution does not pay a zero-to-non-zero write for its id.
    uint64 public jobCount;
    /// @notice Contributions submitted so far (ids 1..contributionCount).
    uint64 public contributionCount;
    mapping(uint256 jobId => Job) private _jobs;
    mapping(bytes32 slotKey => Slot) private _slots;
    mapping(uint256 contributionId => StoredContribution) private _contributions;
    mapping(uint256 jobId => mapping(uint256 round => Aggregate)) private _aggregates;
    /// @notice Block in which each round's aggregate became final, so readers find its
    /// RoundAggregated event fast.
    mapping(uint256 jobId => mapping(uint256 round => uint256 blockNumber)) public aggregateBlock;

    /// @param stakes_ the StakeRegistry (this contract needs its LOCKER_ROLE and TREASURER_ROLE)
    /// @param admin receives DEFAULT_ADMIN_ROLE and GUARDIAN_ROLE
    /// @param challengeWindow_ seconds after a verdict or an aggregate during which it can be
    /// disputed (1..2^32-1); Settlement and Disputes read it from here
    constructor(IStakeRegistry stakes_, address admin, uint256 challengeWindow_) {
        if (address(stakes_) == address(0) || admin == address(0)) revert JobMarketInvalidParams("address");
        if (challengeWindow_ == 0 || challengeWindow_ > type(uint32).max) {
            revert JobMarketInvalidParams("challengeWindow");
        }
        stakes = stakes_;
        token = IERC20(stakes_.token());
        nodeStake = stakes_.minNodeStake();
        aggregateBond = stakes_.disputeBond();
        challengeWindow = challengeWindow_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GUARDIAN_ROLE, admin);
    }

    // -- sponsor ---------------------------------------------------------------------------

    /// @notice Post a bounty: moves rounds * slotsPerRound * (rewardPerSlot + verifierFee) from
    /// the caller into the StakeRegistry vault (approve this contract for that amount first).
    /// Refused when cheating pays for the declared cheat fraction (see `Economics`).
    /// @param params the job's parameters (see Types.sol)
    /// @param specCid CID of the canonical JSON spec whose sha256 is `params.specDigest`
    /// @param initialModelCid CID of G_0 whose sha256 is `params.initialModelDigest`
    /// @return jobId the new job's id
    function createJob(JobParams calldata params, string calldata specCid, string calldata initialModelCid)
        external
        whenNotPaused
        nonReentrant
        returns (uint256 jobId)
    {
        _checkParams(params);
        uint256 escrow =
            uint256(params.rounds) * params.slotsPerRound * (uint256(params.rewardPerSlot) + params.verifierFee);
        jobId = ++jobCount;
        if (jobId > type(uint32).max) revert JobMarketInvalidParams("jobCount");
        Job storage job = _jobs[jobId];
        job.sponsor = msg.sender;
        job.status = JobStatus.Open;
        job.createdBlock = uint40(block.number);
        job.escrow = escrow;
        job.currentModelDigest = params.initialModelDigest;
        job.params = params;
        emit JobCreated(jobId, msg.sender, params, specCid, initialModelCid, escrow);
        token.safeTransferFrom(msg.sender, address(stakes), escrow);
        stakes.depositEscrow(msg.sender, escrow);
    }

    /// @notice Stop a job: nobody can claim its slots any more. Claims and contributions already
    /// in flight still settle and are paid; everything else can be refunded at once. Refused
    /// while the current round's aggregate is pending or disputed (let it settle first).
    /// @param jobId the sponsor's open job
    function cancelJob(uint256 jobId) external {
        Job storage job = _existingJob(jobId);
        if (msg.sender != job.sponsor) revert JobMarketNotSponsor(msg.sender);
        if (job.status != JobStatus.Open) revert JobMarketJobNotOpen(jobId);
        AggregateStatus st = _aggregates[jobId][job.currentRound].status;
        if (st == AggregateStatus.Pending || st == AggregateStatus.Disputed) {
            revert JobMarketAggregatePending(jobId, job.currentRound);
        }
        job.status = JobStatus.Cancelled;
        emit JobCancelled(jobId, job.currentRound);
    }

    /// @notice Return to the sponsor every escrowed token of a completed or cancelled job that no
    /// claim in flight can still earn (`refundable`). Call again after in-flight work settles.
    /// @param jobId the sponsor's completed or cancelled job
    function refund(uint256 jobId) external nonReentrant {
        Job storage job = _existingJob(jobId);
        if (msg.sender != job.sponsor) revert JobMarketNotSponsor(msg.sender);
        if (job.status != JobStatus.Completed && job.status != JobStatus.Cancelled) {
            revert JobMarketNotFinished(jobId);
        }
        uint256 amount = _refundable(job);
        if (amount == 0) revert JobMarketNothingToRefund(jobId);
        job.escrow -= amount;
        emit EscrowRefunded(jobId, msg.sender, amount);
        stakes.releaseEscrow(msg.sender, amount);
    }

    // -- node ------------------------------------------------------------------------------

    /// @notice Claim slot `slot` of the current round, locking `nodeStake` of the caller's stake
    /// until its contribution settles or the claim expires. A claim whose deadline has passed
    /// is taken over (the old claimant's lock is released).
    /// @param jobId an open job
    /// @param round must be the job's current round
    /// @param slot index in [0, slotsPerRound)
    function claimSlot(uint256 jobId, uint256 round, uint256 slot) external whenNotPaused nonReentrant {
        Job storage job = _existingJob(jobId);
        if (job.status != JobStatus.Open) revert JobMarketJobNotOpen(jobId);
        if (round != job.currentRound) revert JobMarketWrongRound(jobId, round, job.currentRound);
        if (slot >= job.params.slotsPerRound) revert JobMarketSlotOutOfRange(slot, job.params.slotsPerRound);
        Slot storage s = _slots[_slotKey(jobId, round, slot)];
        address expired = address(0);
        if (s.status == SlotStatus.Claimed && block.timestamp > s.deadline) {
            expired = s.node;
            s.status = SlotStatus.Open;
            emit ClaimExpired(jobId, round, slot, expired);
        }
        if (s.status != SlotStatus.Open) revert JobMarketSlotTaken(jobId, round, slot);
        uint256 deadline = block.timestamp + job.params.claimTimeout;
        s.node = msg.sender;
        s.deadline = uint40(deadline);
        s.status = SlotStatus.Claimed;
        if (expired == address(0)) job.claimsOpen += 1;
        emit SlotClaimed(jobId, round, slot, msg.sender, deadline);
        if (expired != address(0)) stakes.unlock(expired, nodeStake);
        stakes.lock(msg.sender, nodeStake);
    }

    /// @notice Release a claim whose deadline has passed: the slot reopens and the node's lock
    /// is released. Anyone may call (the node itself, the sponsor of a cancelled job, a keeper).
    /// @param jobId the job
    /// @param round the claim's round
    /// @param slot the claim's slot
    function expireClaim(uint256 jobId, uint256 round, uint256 slot) external nonReentrant {
        Slot storage s = _slots[_slotKey(jobId, round, slot)];
        if (s.status != SlotStatus.Claimed) revert JobMarketNotClaimed(jobId, round, slot);
        if (block.timestamp <= s.deadline) revert JobMarketClaimNotExpired(s.deadline);
        address expired = s.node;
        s.status = SlotStatus.Open;
        s.node = address(0);
        _jobs[jobId].claimsOpen -= 1;
        emit ClaimExpired(jobId, round, slot, expired);
        stakes.unlock(expired, nodeStake);
    }

    /// @notice Submit the work of a claimed slot, up to and including its deadline (unix seconds). The
    /// digests are stored; the CIDs are only emitted, so gas does not depend on CID length.
    /// @param jobId the job
    /// @param round the round of the claim
    /// @param slot the slot of the claim
    /// @param outputDigest sha256 of the slot's final checkpoint
    /// @param traceRoot Merkle root over all checkpoint leaves (OpenZeppelin standard tree)
    /// @param outputCid CID of the final checkpoint
    /// @param manifestCid CID of the JSON manifest listing every checkpoint's CID and sha256
    /// @return contributionId the new contribution's id
    function submitContribution(
        uint256 jobId,
        uint256 round,
        uint256 slot,
        bytes32 outputDigest,
        bytes32 traceRoot,
        string calldata outputCid,
        string calldata manifestCid
    ) external returns (uint256 contributionId) {
        Slot storage s = _slots[_slotKey(jobId, round, slot)];
        if (s.status != SlotStatus.Claimed || s.node != msg.sender) revert JobMarketNotClaimant(msg.sender, s.node);
        if (block.timestamp > s.deadline) revert JobMarketClaimExpired(s.deadline);
        contributionId = ++contributionCount;
        s.status = SlotStatus.Submitted;
        // a claimed slot exists only for jobId < 2^32, round < 1000, slot < 256; ids < 2^48
        s.contributionId = uint48(contributionId);
        _contributions[contributionId] = StoredContribution({
            node: msg.sender,
            jobId: uint32(jobId),
            round: uint16(round),
            slot: uint8(slot),
            submitBlock: uint40(block.number),
            outputDigest: outputDigest,
            traceRoot: traceRoot
        });
        emit ContributionSubmitted(
            contributionId, jobId, round, slot, msg.sender, outputDigest, traceRoot, outputCid, manifestCid
        );
    }

    // -- aggregates ------------------------------------------------------------------------

    /// @notice Propose G_{r+1} once every slot of the current round is accepted, locking the
    /// caller's `aggregateBond`. Anyone staked may challenge it within `challengeWindow` seconds
    /// (Disputes); after that `finalizeAggregate` makes it the next round's global model.
    /// @param jobId an open job
    /// @param round its current round
    /// @param modelDigest sha256 of the aggregated global checkpoint (non-zero)
    /// @param modelCid its CID
    /// @param validationLossMicro validation loss of G_{r+1} times 1e6
    function postAggregate(
        uint256 jobId,
        uint256 round,
        bytes32 modelDigest,
        string calldata modelCid,
        uint256 validationLossMicro
    ) external nonReentrant {
        Job storage job = _existingJob(jobId);
        if (job.status != JobStatus.Open) revert JobMarketJobNotOpen(jobId);
        if (round != job.currentRound) revert JobMarketWrongRound(jobId, round, job.currentRound);
        if (job.acceptedInRound < job.params.slotsPerRound) {
            revert JobMarketRoundIncomplete(jobId, round, job.acceptedInRound, job.params.slotsPerRound);
        }
        if (modelDigest == bytes32(0)) revert JobMarketInvalidParams("modelDigest");
        Aggregate storage a = _aggregates[jobId][round];
        if (a.status != AggregateStatus.None) revert JobMarketAggregateExists(jobId, round);
        a.poster = msg.sender;
        a.postedAt = uint40(block.timestamp);
        a.status = AggregateStatus.Pending;
        a.modelDigest = modelDigest;
        a.validationLossMicro = validationLossMicro;
        a.modelCid = modelCid;
        emit AggregatePosted(
            jobId, round, modelDigest, modelCid, validationLossMicro, msg.sender, block.timestamp + challengeWindow
        );
        stakes.lock(msg.sender, aggregateBond);
    }

    /// @notice Make a pending aggregate final once its challenge window has passed: the job moves
    /// to the next round (or completes) and the poster's bond is released. Anyone may call.
    /// @param jobId the job
    /// @param round the aggregate's round
    function finalizeAggregate(uint256 jobId, uint256 round) external nonReentrant {
        Job storage job = _existingJob(jobId);
        Aggregate storage a = _aggregates[jobId][round];
        if (a.status != AggregateStatus.Pending) revert JobMarketNoPendingAggregate(jobId, round);
        uint256 ready = uint256(a.postedAt) + challengeWindow + 1;
        if (block.timestamp < ready) revert JobMarketAggregateWindowOpen(jobId, round, ready);
        a.status = AggregateStatus.Final;
        job.currentModelDigest = a.modelDigest;
        job.acceptedInRound = 0;
        // a pending aggregate exists only for the current round, and rounds <= MAX_ROUNDS
        job.currentRound = uint16(round + 1);
        aggregateBlock[jobId][round] = block.number;
        address poster = a.poster;
        emit RoundAggregated(jobId, round, a.modelDigest, a.modelCid, a.validationLossMicro, poster);
        if (round + 1 == job.params.rounds) {
            job.status = JobStatus.Completed;
            emit JobCompleted(jobId);
        }
        stakes.unlock(poster, aggregateBond);
    }

    /// @inheritdoc IJobMarket
    function disputeAggregate(uint256 jobId, uint256 round, uint256 disputeId)
        external
        onlyRole(DISPUTES_ROLE)
        returns (address poster, bytes32 modelDigest)
    {
        Aggregate storage a = _aggregates[jobId][round];
        if (a.status != AggregateStatus.Pending) revert JobMarketNoPendingAggregate(jobId, round);
        uint256 deadline = uint256(a.postedAt) + challengeWindow;
        if (block.timestamp > deadline) revert JobMarketAggregateWindowClosed(jobId, round, deadline);
        a.status = AggregateStatus.Disputed;
        emit AggregateDisputed(jobId, round, disputeId);
        return (a.poster, a.modelDigest);
    }

    /// @inheritdoc IJobMarket
    function resolveAggregate(
        uint256 jobId,
        uint256 round,
        bool replace,
        address newPoster,
        bytes32 newDigest,
        string calldata newCid,
        uint256 newLossMicro
    ) external onlyRole(DISPUTES_ROLE) {
        Aggregate storage a = _aggregates[jobId][round];
        if (a.status != AggregateStatus.Disputed) revert JobMarketAggregateNotDisputed(jobId, round);
        a.status = AggregateStatus.Pending;
        if (replace) {
            a.poster = newPoster;
            a.postedAt = uint40(block.timestamp);
            a.modelDigest = newDigest;
            a.validationLossMicro = newLossMicro;
            a.modelCid = newCid;
            emit AggregateReplaced(
                jobId, round, newDigest, newCid, newLossMicro, newPoster, block.timestamp + challengeWindow
            );
        } else {
            emit AggregateUpheld(jobId, round);
        }
    }

    // -- settlement ------------------------------------------------------------------------

    /// @inheritdoc IJobMarket
    function settleContribution(uint256 contributionId, bool accepted, bool payFee)
        external
        onlyRole(SETTLEMENT_ROLE)
        returns (address node, uint256 reward, uint256 fee)
    {
        StoredContribution storage c = _contributions[contributionId];
        node = c.node;
        if (node == address(0)) revert JobMarketUnknownContribution(contributionId);
        Slot storage s = _slots[_slotKey(c.jobId, c.round, c.slot)];
        if (s.contributionId != contributionId || s.status != SlotStatus.Submitted) {
            revert JobMarketContributionSettled(contributionId);
        }
        Job storage job = _jobs[c.jobId];
        job.claimsOpen -= 1;
        if (accepted) {
            reward = job.params.rewardPerSlot;
            if (payFee) fee = job.params.verifierFee;
            s.status = SlotStatus.Accepted;
            job.acceptedInRound += 1;
            job.escrow -= reward + fee;
        } else {
            s.status = SlotStatus.Open;
            s.node = address(0);
        }
        emit ContributionSettled(contributionId, accepted, reward, fee);
    }

    // -- guardian --------------------------------------------------------------------------

    /// @notice Stop new jobs and claims. Submissions, settlement, disputes, refunds and
    /// withdrawals keep working.
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _pause();
    }

    /// @notice Resume new jobs and claims.
    function unpause() external onlyRole(GUARDIAN_ROLE) {
        _unpause();
    }

    // -- views -----------------------------------------------------------------------------

    /// @inheritdoc IJobMarket
    /// @dev Status: Submitted while its slot waits on it, Accepted once the slot is accepted with
    /// it, Rejected once the slot reopened (or moved on to a later contribution).
    function getContribution(uint256 contributionId) external view returns (Contribution memory out) {
        StoredContribution storage c = _contributions[contributionId];
        if (c.node == address(0)) return out;
        Slot storage s = _slots[_slotKey(c.jobId, c.round, c.slot)];
        ContributionStatus status = ContributionStatus.Rejected;
        if (s.contributionId == contributionId) {
            if (s.status == SlotStatus.Submitted) status = ContributionStatus.Submitted;
            else if (s.status == SlotStatus.Accepted) status = ContributionStatus.Accepted;
        }
        return Contribution({
            node: c.node,
            jobId: c.jobId,
            round: c.round,
            slot: c.slot,
            submitBlock: c.submitBlock,
            stakeLocked: uint128(nodeStake),
            status: status,
            outputDigest: c.outputDigest,
            traceRoot: c.traceRoot
        });
    }

    /// @inheritdoc IJobMarket
    function verifierFeeOf(uint256 contributionId) external view returns (uint256) {
        return _jobs[_contributions[contributionId].jobId].params.verifierFee;
    }

    /// @inheritdoc IJobMarket
    function revealWindowOf(uint256 contributionId) external view returns (uint256) {
        return _jobs[_contributions[contributionId].jobId].params.revealWindow;
    }

    /// @inheritdoc IJobMarket
    function jobParams(uint256 jobId) external view returns (JobParams memory) {
        return _jobs[jobId].params;
    }

    /// @notice A job's state and the block of its JobCreated event.
    /// @param jobId the job
    /// @return sponsor who created it
    /// @return status None, Open, Completed or Cancelled
    /// @return currentRound the round being worked on (== rounds once completed)
    /// @return escrow tokens of this job still in the vault (unpaid, unrefunded)
    /// @return currentModelDigest sha256 of G_currentRound
    /// @return createdBlock block of JobCreated
    /// @return acceptedInRound slots of the current round accepted so far
    /// @return claimsOpen slots of the current round claimed or submitted, not yet settled
    function jobState(uint256 jobId)
        external
        view
        returns (
            address sponsor,
            JobStatus status,
            uint256 currentRound,
            uint256 escrow,
            bytes32 currentModelDigest,
            uint256 createdBlock,
            uint256 acceptedInRound,
            uint256 claimsOpen
        )
    {
        Job storage job = _jobs[jobId];
        return (
            job.sponsor,
            job.status,
            job.currentRound,
            job.escrow,
            job.currentModelDigest,
            job.createdBlock,
            job.acceptedInRound,
            job.claimsOpen
        );
    }

    /// @notice What `refund` would pay the sponsor now (zero while the job is open).
    /// @param jobId the job
    function refundable(uint256 jobId) external view returns (uint256) {
        Job storage job = _jobs[jobId];
        if (job.status != JobStatus.Completed && job.status != JobStatus.Cancelled) return 0;
        return _refundable(job);
    }

    /// @notice A slot's state.
    /// @param jobId the job
    /// @param round the round
    /// @param slot the slot
    function slotState(uint256 jobId, uint256 round, uint256 slot)
        external
        view
        returns (address node, uint256 deadline, SlotStatus status, uint256 contributionId)
    {
        Slot storage s = _slots[_slotKey(jobId, round, slot)];
        return (s.node, s.deadline, s.status, s.contributionId);
    }

    /// @notice A round's aggregate: pending, disputed or final, and its challenge deadline.
    /// @param jobId the job
    /// @param round the round whose output G_{round+1} it is
    function aggregateState(uint256 jobId, uint256 round)
        external
        view
        returns (
            AggregateStatus status,
            address poster,
            uint256 postedAt,
            bytes32 modelDigest,
            uint256 validationLossMicro,
            string memory modelCid,
            uint256 challengeDeadline
        )
    {
        Aggregate storage a = _aggregates[jobId][round];
        uint256 deadline = a.status == AggregateStatus.None ? 0 : uint256(a.postedAt) + challengeWindow;
        return (a.status, a.poster, a.postedAt, a.modelDigest, a.validationLossMicro, a.modelCid, deadline);
    }

    // -- internals -------------------------------------------------------------------------

    function _existingJob(uint256 jobId) private view returns (Job storage job) {
        job = _jobs[jobId];
        if (job.status == JobStatus.None) revert JobMarketUnknownJob(jobId);
    }

    /// @dev Escrow minus what the claims in flight can still earn (reward + fee each).
    function _refundable(Job storage job) private view returns (uint256) {
        uint256 reserved = uint256(job.claimsOpen) * (uint256(job.params.rewardPerSlot) + job.params.verifierFee);
        return job.escrow - reserved;
    }

    function _checkParams(JobParams calldata p) private view {
        if (p.rounds == 0 || p.rounds > MAX_ROUNDS) revert JobMarketInvalidParams("rounds");
        if (p.slotsPerRound == 0 || p.slotsPerRound > MAX_SLOTS_PER_ROUND) revert JobMarketInvalidParams("slotsPerRound");
        if (p.numSegments == 0 || p.numSegments > MAX_SEGMENTS) revert JobMarketInvalidParams("numSegments");
        if (p.sampleCount == 0 || p.sampleCount > p.numSegments || p.sampleCount > MAX_SAMPLES) {
            revert JobMarketInvalidParams("sampleCount");
        }
        if (p.claimTimeout == 0 || p.claimTimeout > MAX_CLAIM_TIMEOUT) revert JobMarketInvalidParams("claimTimeout");
        if (p.specDigest == bytes32(0) || p.initialModelDigest == bytes32(0)) revert JobMarketInvalidParams("digest");
        if (p.rewardPerSlot > Limits.MAX_AMOUNT || p.verifierFee > Limits.MAX_AMOUNT) {
            revert JobMarketInvalidParams("amount");
        }
        if (p.cheatFractionBps == 0 || p.cheatFractionBps > Limits.BPS) revert JobMarketInvalidParams("cheatFractionBps");
        (bool loses, uint256 detection) =
            Economics.cheatingLoses(p.cheatFractionBps, p.sampleCount, nodeStake, p.rewardPerSlot);
        if (!loses) revert JobMarketCheatingPays(detection, nodeStake, p.rewardPerSlot);
    }

    function _slotKey(uint256 jobId, uint256 round, uint256 slot) private pure returns (bytes32) {
        return keccak256(abi.encode(jobId, round, slot));
    }
}
