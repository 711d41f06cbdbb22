// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ISettlement} from "./interfaces/ISettlement.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {Contribution, ContributionStatus, JobParams, Verdict} from "./interfaces/Types.sol";
import {Sampling} from "./libraries/Sampling.sol";
import {TraceCommitment} from "./libraries/TraceCommitment.sol";

/// @title Settlement
/// @notice Turns a submitted contribution into money: records the sampling seed from a block
/// after the submission, draws the verifier, takes its verdict, and after the challenge window
/// pays node and verifier (pull payments) or slashes the node.
contract Settlement is ISettlement, AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    uint256 private constant BPS = 10_000;

    IERC20 public immutable token;
    IStakeRegistry public immutable stakes;
    IJobMarket public immutable market;
    /// @notice Blocks after the seed is recorded within which the assigned verifier must attest.
    uint256 public immutable attestWindow;
    /// @notice Blocks after an attestation before it can be finalized.
    uint256 public immutable challengeWindow;
    /// @notice Share of a slashed stake credited to the verifier who proved the fault (basis points).
    uint256 public immutable slashRewardBps;

    mapping(uint256 contributionId => Verification) private _verifications;
    mapping(address account => uint256) public credits;

    /// @param token_ payout token
    /// @param stakes_ the StakeRegistry (this contract needs LOCKER_ROLE and SLASHER_ROLE)
    /// @param market_ the JobMarket (this contract needs its SETTLEMENT_ROLE)
    /// @param admin receives DEFAULT_ADMIN_ROLE
    /// @param attestWindow_ blocks, > 0
    /// @param challengeWindow_ blocks, > 0
    /// @param slashRewardBps_ basis points, <= 10000
    constructor(
        IERC20 token_,
        IStakeRegistry stakes_,
        IJobMarket market_,
        address admin,
        uint256 attestWindow_,
        uint256 challengeWindow_,
        uint256 slashRewardBps_
    ) {
        if (attestWindow_ == 0) revert SettlementInvalidParams("attestWindow");
        if (challengeWindow_ == 0) revert SettlementInvalidParams("challengeWindow");
        if (slashRewardBps_ > BPS) revert SettlementInvalidParams("slashRewardBps");
        token = token_;
        stakes = stakes_;
        market = market_;
        attestWindow = attestWindow_;
        challengeWindow = challengeWindow_;
        slashRewardBps = slashRewardBps_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Record the sampling seed of a contribution from the hash of the block after its
    /// submission, and draw its verifier. Anyone may call. If that block hash is no longer
    /// available (256 blocks), the seed block moves to the next block, which no caller can know.
    /// @param contributionId the contribution
    function recordSeed(uint256 contributionId) external {
        Contribution memory c = market.getContribution(contributionId);
        if (c.status != ContributionStatus.Submitted) revert SettlementNotSubmitted(contributionId);
        Verification storage v = _verifications[contributionId];
        if (v.seed != bytes32(0)) revert SettlementSeedAlreadyRecorded(contributionId);
        uint256 seedBlock = v.seedBlock == 0 ? c.submitBlock + 1 : v.seedBlock;
        if (block.number <= seedBlock) revert SettlementSeedNotReady(contributionId, seedBlock);
        bytes32 blockHash = blockhash(seedBlock);
        if (blockHash == bytes32(0)) {
            v.seedBlock = uint64(block.number + 1);
            emit SeedBlockReset(contributionId, block.number + 1);
            return;
        }
        uint256 count = stakes.verifierCount();
        if (count == 0) revert SettlementNoVerifiers();
        bytes32 seed = keccak256(abi.encode(blockHash, contributionId));
        uint256 index = Sampling.verifierIndex(seed, count);
        address verifier = stakes.verifierAt(index);
        if (verifier == c.node) {
            // a node never verifies its own work: take the next verifier in the set
            if (count == 1) revert SettlementNoVerifiers();
            verifier = stakes.verifierAt((index + 1) % count);
        }
        v.seed = seed;
        v.seedBlock = uint64(seedBlock);
        v.seedRecordedAt = uint64(block.number);
        v.verifier = verifier;
        emit SeedRecorded(contributionId, seed, seedBlock, verifier);
    }

    /// @notice The assigned verifier's verdict on the sampled segments.
    /// @param contributionId the contribution
    /// @param pass true when every sampled segment re-executed to its committed checkpoint
    /// @param reportCid CID of the JSON report of what the verifier recomputed
    function attest(uint256 contributionId, bool pass, string calldata reportCid) external {
        Verification storage v = _verifications[contributionId];
        if (v.seed == bytes32(0)) revert SettlementSeedNotRecorded(contributionId);
        if (msg.sender != v.verifier) revert SettlementNotAssignedVerifier(msg.sender, v.verifier);
        if (v.verdict != Verdict.None) revert SettlementAlreadyAttested(contributionId);
        uint256 deadline = v.seedRecordedAt + attestWindow;
        if (block.number > deadline) revert SettlementAttestWindowClosed(contributionId, deadline);
        v.verdict = pass ? Verdict.Pass : Verdict.Fail;
        v.attestedAt = uint64(block.number);
        emit Attested(contributionId, msg.sender, pass, reportCid);
    }

    /// @notice Settle an attested contribution once its challenge window has closed: a pass
    /// credits the node's reward and the verifier's fee; a fail slashes the node's locked stake,
    /// credits `slashRewardBps` of it to the verifier, burns the rest and reopens the slot.
    /// @param contributionId the contribution
    function finalize(uint256 contributionId) external nonReentrant {
        Verification storage v = _verifications[contributionId];
        if (v.verdict == Verdict.None) revert SettlementNotAttested(contributionId);
        if (v.finalized) revert SettlementAlreadyFinalized(contributionId);
        uint256 readyBlock = v.attestedAt + challengeWindow + 1;
        if (block.number < readyBlock) revert SettlementChallengeWindowOpen(contributionId, readyBlock);
        v.finalized = true;
        Contribution memory c = market.getContribution(contributionId);
        if (v.verdict == Verdict.Pass) {
            JobParams memory p = market.jobParams(c.jobId);
            credits[c.node] += p.rewardPerSlot;
            credits[v.verifier] += p.verifierFee;
            emit ContributionFinalized(contributionId, true, p.rewardPerSlot, p.verifierFee, 0);
            market.settleContribution(contributionId, true);
        } else {
            uint256 reward = (uint256(c.stakeLocked) * slashRewardBps) / BPS;
            credits[v.verifier] += reward;
            emit ContributionFinalized(contributionId, false, 0, reward, c.stakeLocked);
            market.settleContribution(contributionId, false);
            stakes.slash(c.node, c.stakeLocked, address(this), reward);
        }
    }

    /// @notice Withdraw every credited token (pull payment).
    function withdraw() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert SettlementNothingToWithdraw(msg.sender);
        credits[msg.sender] = 0;
        emit CreditsWithdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice The verification record of a contribution.
    function verification(uint256 contributionId) external view returns (Verification memory) {
        return _verifications[contributionId];
    }

    /// @notice The segment indices the verifier must re-execute (needs the seed).
    function sampledSegments(uint256 contributionId) external view returns (uint256[] memory) {
        Verification storage v = _verifications[contributionId];
        if (v.seed == bytes32(0)) revert SettlementSeedNotRecorded(contributionId);
        JobParams memory p = market.jobParams(market.getContribution(contributionId).jobId);
        return Sampling.sampleIndices(v.seed, p.numSegments, p.sampleCount);
    }

    /// @notice The sampling rule itself, exposed so anyone can check it against their own copy.
    function sampleIndices(bytes32 seed, uint256 n, uint256 k) external pure returns (uint256[] memory) {
        return Sampling.sampleIndices(seed, n, k);
    }

    /// @notice Whether checkpoint `index` with sha256 `digest` belongs to the contribution's trace.
    function verifyCheckpoint(uint256 contributionId, uint256 index, bytes32 digest, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        bytes32 root = market.getContribution(contributionId).traceRoot;
        return TraceCommitment.verify(proof, root, index, digest);
    }
}
