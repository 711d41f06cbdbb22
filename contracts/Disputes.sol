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
import {Sampling} from "./libraries/Sampling.sol";

/// @title Disputes
/// @notice The protocol's court. Within a verdict's or an aggregate's challenge window a staked
/// party disputes it with a bond (`disputeBond`, locked): the node contests a fail, anyone else
/// challenges a pass, anyone but the poster challenges an aggregate (naming the digest it says
/// is right). A committee of `committeeSize` verifiers, drawn stake-weighted from the verifier
/// snapshot of the dispute's block with the hash of the next block and never a party to it,
/// re-executes and votes within `voteWindow` seconds. Fewer than `quorum` votes escalate the
/// dispute (a new, larger committee with a longer window, at most MAX_ESCALATIONS times). A
/// strict majority of the votes cast decides; a tie, or no quorum after the last escalation, is
/// Undecided: a disputed verdict means "redo the slot, no slash" (all locks and the bond
/// released), a disputed aggregate stands and the bond is returned. The losing side is slashed:
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
        uint8 escalation;
        uint40 seedBlock;
        uint40 voteDeadline;
        /// the block whose verifier snapshot the committee is drawn from (dispute or escalation block)
        uint40 snapshotBlock;
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
    /// @notice Seconds after the committee draw during which members vote (round r: (r + 1) times).
    uint256 public immutable voteWindow;
    /// @notice Votes needed for a ruling; fewer escalate the dispute (1..committeeSize).
    uint256 public immutable quorum;
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
    /// @param voteWindow_ seconds, 1..2^32-1. The registry's unbonding delay (seconds) must
    /// exceed the longest a verdict can stay open: (2 + MAX_TAKEOVERS) * attestWindow (the
    /// reveal window, capped at one attest window, then every assignment) +
    /// challengeWindow + (1 + 2 + ... + (MAX_ESCALATIONS + 1)) * voteWindow, so nobody can unbond
    /// ahead of a slash (the draws' one-block seed delays come on top).
    /// @param quorum_ votes needed for a ruling, 1..committeeSize_
    constructor(
        IStakeRegistry stakes_,
        IJobMarket market_,
        ISettlement settlement_,
        address admin,
        uint256 committeeSize_,
        uint256 voteWindow_,
        uint256 quorum_
    ) {
        if (
            address(stakes_) == address(0) || address(market_) == address(0) || address(settlement_) == address(0)
                || admin == address(0)
        ) revert DisputesInvalidParams("address");
        if (committeeSize_ == 0 || committeeSize_ > Limits.MAX_COMMITTEE || committeeSize_ % 2 == 0) {
            revert DisputesInvalidParams("committeeSize");
        }
        if (voteWindow_ == 0 || voteWindow_ > type(uint32).max) revert DisputesInvalidParams("voteWindow");
        if (quorum_ == 0 || quorum_ > committeeSize_) revert DisputesInvalidParams("quorum");
        uint256 rounds = Limits.MAX_ESCALATIONS + 1;
        uint256 longest = (2 + Limits.MAX_TAKEOVERS) * settlement_.attestWindow() + settlement_.challengeWindow()
            + (rounds * (rounds + 1) * voteWindow_) / 2;
        if (stakes_.unbondingDelay() <= longest) revert DisputesInvalidParams("unbondingDelay");
        stakes = stakes_;
        market = market_;
        settlement = settlement_;
        committeeSize = committeeSize_;
        voteWindow = voteWindow_;
        quorum = quorum_;
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
        d.snapshotBlock = uint40(block.number);
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
        d.snapshotBlock = uint40(block.number);
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

    /// @notice Draw the committee with the hash of the block after the dispute (or after its
    /// escalation): stake-weighted from the verifier snapshot of the dispute's (escalation's)
    /// block, up to `committeeSize + 2 * round` (at most MAX_COMMITTEE) verifiers with
    /// `verifierLock` free stake, none of them a party (disputer, node, verifier or poster); each
    /// member's seat lock is locked and the vote window is (round + 1) * voteWindow seconds.
    /// Seed: keccak256(abi.encode(blockhash(seedBlock), disputeId)) in round 0,
    /// keccak256(abi.encode(blockhash(seedBlock), disputeId, round)) after. Anyone may call. If
    /// the seed block's hash is no longer readable, nothing is drawn and the seed block moves to
    /// the block after this call (the snapshot stays: the dispute's or escalation's block).
    /// @param disputeId a dispute awaiting its committee
    function drawCommittee(uint256 disputeId) external nonReentrant {
        Dispute storage d = _disputes[disputeId];
        if (d.status != DisputeStatus.AwaitingCommittee) revert DisputesNotAwaitingCommittee(disputeId);
        uint256 seedBlock = d.seedBlock;
        if (block.number <= seedBlock) revert DisputesSeedNotReady(disputeId, seedBlock);
        bytes32 blockHash = Sampling.blockHashOf(seedBlock);
        // slither-disable-next-line incorrect-equality (zero is how the EVM reports an expired hash)
        if (blockHash == bytes32(0)) {
            d.seedBlock = uint40(block.number + 1);
            emit CommitteeSeedReset(disputeId, block.number + 1);
            return;
        }
        uint256 round = d.escalation;
        bytes32 seed = round == 0
            ? keccak256(abi.encode(blockHash, disputeId))
            : keccak256(abi.encode(blockHash, disputeId, round));
        uint256 size = committeeSize + 2 * round;
        if (size > Limits.MAX_COMMITTEE) size = Limits.MAX_COMMITTEE;
        uint256 deadline = block.timestamp + (round + 1) * voteWindow;
        d.seed = seed;
        d.voteDeadline = uint40(deadline);
        d.status = DisputeStatus.Voting;
        address[] memory drawn = _drawMembers(d, seed, size);
        uint256 n = drawn.length;
        for (uint256 i = 0; i < n; ++i) {
            d.members[i] = drawn[i];
        }
        // n <= size <= MAX_COMMITTEE
        d.memberCount = uint8(n);
        emit CommitteeDrawn(disputeId, seed, drawn, deadline);
    }

    /// @notice A committee member's vote, up to and including `voteDeadline` (unix seconds).
    /// @param disputeId the dispute
    /// @param valid true: the node's work is honest (contribution) or the posted aggregate is
    /// right (aggregate); false: the opposite
    /// @param reportCid CID of the member's JSON report of what it recomputed
    function vote(uint256 disputeId, bool valid, string calldata reportCid) external {
        Dispute storage d = _disputes[disputeId];
        if (d.status != DisputeStatus.Voting) revert DisputesNotVoting(disputeId);
        if (block.timestamp > d.voteDeadline) revert DisputesVoteWindowClosed(disputeId, d.voteDeadline);
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

    /// @notice Settle a dispute once its vote window has closed (from `voteDeadline + 1`, unix
    /// seconds). Anyone may call. Fewer than `quorum` votes escalate it (voters get their seats
    /// back, absent members lose theirs, a new committee is drawn with the hash of the next
    /// block) unless MAX_ESCALATIONS rounds were held: then it is Undecided. See the contract's
    /// description for who is slashed and paid.
    /// @param disputeId a dispute whose committee has voted
    function resolve(uint256 disputeId) external nonReentrant {
        Dispute storage d = _disputes[disputeId];
        if (d.status != DisputeStatus.Voting) revert DisputesNotVoting(disputeId);
        if (block.timestamp <= d.voteDeadline) revert DisputesVoteWindowOpen(disputeId, d.voteDeadline);
        uint256 cast = uint256(d.validVotes) + d.invalidVotes;
        if (cast < quorum && d.escalation < Limits.MAX_ESCALATIONS) {
            _escalate(disputeId, d);
            return;
        }
        Ruling ruling = Ruling.Undecided;
        if (cast >= quorum) {
            if (d.validVotes > d.invalidVotes) ruling = Ruling.Valid;
            else if (d.invalidVotes > d.validVotes) ruling = Ruling.Invalid;
        }
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
            invalidVotes: d.invalidVotes,
            escalation: d.escalation
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

    /// @dev Too few votes: release the seats (voters back, absent members slashed), start the
    /// next round with a new seed block and a snapshot of this block.
    function _escalate(uint256 disputeId, Dispute storage d) private {
        (, address[] memory absent) = _split(d, Ruling.Undecided);
        address[] memory voters = _voters(d);
        // every write before the registry calls (checks-effects-interactions)
        for (uint256 i = 0; i < voters.length; ++i) {
            delete d.members[i];
        }
        uint256 round = uint256(d.escalation) + 1;
        // round <= MAX_ESCALATIONS
        d.escalation = uint8(round);
        d.memberCount = 0;
        d.validVotes = 0;
        d.invalidVotes = 0;
        d.votedMask = 0;
        d.validMask = 0;
        d.voteDeadline = 0;
        d.seed = bytes32(0);
        d.status = DisputeStatus.AwaitingCommittee;
        d.seedBlock = uint40(block.number + 1);
        d.snapshotBlock = uint40(block.number);
        emit DisputeEscalated(disputeId, round, absent.length, block.number + 1);
        _releaseSeatsOf(voters, absent);
    }

    /// @dev The registry is an immutable protocol contract whose drawAndLock makes no external
    /// call and is itself nonReentrant (as is drawCommittee): the members written after are its result.
    function _drawMembers(Dispute storage d, bytes32 seed, uint256 size) private returns (address[] memory drawn) {
        address[3] memory excluded = [d.disputer, d.node, d.defendant];
        // slither-disable-next-line reentrancy-no-eth,unused-return
        (drawn,) = stakes.drawAndLock(seed, COMMITTEE_TAG, d.snapshotBlock, size, 0, excluded, false);
    }

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
        _releaseSeatsOf(_voters(d), absent);
    }

    /// @dev The committee's seats, in order, with the zero address for members that did not vote.
    function _voters(Dispute storage d) private view returns (address[] memory voters) {
        voters = new address[](d.memberCount);
        for (uint256 i = 0; i < voters.length; ++i) {
            if (d.votedMask & uint16(1 << i) != 0) voters[i] = d.members[i];
        }
    }

    function _releaseSeatsOf(address[] memory voters, address[] memory absent) private {
        address[] memory none = new address[](0);
        for (uint256 i = 0; i < voters.length; ++i) {
            if (voters[i] != address(0)) stakes.unlock(voters[i], seatLock);
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
        if (ruling == Ruling.Undecided) {
            // no decision: redo the slot, nobody is slashed, every lock and the bond come back
            settlement.settleDisputed(id, _outcome(false, false, false, false, address(0)), none);
            stakes.unlock(disputer, disputeBond);
        } else if (d.kind == DisputeKind.Contest) {
            if (ruling == Ruling.Valid) {
                // the fail was false: the verifier's lock pays the node; the node is paid, the fee is not
                settlement.settleDisputed(id, _outcome(true, false, false, true, node), majority);
                stakes.unlock(node, disputeBond);
            } else {
                // the fail was right: the node loses its claim lock and its bond to the verifier
                settlement.settleDisputed(id, _outcome(false, false, true, false, verifier), majority);
                stakes.slash(node, disputeBond, verifier, majority);
            }
        } else {
            if (ruling == Ruling.Invalid) {
                // the pass was false: node and verifier both lose their locks to the challenger
                settlement.settleDisputed(id, _outcome(false, false, true, true, disputer), majority);
                stakes.unlock(disputer, disputeBond);
            } else {
                // the pass stands: paid as usual; the rejected challenge loses its bond to the node
                settlement.settleDisputed(id, _outcome(true, true, false, false, address(0)), none);
                stakes.slash(disputer, disputeBond, node, majority);
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
