// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {JobParams, JobStatus, SlotStatus, Contribution, ContributionStatus} from "./interfaces/Types.sol";

/// @title JobMarket
/// @notice Escrows training bounties and records the work done on them: rounds of slots, claims
/// backed by locked stake, contributions (digests on-chain, CIDs in events) and round aggregates.
/// Money moves out only through Settlement (payouts) and the sponsor's refund.
contract JobMarket is IJobMarket, AccessControl, Pausable, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice The Settlement contract: settles contributions.
    bytes32 public constant SETTLEMENT_ROLE = keccak256("SETTLEMENT_ROLE");
    /// @notice May pause new jobs and claims (never withdrawals or settlement).
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    /// @notice Upper bounds that keep every loop and every product bounded.
    uint256 public constant MAX_ROUNDS = 1000;
    uint256 public constant MAX_SLOTS_PER_ROUND = 256;
    uint256 public constant MAX_SEGMENTS = 4096;
    uint256 public constant MAX_SAMPLES = 32;
    /// @notice Longest claim, in blocks (keeps the uint40 deadline far from overflow).
    uint256 public constant MAX_CLAIM_TIMEOUT = type(uint32).max;

    struct Job {
        address sponsor;
        JobStatus status;
        uint32 currentRound;
        uint32 acceptedInRound;
        uint64 createdBlock;
        uint256 escrow;
        bytes32 currentModelDigest;
        JobParams params;
    }

    struct Slot {
        address node;
        uint40 deadline;
        SlotStatus status;
        uint48 contributionId;
    }

    IERC20 public immutable token;
    IStakeRegistry public immutable stakes;
    address public settlement;

    uint256 public jobCount;
    uint256 public contributionCount;
    mapping(uint256 jobId => Job) private _jobs;
    mapping(bytes32 slotKey => Slot) private _slots;
    mapping(uint256 contributionId => Contribution) private _contributions;
    /// @notice Block in which each round's aggregate was posted, so readers find its event fast.
    mapping(uint256 jobId => mapping(uint256 round => uint256 blockNumber)) public aggregateBlock;

    /// @param token_ escrow token
    /// @param stakes_ the StakeRegistry (this contract needs its LOCKER_ROLE)
    /// @param admin receives DEFAULT_ADMIN_ROLE and GUARDIAN_ROLE
    constructor(IERC20 token_, IStakeRegistry stakes_, address admin) {
        token = token_;
        stakes = stakes_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GUARDIAN_ROLE, admin);
    }

    /// @notice Wire the Settlement contract once; it receives payouts and settles contributions.
    /// @param settlement_ the Settlement contract address
    function setSettlement(address settlement_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (settlement != address(0) || settlement_ == address(0)) revert JobMarketInvalidParams("settlement");
        settlement = settlement_;
        _grantRole(SETTLEMENT_ROLE, settlement_);
    }

    /// @notice Post a bounty: escrows rounds * slotsPerRound * (rewardPerSlot + verifierFee).
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
        Job storage job = _jobs[jobId];
        job.sponsor = msg.sender;
        job.status = JobStatus.Open;
        job.createdBlock = uint64(block.number);
        job.escrow = escrow;
        job.currentModelDigest = params.initialModelDigest;
        job.params = params;
        emit JobCreated(jobId, msg.sender, params, specCid, initialModelCid, escrow);
        token.safeTransferFrom(msg.sender, address(this), escrow);
    }

    /// @notice Claim slot `slot` of the current round, locking `minNodeStake` of the caller's stake.
    /// A claim whose deadline has passed may be taken over; the old claimant's lock is released.
    /// @param jobId the job
    /// @param round must be the job's current round
    /// @param slot index in [0, slotsPerRound)
    function claimSlot(uint256 jobId, uint256 round, uint256 slot) external whenNotPaused {
        Job storage job = _openJob(jobId);
        if (round != job.currentRound) revert JobMarketWrongRound(jobId, round, job.currentRound);
        if (slot >= job.params.slotsPerRound) revert JobMarketSlotOutOfRange(slot, job.params.slotsPerRound);
        Slot storage s = _slots[_slotKey(jobId, round, slot)];
        if (s.status == SlotStatus.Claimed && block.number > s.deadline) {
            address expired = s.node;
            s.status = SlotStatus.Open;
            stakes.unlock(expired, stakes.minNodeStake());
            emit ClaimExpired(jobId, round, slot, expired);
        }
        if (s.status != SlotStatus.Open) revert JobMarketSlotTaken(jobId, round, slot);
        uint256 deadline = block.number + job.params.claimTimeout;
        s.node = msg.sender;
        s.deadline = uint40(deadline);
        s.status = SlotStatus.Claimed;
        stakes.lock(msg.sender, stakes.minNodeStake());
        emit SlotClaimed(jobId, round, slot, msg.sender, deadline);
    }

    /// @notice Submit the work of a claimed slot. The digests are stored; the CIDs are only
    /// emitted, so gas does not depend on CID length.
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
        if (block.number > s.deadline) revert JobMarketClaimExpired(s.deadline);
        contributionId = ++contributionCount;
        s.status = SlotStatus.Submitted;
        s.contributionId = uint48(contributionId);
        _contributions[contributionId] = Contribution({
            node: msg.sender,
            jobId: uint64(jobId),
            round: uint32(round),
            slot: uint32(slot),
            submitBlock: uint64(block.number),
            stakeLocked: uint128(stakes.minNodeStake()),
            status: ContributionStatus.Submitted,
            outputDigest: outputDigest,
            traceRoot: traceRoot
        });
        emit ContributionSubmitted(
            contributionId, jobId, round, slot, msg.sender, outputDigest, traceRoot, outputCid, manifestCid
        );
    }

    /// @inheritdoc IJobMarket
    /// @dev Accepted: reward and fee leave escrow for the Settlement contract (which credits
    /// them) and the node's lock is released. Rejected: escrow is untouched and the slot reopens;
    /// the Settlement contract slashes the node's lock.
    function settleContribution(uint256 contributionId, bool accepted)
        external
        onlyRole(SETTLEMENT_ROLE)
        nonReentrant
    {
        Contribution storage c = _contributions[contributionId];
        if (c.status == ContributionStatus.None) revert JobMarketUnknownContribution(contributionId);
        if (c.status != ContributionStatus.Submitted) revert JobMarketContributionSettled(contributionId);
        Job storage job = _jobs[c.jobId];
        Slot storage s = _slots[_slotKey(c.jobId, c.round, c.slot)];
        uint256 reward;
        uint256 fee;
        if (accepted) {
            reward = job.params.rewardPerSlot;
            fee = job.params.verifierFee;
            c.status = ContributionStatus.Accepted;
            s.status = SlotStatus.Accepted;
            job.acceptedInRound += 1;
            job.escrow -= reward + fee;
            stakes.unlock(c.node, c.stakeLocked);
        } else {
            c.status = ContributionStatus.Rejected;
            s.status = SlotStatus.Open;
            s.node = address(0);
        }
        emit ContributionSettled(contributionId, accepted, reward, fee);
        if (accepted) token.safeTransfer(msg.sender, reward + fee);
    }

    /// @notice Record G_{r+1} once every slot of the current round is accepted. The caller must
    /// be staked. The last round completes the job.
    /// @param jobId the job
    /// @param round the current round
    /// @param modelDigest sha256 of the aggregated global checkpoint
    /// @param modelCid its CID
    /// @param validationLossMicro validation loss of G_{r+1} times 1e6
    function postAggregate(
        uint256 jobId,
        uint256 round,
        bytes32 modelDigest,
        string calldata modelCid,
        uint256 validationLossMicro
    ) external {
        Job storage job = _openJob(jobId);
        if (round != job.currentRound) revert JobMarketWrongRound(jobId, round, job.currentRound);
        if (job.acceptedInRound < job.params.slotsPerRound) {
            revert JobMarketRoundIncomplete(jobId, round, job.acceptedInRound, job.params.slotsPerRound);
        }
        if (stakes.stakeOf(msg.sender) == 0) revert JobMarketNotStaked(msg.sender);
        job.currentModelDigest = modelDigest;
        job.acceptedInRound = 0;
        aggregateBlock[jobId][round] = block.number;
        job.currentRound += 1;
        emit RoundAggregated(jobId, round, modelDigest, modelCid, validationLossMicro, msg.sender);
        if (job.currentRound == job.params.rounds) {
            job.status = JobStatus.Completed;
            emit JobCompleted(jobId);
        }
    }

    /// @notice Return every unspent token of a completed job to its sponsor.
    /// @param jobId the job
    function refund(uint256 jobId) external nonReentrant {
        Job storage job = _jobs[jobId];
        if (job.status == JobStatus.None) revert JobMarketUnknownJob(jobId);
        if (msg.sender != job.sponsor) revert JobMarketNotSponsor(msg.sender);
        if (job.status != JobStatus.Completed) revert JobMarketNotCompleted(jobId);
        uint256 amount = job.escrow;
        if (amount == 0) revert JobMarketNothingToRefund(jobId);
        job.escrow = 0;
        emit EscrowRefunded(jobId, msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Stop new jobs and claims. Settlement and withdrawals keep working.
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _pause();
    }

    /// @notice Resume new jobs and claims.
    function unpause() external onlyRole(GUARDIAN_ROLE) {
        _unpause();
    }

    /// @inheritdoc IJobMarket
    function getContribution(uint256 contributionId) external view returns (Contribution memory) {
        return _contributions[contributionId];
    }

    /// @inheritdoc IJobMarket
    function jobParams(uint256 jobId) external view returns (JobParams memory) {
        return _jobs[jobId].params;
    }

    /// @notice A job's state and the block of its JobCreated event.
    function jobState(uint256 jobId)
        external
        view
        returns (
            address sponsor,
            JobStatus status,
            uint256 currentRound,
            uint256 escrow,
            bytes32 currentModelDigest,
            uint256 createdBlock
        )
    {
        Job storage job = _jobs[jobId];
        return (job.sponsor, job.status, job.currentRound, job.escrow, job.currentModelDigest, job.createdBlock);
    }

    /// @notice A slot's state.
    function slotState(uint256 jobId, uint256 round, uint256 slot)
        external
        view
        returns (address node, uint256 deadline, SlotStatus status, uint256 contributionId)
    {
        Slot storage s = _slots[_slotKey(jobId, round, slot)];
        return (s.node, s.deadline, s.status, s.contributionId);
    }

    function _openJob(uint256 jobId) private view returns (Job storage job) {
        job = _jobs[jobId];
        if (job.status == JobStatus.None) revert JobMarketUnknownJob(jobId);
        if (job.status != JobStatus.Open) revert JobMarketJobNotOpen(jobId);
    }

    function _checkParams(JobParams calldata p) private pure {
        if (p.rounds == 0 || p.rounds > MAX_ROUNDS) revert JobMarketInvalidParams("rounds");
        if (p.slotsPerRound == 0 || p.slotsPerRound > MAX_SLOTS_PER_ROUND) revert JobMarketInvalidParams("slotsPerRound");
        if (p.numSegments == 0 || p.numSegments > MAX_SEGMENTS) revert JobMarketInvalidParams("numSegments");
        if (p.sampleCount == 0 || p.sampleCount > p.numSegments || p.sampleCount > MAX_SAMPLES) {
            revert JobMarketInvalidParams("sampleCount");
        }
        if (p.claimTimeout == 0 || p.claimTimeout > MAX_CLAIM_TIMEOUT) revert JobMarketInvalidParams("claimTimeout");
        if (p.specDigest == bytes32(0) || p.initialModelDigest == bytes32(0)) revert JobMarketInvalidParams("digest");
    }

    function _slotKey(uint256 jobId, uint256 round, uint256 slot) private pure returns (bytes32) {
        return keccak256(abi.encode(jobId, round, slot));
    }
}
