// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {TrainToken} from "../TrainToken.sol";
import {StakeRegistry} from "../StakeRegistry.sol";
import {JobMarket} from "../JobMarket.sol";
import {Settlement} from "../Settlement.sol";
import {Disputes} from "../Disputes.sol";
import {IDisputes} from "../interfaces/IDisputes.sol";
import {ISettlement} from "../interfaces/ISettlement.sol";
import {JobParams, JobStatus, Phase, Verdict, DisputeStatus, AggregateStatus} from "../interfaces/Types.sol";
import {WithVm} from "./Vm.sol";

/// @title ProtocolHandler
/// @notice TEST ONLY. Drives the whole protocol for the invariant fuzzer: eight actors stake,
/// sponsor, claim, submit, verify, dispute, vote, aggregate, cancel, refund, unbond and withdraw in
/// any order, while blocks pass. Every action is bounded and swallows reverts (a refused call is a
/// legitimate outcome); what matters is what a *successful* call did, which the handler checks
/// against ghost state:
/// - a slash never takes more than the stake that was locked before the call;
/// - a contribution is settled at most once (no successful settlement of a settled contribution);
/// - nothing is paid before its window has closed (finalize, resolve, requestTakeover,
///   finalizeAggregate, withdrawUnbonded, refund);
/// - credits appear only through settlement calls;
/// - the token supply never rises.
contract ProtocolHandler is WithVm {
    uint256 internal constant N = 8;
    uint256 internal constant CHALLENGE = 5;
    uint256 internal constant ATTEST = 20;
    uint256 internal constant VOTE = 20;

    TrainToken public token;
    StakeRegistry public stakes;
    JobMarket public market;
    Settlement public settlement;
    Disputes public disputes;
    address[N] public actors;

    // ghosts: violations seen (each must stay false)
    bool public slashBeyondLock;
    bool public settledTwice;
    bool public paidEarly;
    bool public creditsFromNowhere;
    bool public supplyRose;
    uint256 public lastSupply;
    mapping(uint256 contributionId => bool) public settledSeen;
    mapping(uint256 jobId => uint256) public refunded;
    uint256 public successes;
    uint256 public finalized;
    uint256 public resolved;
    uint256 public aggregated;
    uint256 public reassigned;

    struct Snap {
        uint256[N] staked;
        uint256[N] locked;
        uint256 credits;
    }

    constructor() {
        token = new TrainToken(address(this), 1e27);
        stakes = new StakeRegistry(token, address(this), 100e18, 100e18, 50e18, 20e18, 400, 1, 5_000, 2_000);
        market = new JobMarket(stakes, address(this), CHALLENGE);
        settlement = new Settlement(stakes, market, address(this), ATTEST);
        disputes = new Disputes(stakes, market, settlement, address(this), 3, VOTE, 2);
        stakes.grantRole(stakes.LOCKER_ROLE(), address(market));
        stakes.grantRole(stakes.TREASURER_ROLE(), address(market));
        stakes.grantRole(stakes.LOCKER_ROLE(), address(settlement));
        stakes.grantRole(stakes.SLASHER_ROLE(), address(settlement));
        stakes.grantRole(stakes.TREASURER_ROLE(), address(settlement));
        stakes.grantRole(stakes.LOCKER_ROLE(), address(disputes));
        stakes.grantRole(stakes.SLASHER_ROLE(), address(disputes));
        market.grantRole(market.SETTLEMENT_ROLE(), address(settlement));
        market.grantRole(market.DISPUTES_ROLE(), address(disputes));
        settlement.grantRole(settlement.DISPUTES_ROLE(), address(disputes));
        for (uint256 i = 0; i < N; ++i) {
            address a = address(uint160(0xA000 + i));
            actors[i] = a;
            token.transfer(a, 100_000e18);
            vm.prank(a);
            token.approve(address(stakes), type(uint256).max);
            vm.prank(a);
            token.approve(address(market), type(uint256).max);
            vm.prank(a);
            stakes.stake(400e18);
            if (i >= N / 2) {
                vm.prank(a);
                stakes.registerVerifier();
            }
        }
        lastSupply = token.totalSupply();
        _pass(1);
        _createJob(0, 0x0101, 5e18); // one job of 2 rounds x 2 slots to start from
    }

    function actorList() external view returns (address[N] memory) {
        return actors;
    }

    // -- ghost bookkeeping -------------------------------------------------------------------

    function _snap() internal view returns (Snap memory s) {
        for (uint256 i = 0; i < N; ++i) {
            s.staked[i] = stakes.stakeOf(actors[i]);
            s.locked[i] = stakes.lockedOf(actors[i]);
            s.credits += stakes.creditsOf(actors[i]);
        }
    }

    /// @dev After any call: stake may drop only within the locks held before (except the
    /// unbonder's own request), credits may rise only when `pays`, supply may only fall.
    function _check(Snap memory b, uint256 unbonder, bool pays) internal {
        Snap memory a = _snap();
        for (uint256 i = 0; i < N; ++i) {
            if (i == unbonder) continue;
            if (a.staked[i] < b.staked[i] && b.staked[i] - a.staked[i] > b.locked[i]) slashBeyondLock = true;
        }
        if (!pays && a.credits > b.credits) creditsFromNowhere = true;
        uint256 supply = token.totalSupply();
        if (supply > lastSupply) supplyRose = true;
        lastSupply = supply;
    }

    function _actor(uint256 seed) internal view returns (address) {
        return actors[seed % N];
    }

    /// @dev Half of the seeds pick the latest contribution (the one most likely to be live).
    function _contribution(uint256 seed) internal view returns (uint256 id) {
        uint256 count = market.contributionCount();
        if (count == 0) return 0;
        return seed & 1 == 0 ? count : 1 + ((seed >> 1) % count);
    }

    /// @dev The seed `_contribution` maps to contribution `id`.
    function _seedFor(uint256 id) internal view returns (uint256) {
        return id == market.contributionCount() ? 0 : 2 * (id - 1) + 1;
    }

    function _job(uint256 seed) internal view returns (uint256) {
        uint256 count = market.jobCount();
        if (count == 0) return 0;
        return 1 + (seed % count);
    }

    function _dispute(uint256 seed) internal view returns (uint256) {
        uint256 count = disputes.disputeCount();
        if (count == 0) return 0;
        return 1 + (seed % count);
    }

    // -- time ----------------------------------------------------------------------------------

    function roll(uint256 blocks) external {
        _pass(1 + (blocks % 30));
    }

    /// @dev `n` blocks pass, and as many seconds (windows are in seconds, seeds in blocks).
    function _pass(uint256 n) internal {
        vm.roll(block.number + n);
        vm.warp(block.timestamp + n);
    }

    function rollFar() external {
        _pass(257);
    }

    // -- staking -------------------------------------------------------------------------------

    function stake(uint256 who, uint256 amount) external {
        _stake(who, amount);
    }

    function _stake(uint256 who, uint256 amount) internal {
        Snap memory b = _snap();
        vm.prank(_actor(who));
        try stakes.stake(1 + (amount % 200e18)) {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function requestUnbond(uint256 who, uint256 amount) external {
        _requestUnbond(who, amount);
    }

    function _requestUnbond(uint256 who, uint256 amount) internal {
        Snap memory b = _snap();
        address a = _actor(who);
        uint256 free = stakes.freeStakeOf(a);
        if (free == 0) return;
        vm.prank(a);
        try stakes.requestUnbond(1 + (amount % free)) {
            successes++;
        } catch {}
        _check(b, who % N, false);
    }

    function withdrawUnbonded(uint256 who) external {
        _withdrawUnbonded(who);
    }

    function _withdrawUnbonded(uint256 who) internal {
        Snap memory b = _snap();
        address a = _actor(who);
        (, uint256 ready) = stakes.unbondingOf(a);
        vm.prank(a);
        try stakes.withdrawUnbonded() {
            successes++;
            if (block.timestamp < ready) paidEarly = true;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function withdraw(uint256 who) external {
        _withdraw(who);
    }

    function _withdraw(uint256 who) internal {
        Snap memory b = _snap();
        vm.prank(_actor(who));
        try stakes.withdraw() {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function registerVerifier(uint256 who) external {
        _registerVerifier(who);
    }

    function _registerVerifier(uint256 who) internal {
        Snap memory b = _snap();
        vm.prank(_actor(who));
        try stakes.registerVerifier() {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    // -- jobs ----------------------------------------------------------------------------------

    function createJob(uint256 who, uint256 shape, uint256 reward) external {
        _createJob(who, shape, reward);
    }

    function _createJob(uint256 who, uint256 shape, uint256 reward) internal {
        Snap memory b = _snap();
        JobParams memory p = JobParams({
            specDigest: keccak256(abi.encode("spec", shape)),
            initialModelDigest: keccak256(abi.encode("g0", shape)),
            rounds: uint32(1 + (shape % 3)),
            slotsPerRound: uint32(1 + ((shape >> 8) % 3)),
            numSegments: 4,
            sampleCount: 2,
            rewardPerSlot: uint128(reward % 10e18),
            verifierFee: uint128((reward >> 128) % 1e18),
            claimTimeout: 30,
            cheatFractionBps: 1_000,
            revealWindow: 0
        });
        vm.prank(_actor(who));
        try market.createJob(p, "spec", "g0") {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function cancelJob(uint256 jobSeed) external {
        _cancelJob(jobSeed);
    }

    function _cancelJob(uint256 jobSeed) internal {
        uint256 jobId = _job(jobSeed);
        if (jobId == 0) return;
        Snap memory b = _snap();
        (address sponsor,,,,,,,) = market.jobState(jobId);
        vm.prank(sponsor);
        try market.cancelJob(jobId) {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function refund(uint256 jobSeed) external {
        _refund(jobSeed);
    }

    function _refund(uint256 jobSeed) internal {
        uint256 jobId = _job(jobSeed);
        if (jobId == 0) return;
        Snap memory b = _snap();
        (address sponsor, JobStatus status,,,,,,) = market.jobState(jobId);
        uint256 before = token.balanceOf(sponsor);
        vm.prank(sponsor);
        try market.refund(jobId) {
            successes++;
            if (status != JobStatus.Completed && status != JobStatus.Cancelled) paidEarly = true;
            refunded[jobId] += token.balanceOf(sponsor) - before;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function claimSlot(uint256 who, uint256 jobSeed, uint256 slot) external {
        _claimSlot(who, jobSeed, slot);
    }

    function _claimSlot(uint256 who, uint256 jobSeed, uint256 slot) internal {
        uint256 jobId = _job(jobSeed);
        if (jobId == 0) return;
        Snap memory b = _snap();
        (,, uint256 round,,,,,) = market.jobState(jobId);
        vm.prank(_actor(who));
        try market.claimSlot(jobId, round, slot % 3) {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function expireClaim(uint256 jobSeed, uint256 slot) external {
        _expireClaim(jobSeed, slot);
    }

    function _expireClaim(uint256 jobSeed, uint256 slot) internal {
        uint256 jobId = _job(jobSeed);
        if (jobId == 0) return;
        Snap memory b = _snap();
        (,, uint256 round,,,,,) = market.jobState(jobId);
        try market.expireClaim(jobId, round, slot % 3) {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function submit(uint256 jobSeed, uint256 slot, uint256 tag) external {
        _submit(jobSeed, slot, tag);
    }

    function _submit(uint256 jobSeed, uint256 slot, uint256 tag) internal {
        uint256 jobId = _job(jobSeed);
        if (jobId == 0) return;
        Snap memory b = _snap();
        (,, uint256 round,,,,,) = market.jobState(jobId);
        (address node,,,) = market.slotState(jobId, round, slot % 3);
        if (node == address(0)) return;
        vm.prank(node);
        try market.submitContribution(
            jobId, round, slot % 3, keccak256(abi.encode(tag)), keccak256(abi.encode(tag, 1)), "out", "manifest"
        ) {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    // -- verification --------------------------------------------------------------------------

    function recordSeed(uint256 seed) external {
        _recordSeed(seed);
    }

    function _recordSeed(uint256 seed) internal {
        uint256 id = _contribution(seed);
        if (id == 0) return;
        Snap memory b = _snap();
        try settlement.recordSeed(id) {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function attest(uint256 seed, bool pass) external {
        _attest(seed, pass);
    }

    function _attest(uint256 seed, bool pass) internal {
        uint256 id = _contribution(seed);
        if (id == 0) return;
        Snap memory b = _snap();
        ISettlement.Verification memory v = settlement.verification(id);
        if (v.verifier == address(0)) return;
        vm.prank(v.verifier);
        try settlement.attest(id, pass, "report", keccak256(abi.encode(id, pass))) {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function requestTakeover(uint256 seed) external {
        _requestTakeover(seed);
    }

    function _requestTakeover(uint256 seed) internal {
        uint256 id = _contribution(seed);
        if (id == 0) return;
        Snap memory b = _snap();
        ISettlement.Verification memory v = settlement.verification(id);
        try settlement.requestTakeover(id) {
            successes++;
            if (block.timestamp <= uint256(v.seedRecordedAt) + ATTEST) paidEarly = true;
            reassigned++;
            if (settlement.verification(id).phase == Phase.Rejected) _settled(id);
        } catch {}
        _check(b, type(uint256).max, true);
    }

    function assignVerifier(uint256 seed) external {
        _assignVerifier(seed);
    }

    function _assignVerifier(uint256 seed) internal {
        uint256 id = _contribution(seed);
        if (id == 0) return;
        Snap memory b = _snap();
        try settlement.assignVerifier(id) {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function failUnrecorded(uint256 seed) external {
        uint256 id = _contribution(seed);
        if (id == 0) return;
        Snap memory b = _snap();
        try settlement.failUnrecorded(id) {
            successes++;
            _settled(id);
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function finalize(uint256 seed) external {
        _finalize(seed);
    }

    function _finalize(uint256 seed) internal {
        uint256 id = _contribution(seed);
        if (id == 0) return;
        Snap memory b = _snap();
        ISettlement.Verification memory v = settlement.verification(id);
        try settlement.finalize(id) {
            successes++;
            if (block.timestamp <= uint256(v.attestedAt) + CHALLENGE) paidEarly = true;
            finalized++;
            _settled(id);
        } catch {}
        _check(b, type(uint256).max, true);
    }

    // -- guided steps: whole stretches of the protocol in one action, so random sequences reach
    // settlement, disputes and aggregation (each step still goes through the checked wrappers)

    /// @notice Claim a slot of a job's current round and submit it.
    function workSlot(uint256 who, uint256 jobSeed, uint256 slot, uint256 tag) external {
        _claimSlot(who, jobSeed, slot);
        _submit(jobSeed, slot, tag);
    }

    /// @notice Let the seed block pass, record the seed and attest as the assigned verifier.
    function verify(uint256 seed, bool pass) external {
        _pass(2);
        _recordSeed(seed);
        _attest(seed, pass);
    }

    /// @notice Let the challenge window pass and finalize.
    function settle(uint256 seed) external {
        _pass(CHALLENGE + 1);
        _finalize(seed);
    }

    /// @notice Seed and attest a contribution (if not yet), dispute the verdict, draw the
    /// committee, vote by the bits of `votes` (bit 2i: votes, bit 2i+1: valid), let the window
    /// pass and resolve.
    function court(uint256 who, uint256 seed, bool pass, uint256 votes) external {
        _pass(2);
        _recordSeed(seed);
        _attest(seed, pass);
        _dispute(who, seed);
        _runCourt(disputes.disputeCount(), votes);
    }

    /// @notice Seed a contribution (if not yet), let its verifier miss the window, take it over
    /// (a fresh draw from the next block).
    function missAttestation(uint256 seed) external {
        _pass(2);
        _recordSeed(seed);
        _pass(ATTEST + 1);
        _requestTakeover(seed);
        _pass(2);
        _assignVerifier(seed);
    }

    /// @notice Challenge the current round's aggregate of a job and run the court on it.
    function aggregateCourt(uint256 who, uint256 jobSeed, uint256 tag, uint256 votes) external {
        _challengeAggregate(who, jobSeed, tag);
        _runCourt(disputes.disputeCount(), votes);
    }

    function _runCourt(uint256 did, uint256 votes) internal {
        if (did == 0) return;
        _pass(2);
        _drawCommittee(did - 1);
        for (uint256 i = 0; i < 3; ++i) {
            if ((votes >> (2 * i)) & 1 == 1) _vote(did - 1, i, (votes >> (2 * i + 1)) & 1 == 1);
        }
        _pass(VOTE + 1);
        _resolve(did - 1);
    }

    /// @notice Work, verify (pass) and settle every open slot of a job's current round, then
    /// aggregate it: the way a round normally completes.
    function runRound(uint256 who, uint256 jobSeed, uint256 tag) external {
        uint256 jobId = _job(jobSeed);
        if (jobId == 0) return;
        (,, uint256 round,,,,,) = market.jobState(jobId);
        uint256 slots = market.jobParams(jobId).slotsPerRound;
        for (uint256 s = 0; s < slots; ++s) {
            _claimSlot(who + s, jobSeed, s);
            _submit(jobSeed, s, tag + s);
            (,,, uint256 id) = market.slotState(jobId, round, s);
            if (id == 0) continue;
            _pass(2);
            _recordSeed(_seedFor(id));
            _attest(_seedFor(id), true);
        }
        _pass(CHALLENGE + 1);
        for (uint256 s = 0; s < slots; ++s) {
            (,,, uint256 id) = market.slotState(jobId, round, s);
            if (id != 0) _finalize(_seedFor(id));
        }
        _postAggregate(who, jobSeed, tag);
        _pass(CHALLENGE + 1);
        _finalizeAggregate(jobSeed);
    }

    /// @notice Post an aggregate for a job's current round, let the window pass and finalize it.
    function aggregate(uint256 who, uint256 jobSeed, uint256 tag) external {
        _postAggregate(who, jobSeed, tag);
        _pass(CHALLENGE + 1);
        _finalizeAggregate(jobSeed);
    }

    function _settled(uint256 id) internal {
        if (settledSeen[id]) settledTwice = true;
        settledSeen[id] = true;
        Phase phase = settlement.verification(id).phase;
        if (phase != Phase.Accepted && phase != Phase.Rejected) settledTwice = true;
    }

    // -- disputes ------------------------------------------------------------------------------

    function dispute(uint256 who, uint256 seed) external {
        _dispute(who, seed);
    }

    function _dispute(uint256 who, uint256 seed) internal {
        uint256 id = _contribution(seed);
        if (id == 0) return;
        Snap memory b = _snap();
        ISettlement.Verification memory v = settlement.verification(id);
        address caller = _actor(who);
        // a fail is contested by its node; a pass by anyone else
        if (v.verdict == Verdict.Fail) caller = market.getContribution(id).node;
        vm.prank(caller);
        try disputes.disputeContribution(id) {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function challengeAggregate(uint256 who, uint256 jobSeed, uint256 tag) external {
        _challengeAggregate(who, jobSeed, tag);
    }

    function _challengeAggregate(uint256 who, uint256 jobSeed, uint256 tag) internal {
        uint256 jobId = _job(jobSeed);
        if (jobId == 0) return;
        Snap memory b = _snap();
        (,, uint256 round,,,,,) = market.jobState(jobId);
        vm.prank(_actor(who));
        try disputes.challengeAggregate(jobId, round, keccak256(abi.encode("alt", tag)), "alt", tag % 1e7) {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function drawCommittee(uint256 seed) external {
        _drawCommittee(seed);
    }

    function _drawCommittee(uint256 seed) internal {
        uint256 did = _dispute(seed);
        if (did == 0) return;
        Snap memory b = _snap();
        try disputes.drawCommittee(did) {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function vote(uint256 seed, uint256 member, bool valid) external {
        _vote(seed, member, valid);
    }

    function _vote(uint256 seed, uint256 member, bool valid) internal {
        uint256 did = _dispute(seed);
        if (did == 0) return;
        Snap memory b = _snap();
        IDisputes.DisputeView memory d = disputes.dispute(did);
        if (d.members.length == 0) return;
        vm.prank(d.members[member % d.members.length]);
        try disputes.vote(did, valid, "vote") {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function resolve(uint256 seed) external {
        _resolve(seed);
    }

    function _resolve(uint256 seed) internal {
        uint256 did = _dispute(seed);
        if (did == 0) return;
        Snap memory b = _snap();
        IDisputes.DisputeView memory d = disputes.dispute(did);
        try disputes.resolve(did) {
            successes++;
            if (d.status != DisputeStatus.Voting || block.timestamp <= d.voteDeadline) paidEarly = true;
            if (d.contributionId != 0 && disputes.dispute(did).status == DisputeStatus.Resolved) {
                _settled(d.contributionId);
            }
            resolved++;
        } catch {}
        _check(b, type(uint256).max, true);
    }

    // -- aggregates ----------------------------------------------------------------------------

    function postAggregate(uint256 who, uint256 jobSeed, uint256 tag) external {
        _postAggregate(who, jobSeed, tag);
    }

    function _postAggregate(uint256 who, uint256 jobSeed, uint256 tag) internal {
        uint256 jobId = _job(jobSeed);
        if (jobId == 0) return;
        Snap memory b = _snap();
        (,, uint256 round,,,,,) = market.jobState(jobId);
        vm.prank(_actor(who));
        try market.postAggregate(jobId, round, keccak256(abi.encode("agg", tag)), "agg", tag % 1e7) {
            successes++;
        } catch {}
        _check(b, type(uint256).max, false);
    }

    function finalizeAggregate(uint256 jobSeed) external {
        _finalizeAggregate(jobSeed);
    }

    function _finalizeAggregate(uint256 jobSeed) internal {
        uint256 jobId = _job(jobSeed);
        if (jobId == 0) return;
        Snap memory b = _snap();
        (,, uint256 round,,,,,) = market.jobState(jobId);
        (AggregateStatus status,, uint256 posted,,,,) = market.aggregateState(jobId, round);
        try market.finalizeAggregate(jobId, round) {
            successes++;
            if (status != AggregateStatus.Pending || block.timestamp <= posted + CHALLENGE) paidEarly = true;
            aggregated++;
        } catch {}
        _check(b, type(uint256).max, false);
    }
}

/// @notice Invariant tests of the whole protocol (Hardhat 3 runs them like Foundry: random
/// sequences of the handler's actions, every invariant checked after every call).
contract ProtocolInvariantsTest is WithVm {
    ProtocolHandler internal handler;

    function setUp() public {
        handler = new ProtocolHandler();
    }

    /// @dev Only the handler is fuzzed: direct token donations to the vault would make it hold
    /// more than it owes (never less), which is not a protocol state.
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// The handler's guided actions reach every phase the invariants are about: settlement,
    /// missed attestations, disputes of both kinds, aggregation (so the campaign is not shallow).
    function test_handlerReachesEveryPhase() public {
        handler.runRound(1, 0, 7); // job 1, round 0: both slots worked, passed, settled, aggregated
        require(handler.finalized() == 2 && handler.aggregated() == 1, "round");
        handler.workSlot(2, 0, 0, 11);
        handler.court(3, 0, false, 0x3f); // the node contests a fail; all three vote valid
        handler.workSlot(2, 0, 1, 12);
        handler.court(1, 0, true, 0x15); // a third party challenges a pass; all vote invalid
        require(handler.resolved() == 2, "disputes");
        handler.createJob(6, 0, 1e18);
        handler.workSlot(1, 1, 0, 13);
        handler.missAttestation(0);
        require(handler.reassigned() == 1, "reassigned");
        require(handler.successes() > 20, "progress");
        invariant_conservation();
        invariant_settlesAtMostOnce();
        invariant_slashWithinLocks();
        invariant_nothingPaidEarly();
        invariant_supplyOnlyFalls();
    }

    /// Tokens held by the contracts == open escrow + stakes + unbonding stake (bonds are locked
    /// stake) + unclaimed credits; the vault's escrow total == the jobs' escrows; locks <= stakes.
    /// hardhat-config: invariant.runs = 16
    /// hardhat-config: invariant.depth = 60
    function invariant_conservation() public view {
        StakeRegistry stakes = handler.stakes();
        JobMarket market = handler.market();
        uint256 owed = stakes.escrowed();
        uint256 jobsEscrow;
        for (uint256 j = 1; j <= market.jobCount(); ++j) {
            (,,, uint256 escrow,,,,) = market.jobState(j);
            jobsEscrow += escrow;
        }
        require(jobsEscrow == owed, "vault escrow == sum of job escrows");
        address[8] memory actors = handler.actorList();
        for (uint256 i = 0; i < actors.length; ++i) {
            (uint256 unbonding,) = stakes.unbondingOf(actors[i]);
            uint256 staked = stakes.stakeOf(actors[i]);
            require(stakes.lockedOf(actors[i]) <= staked, "locked <= staked");
            owed += staked + unbonding + stakes.creditsOf(actors[i]);
        }
        require(handler.token().balanceOf(address(stakes)) == owed, "vault == escrow + stakes + unbonding + credits");
        require(handler.token().balanceOf(address(market)) == 0, "market holds nothing");
        require(handler.token().balanceOf(address(handler.settlement())) == 0, "settlement holds nothing");
        require(handler.token().balanceOf(address(handler.disputes())) == 0, "disputes holds nothing");
    }

    /// Every contribution settles at most once, and a job never pays out more than its escrow.
    /// hardhat-config: invariant.runs = 16
    /// hardhat-config: invariant.depth = 60
    function invariant_settlesAtMostOnce() public view {
        require(!handler.settledTwice(), "a contribution settled twice");
    }

    /// A slash never exceeds the stake locked before it.
    /// hardhat-config: invariant.runs = 16
    /// hardhat-config: invariant.depth = 60
    function invariant_slashWithinLocks() public view {
        require(!handler.slashBeyondLock(), "slash beyond the locked stake");
    }

    /// Nothing is paid before its window closes, and credits appear only through settlement.
    /// hardhat-config: invariant.runs = 16
    /// hardhat-config: invariant.depth = 60
    function invariant_nothingPaidEarly() public view {
        require(!handler.paidEarly(), "paid before its window closed");
        require(!handler.creditsFromNowhere(), "credits outside settlement");
    }

    /// The token supply only falls (slashes burn; nothing mints).
    /// hardhat-config: invariant.runs = 16
    /// hardhat-config: invariant.depth = 60
    function invariant_supplyOnlyFalls() public view {
        require(!handler.supplyRose(), "supply rose");
        require(handler.token().totalSupply() == handler.lastSupply(), "supply tracked");
        require(handler.token().totalSupply() <= 1e27, "never above the initial supply");
    }
}
