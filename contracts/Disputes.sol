// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IDisputes} from "./interfaces/IDisputes.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {ISettlement} from "./interfaces/ISettlement.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {DisputeKind, DisputeStatus, Ruling, Verdict} from "./interfaces/Types.sol";
import {Limits} from "./libraries/Limits.sol";

/// @title Disputes
/// @notice The protocol's court. Within a verdict's or an aggregate's challenge window a staked
/// party disputes it with a bond (`disputeBond`, locked): the node contests a fail, anyone else
/// challenges a pass, anyone but the poster challenges an aggregate (naming the digest it says
/// is right). A committee of `committeeSize` registered verifiers, drawn from the hash of a block
/// after the dispute and never a party to it, re-executes and votes within `voteWindow` blocks.
/// A strict majority of the votes cast decides; on a tie or no votes the original verdict (or
/// the posted aggregate) stands and the disputer's bond is returned. The losing side is slashed:
/// `slashRewardBps` to the winner, `committeeRewardBps` split among the majority voters, the rest
/// burned. A member that does not vote loses its seat lock (burned).
contract Disputes is IDisputes, AccessControl, ReentrancyGuardTransient {
    /// @notice Domain tag of committee draws.
    bytes32 public constant COMMITTEE_TAG = keccak256("opentrain.committee");

    struct Dispute {
        DisputeKind kind;
        DisputeStatus status;
        Ruling ruling;
        uint8 memberCount;
        uint8 validVotes;
        uint8 invalidVotes;
        uint16 votedMask;
        uint16 validMask;
        uint40 seedBlock;
        uint40 voteDeadline;
        uint256 contributionId;
        uint256 jobId;
        uint256 round;
        /// the party that opened the dispute (the node for a contest)
        address disputer;
        /// the contribution's node (zero for aggregates)
        address node;
        /// the contribution's verifier, or the aggregate's poster
        address defendant;
        bytes32 seed;
        address[9] members; // Limits.MAX_COMMITTEE
    }

    struct Alternative {
        bytes32 modelDigest;
        uint256 validationLossMicro;
        string modelCid;
    }

    /// @notice The vault and stake book.
    IStakeRegistry public immutable stakes;
    /// @notice The job market (aggregates).
    IJobMarket public immutable market;
    /// @notice The settlement contract (verdicts).
    ISettlement public immutable settlement;
    /// @notice Committee size m: odd, 1..MAX_COMMITTEE.
    uint256 public immutable committeeSize;
    /// @notice Blocks after the committee draw during which members vote.
    uint256 public immutable voteWindow;
    /// @notice Stake locked by a disputer (the registry's `disputeBond`, cached).
    uint256 public immutable disputeBond;
    /// @notice Stake locked per committee seat (the registry's `verifierLock`, cached).
    uint256 public immutable seatLock;

    uint256 public disputeCount;
    mapping(uint256 disputeId => Dispute) private _disputes;
    mapping(uint256 disputeId => Alternative) private _alternatives;

    /// @param stakes_ the StakeRegistry (this contract needs LOCKER_ROLE and SLASHER_ROLE)
    /// @param market_ the JobMarket (this contract needs its DISPUTES_ROLE)
    /// @param settlement_ the Settlement (this contract needs its DISPUTES_ROLE)
    /// @param admin receives DEFAULT_ADMIN_ROLE
    /// @param committeeSize_ m, odd, 1..9
    /// @param voteWindow_ blocks, 1..2^32-1. The registry's unbonding delay must exceed the
    /// longest a verdict can stay open: attestWindow + challengeWindow + 256 (committee seed) +
    /// voteWindow, so nobody can unbond ahead of a slash.
    constructor(
        IStakeRegistry stakes_,
        IJobMarket market_,
        ISettlement settlement_,
        address admin,
        uint256 committeeSize_,
        uint256 voteWindow_
    ) {
        if (
            address(stakes_) == address(0) || address(market_) == address(0) || address(settlement_) == address(0)
                || admin == address(0)
        ) revert DisputesInvalidParams("address");
        if (committeeSize_ == 0 || committeeSize_ > Limits.MAX_COMMITTEE || committeeSize_ % 2 == 0) {
            revert DisputesInvalidParams("committeeSize");
        }
        if (voteWindow_ == 0 || voteWindow_ > type(uint32).max) revert DisputesInvalidParams("voteWindow");
        uint256 longest =
            settlement_.attestWindow() + settlement_.challengeWindow() + Limits.SEED_HORIZON + voteWindow_;
        if (stakes_.unbondingDelay() <= longest) revert DisputesInvalidParams("unbondingDelay");
        stakes = stakes_;
        market = market_;
        settlement = settlement_;
        committeeSize = committeeSize_;
        voteWindow = voteWindow_;
        disputeBond = stakes_.disputeBond();
        seatLock = stakes_.verifierLock();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // -- opening ---------------------------------------------------------------------------

    /// @notice Dispute an attested contribution's verdict within its challenge window, locking
    /// `disputeBond` of the caller's free stake. A fail can only be contested by its node; a
    /// pass can be challenged by anyone staked but its node and its verifier.
    /// @param contributionId the contribution
    /// @return disputeId the new dispute
    function disputeContribution(uint256 contributionId) external nonReentrant returns (uint256 disputeId) {
        disputeId = ++disputeCount;
        (address node, address verifier, Verdict verdict) =
            settlement.openDispute(contributionId, msg.sender, disputeId);
        Dispute storage d = _disputes[disputeId];
        d.kind = verdict == Verdict.Fail ? DisputeKind.Contest : DisputeKind.Challenge;
        d.status = DisputeStatus.AwaitingCommittee;
        d.seedBlock = uint40(block.number + 1);
        d.contributionId = contributionId;
        d.disputer = msg.sender;
        d.node = node;
        d.defendant = verifier;
        emit DisputeOpened(disputeId, d.kind, contributionId, 0, 0, msg.sender, verifier, block.number + 1);
        stakes.lock(msg.sender, disputeBond);
    }

    /// @notice Challenge a pending round aggregate within its challenge window, locking
    /// `disputeBond`, and name the aggregate the caller says is right. If the committee agrees,
    /// the caller's aggregate replaces the posted one (with a fresh challenge window) and the
    /// caller's bond stays locked behind it.
    /// @param jobId the job
    /// @param round the round whose aggregate is challenged
    /// @param modelDigest sha256 of the caller's G_{r+1} (must differ from the posted one)
    /// @param modelCid its CID
    /// @param validationLossMicro its validation loss times 1e6
    /// @return disputeId the new dispute
    function challengeAggregate(
        uint256 jobId,
        uint256 round,
        bytes32 modelDigest,
        string calldata modelCid,
        uint256 validationLossMicro
    ) external nonReentrant returns (uint256 disputeId) {
        disputeId = ++disputeCount;
        (address poster, bytes32 posted) = market.disputeAggregate(jobId, round, disputeId);
        if (msg.sender == poster) revert DisputesPartyCannotChallenge(msg.sender);
        if (modelDigest == posted || modelDigest == bytes32(0)) revert DisputesSameDigest(modelDigest);
        Dispute storage d = _disputes[disputeId];
        d.kind = DisputeKind.Aggregate;
        d.status = DisputeStatus.AwaitingCommittee;
        d.seedBlock = uint40(block.number + 1);
        d.jobId = jobId;
        d.round = round;
        d.disputer = msg.sender;
        d.defendant = poster;
        Alternative storage alt = _alternatives[disputeId];
        alt.modelDigest = modelDigest;
        alt.validationLossMicro = validationLossMicro;
        alt.modelCid = modelCid;
        emit DisputeOpened(disputeId, DisputeKind.Aggregate, 0, jobId, round, msg.sender, poster, block.number + 1);
        emit AlternativeAggregate(disputeId, modelDigest, modelCid, validationLossMicro);
        stakes.lock(msg.sender, disputeBond);
    }

    // -- committee -------------------------------------------------------------------------

    /// @notice Draw the committee from the hash of the block after the dispute: up to
    /// `committeeSize` registered verifiers with `verifierLock` free stake, none of them a party
    /// (disputer, node, verifier or poster); each member's seat lock is locked. Anyone may call.
    /// If the seed block's hash has expired, nothing is drawn and the seed block moves to the
    /// block after this call.
    /// @param disputeId a dispute awaiting its committee
    function drawCommittee(uint256 disputeId) external nonReentrant {
        Dispute storage d = _disputes[disputeId];
        if (d.status != DisputeStatus.AwaitingCommittee) revert DisputesNotAwaitingCommittee(disputeId);
        uint256 seedBlock = d.seedBlock;
        if (block.number <= seedBlock) revert DisputesSeedNotReady(disputeId, seedBlock);
        bytes32 blockHash = blockhash(seedBlock);
        if (blockHash == bytes32(0)) {
            d.seedBlock = uint40(block.number + 1);
            emit CommitteeSeedReset(disputeId, block.number + 1);
            return;
        }
        bytes32 seed = keccak256(abi.encode(blockHash, disputeId));
        uint256 deadline = block.number + voteWindow;
        d.seed = seed;
        d.voteDeadline = uint40(deadline);
        d.status = DisputeStatus.Voting;
        // The registry is an immutable protocol contract whose drawAndLock makes no external call
        // and is itself nonReentrant (as is this function): the members written below are its result.
        // slither-disable-next-line reentrancy-no-eth
        address[] memory drawn =
            stakes.drawAndLock(seed, COMMITTEE_TAG, committeeSize, [d.disputer, d.node, d.defendant]);
        uint256 n = drawn.length;
        for (uint256 i = 0; i < n; ++i) {
            d.members[i] = drawn[i];
        }
        // n <= committeeSize <= MAX_COMMITTEE
        d.memberCount = uint8(n);
        emit CommitteeDrawn(disputeId, seed, drawn, deadline);
    }

    /// @notice A committee member's vote, up to and including the block `voteDeadline`.
    /// @param disputeId the dispute
    /// @param valid true: the node's work is honest (contribution) or the posted aggregate is
    /// right (aggregate); false: the opposite
    /// @param reportCid CID of the member's JSON report of what it recomputed
    function vote(uint256 disputeId, bool valid, string calldata reportCid) external {
        Dispute storage d = _disputes[disputeId];
        if (d.status != DisputeStatus.Voting) revert DisputesNotVoting(disputeId);
        if (block.number > d.voteDeadline) revert DisputesVoteWindowClosed(disputeId, d.voteDeadline);
        uint256 index = _memberIndex(d, msg.sender);
        uint16 bit = uint16(1 << index);
        if (d.votedMask & bit != 0) revert DisputesAlreadyVoted(msg.sender);
        d.votedMask |= bit;
        if (valid) {
            d.validMask |= bit;
            d.validVotes += 1;
        } else {
            d.invalidVotes += 1;
        }
        emit Voted(disputeId, msg.sender, valid, reportCid);
    }

    /// @notice Settle a dispute once its vote window has closed (from block `voteDeadline + 1`).
    /// Anyone may call. See the contract's description for who is slashed and paid.
    /// @param disputeId a dispute whose committee has voted
    function resolve(uint256 disputeId) external nonReentrant {
        Dispute storage d = _disputes[disputeId];
        if (d.status != DisputeStatus.Voting) revert DisputesNotVoting(disputeId);
        if (block.number <= d.voteDeadline) revert DisputesVoteWindowOpen(disputeId, d.voteDeadline);
        Ruling ruling = d.validVotes > d.invalidVotes
            ? Ruling.Valid
            : (d.invalidVotes > d.validVotes ? Ruling.Invalid : Ruling.Undecided);
        d.status = DisputeStatus.Resolved;
        d.ruling = ruling;
        (address[] memory majority, address[] memory absent) = _split(d, ruling);
        emit DisputeResolved(disputeId, ruling, d.validVotes, d.invalidVotes, absent.length);
        _releaseSeats(d, absent);
        if (d.kind == DisputeKind.Aggregate) _resolveAggregate(disputeId, d, ruling, majority);
        else _resolveContribution(d, ruling, majority);
    }

    // -- views -----------------------------------------------------------------------------

    /// @notice A dispute's record, committee and tally.
    /// @param disputeId the dispute
    function dispute(uint256 disputeId) external view returns (DisputeView memory v) {
        Dispute storage d = _disputes[disputeId];
        if (d.status == DisputeStatus.None) revert DisputesUnknownDispute(disputeId);
        address[] memory members = new address[](d.memberCount);
        for (uint256 i = 0; i < d.memberCount; ++i) {
            members[i] = d.members[i];
        }
        v = DisputeView({
            kind: d.kind,
            status: d.status,
            ruling: d.ruling,
            contributionId: d.contributionId,
            jobId: d.jobId,
            round: d.round,
            disputer: d.disputer,
            node: d.node,
            defendant: d.defendant,
            seedBlock: d.seedBlock,
            seed: d.seed,
            voteDeadline: d.voteDeadline,
            members: members,
            validVotes: d.validVotes,
            invalidVotes: d.invalidVotes
        });
    }

    /// @notice A member's vote: whether it voted and what.
    /// @param disputeId the dispute
    /// @param member a committee member
    function voteOf(uint256 disputeId, address member) external view returns (bool voted, bool valid) {
        Dispute storage d = _disputes[disputeId];
        uint256 index = _memberIndex(d, member);
        uint16 bit = uint16(1 << index);
        return (d.votedMask & bit != 0, d.validMask & bit != 0);
    }

    /// @notice The aggregate a challenger named as right.
    /// @param disputeId an aggregate dispute
    function alternative(uint256 disputeId)
        external
        view
        returns (bytes32 modelDigest, string memory modelCid, uint256 validationLossMicro)
    {
        Alternative storage a = _alternatives[disputeId];
        return (a.modelDigest, a.modelCid, a.validationLossMicro);
    }

    // -- internals -------------------------------------------------------------------------

    function _outcome(bool accepted, bool payFee, bool slashNode, bool slashVerifier, address beneficiary)
        private
        pure
        returns (ISettlement.DisputeSettlement memory)
    {
        return ISettlement.DisputeSettlement(accepted, payFee, slashNode, slashVerifier, beneficiary);
    }

    function _memberIndex(Dispute storage d, address member) private view returns (uint256) {
        uint256 n = d.memberCount;
        for (uint256 i = 0; i < n; ++i) {
            if (d.members[i] == member) return i;
        }
        revert DisputesNotMember(member);
    }

    /// @dev The members who voted with the ruling (none when undecided) and those who did not vote.
    function _split(Dispute storage d, Ruling ruling)
        private
        view
        returns (address[] memory majority, address[] memory absent)
    {
        uint256 n = d.memberCount;
        majority = new address[](n);
        absent = new address[](n);
        uint256 nm;
        uint256 na;
        for (uint256 i = 0; i < n; ++i) {
            uint16 bit = uint16(1 << i);
            if (d.votedMask & bit == 0) {
                absent[na++] = d.members[i];
            } else if (ruling != Ruling.Undecided && ((d.validMask & bit != 0) == (ruling == Ruling.Valid))) {
                majority[nm++] = d.members[i];
            }
        }
        // shrink both arrays to their counts (<= n, memory already allocated)
        assembly ("memory-safe") {
            mstore(majority, nm)
            mstore(absent, na)
        }
    }

    /// @dev Voters get their seat lock back; absent members lose it (burned).
    function _releaseSeats(Dispute storage d, address[] memory absent) private {
        uint256 n = d.memberCount;
        address[] memory none = new address[](0);
        for (uint256 i = 0; i < n; ++i) {
            address m = d.members[i];
            if (d.votedMask & uint16(1 << i) != 0) stakes.unlock(m, seatLock);
        }
        for (uint256 i = 0; i < absent.length; ++i) {
            stakes.slash(absent[i], seatLock, address(0), none);
        }
    }

    /// @dev Contest (of a fail, by the node) and challenge (of a pass, by a third party).
    function _resolveContribution(Dispute storage d, Ruling ruling, address[] memory majority) private {
        uint256 id = d.contributionId;
        address disputer = d.disputer;
        address node = d.node;
        address verifier = d.defendant;
        address[] memory none = new address[](0);
        if (d.kind == DisputeKind.Contest) {
            if (ruling == Ruling.Valid) {
                // the fail was false: the verifier's lock pays the node; the node is paid, the fee is not
                settlement.settleDisputed(id, _outcome(true, false, false, true, node), majority);
                stakes.unlock(node, disputeBond);
            } else if (ruling == Ruling.Invalid) {
                // the fail was right: the node loses its claim lock and its bond to the verifier
                settlement.settleDisputed(id, _outcome(false, false, true, false, verifier), majority);
                stakes.slash(node, disputeBond, verifier, majority);
            } else {
                // undecided: the fail stands as if undisputed; the bond comes back
                settlement.settleDisputed(id, _outcome(false, false, true, false, verifier), none);
                stakes.unlock(node, disputeBond);
            }
        } else {
            if (ruling == Ruling.Invalid) {
                // the pass was false: node and verifier both lose their locks to the challenger
                settlement.settleDisputed(id, _outcome(false, false, true, true, disputer), majority);
                stakes.unlock(disputer, disputeBond);
            } else {
                // the pass stands: paid as usual; a challenge the committee rejected loses its bond
                settlement.settleDisputed(id, _outcome(true, true, false, false, address(0)), none);
                if (ruling == Ruling.Valid) stakes.slash(disputer, disputeBond, node, majority);
                else stakes.unlock(disputer, disputeBond);
            }
        }
    }

    /// @dev Invalid: the poster's bond pays the challenger and the challenger's aggregate takes
    /// over (its bond now backs it). Valid: the challenger's bond pays the poster. Undecided: the
    /// posted aggregate stands and the bond comes back.
    function _resolveAggregate(uint256 disputeId, Dispute storage d, Ruling ruling, address[] memory majority)
        private
    {
        address challenger = d.disputer;
        address poster = d.defendant;
        Alternative storage alt = _alternatives[disputeId];
        if (ruling == Ruling.Invalid) {
            stakes.slash(poster, disputeBond, challenger, majority);
            market.resolveAggregate(
                d.jobId, d.round, true, challenger, alt.modelDigest, alt.modelCid, alt.validationLossMicro
            );
        } else {
            if (ruling == Ruling.Valid) stakes.slash(challenger, disputeBond, poster, majority);
            else stakes.unlock(challenger, disputeBond);
            market.resolveAggregate(d.jobId, d.round, false, address(0), bytes32(0), "", 0);
        }
    }
}
