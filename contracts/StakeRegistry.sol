// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {Limits} from "./libraries/Limits.sol";
import {Sampling} from "./libraries/Sampling.sol";

/// @title StakeRegistry
/// @notice The protocol's vault and stake book. It holds every token: stakes, stake waiting out
/// its unbonding delay, sponsors' escrow and unclaimed credits (pull payments). Stake that backs
/// an open claim, verifier assignment, committee seat or dispute bond is locked and cannot leave;
/// only the settlement layer (Settlement, Disputes) can slash it, and a slash never exceeds the
/// locked stake. Conservation: `token.balanceOf(this) == escrowed + sum(staked + unbonding +
/// credits)` after every call.
/// @dev Amounts are packed two per word (uint128); `stake` refuses anything that could overflow.
contract StakeRegistry is IStakeRegistry, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;
    using Checkpoints for Checkpoints.Trace208;

    /// @notice May lock and unlock stake and draw verifiers (JobMarket, Settlement, Disputes).
    bytes32 public constant LOCKER_ROLE = keccak256("LOCKER_ROLE");
    /// @notice May slash locked stake (Settlement, Disputes).
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    /// @notice May move escrow: deposit and refund (JobMarket), pay out (Settlement).
    bytes32 public constant TREASURER_ROLE = keccak256("TREASURER_ROLE");

    struct Account {
        // word 0: touched together by every settlement (lock released, payment credited)
        uint128 locked;
        uint128 credits;
        // word 1
        uint128 staked;
        uint128 unbonding;
        // word 2
        uint64 unbondReadyAt;
        bool registered;
    }

    /// @dev A draw's snapshot in memory.
    struct Draw {
        address[] accounts;
        uint256[] cumulative;
        uint256 total;
        bytes32 seed;
        bytes32 tag;
    }

    /// @notice The staking, escrow and payout token (must be ERC20Burnable: slashes are burned).
    IERC20 public immutable token;
    /// @inheritdoc IStakeRegistry
    uint256 public immutable minNodeStake;
    /// @inheritdoc IStakeRegistry
    uint256 public immutable minVerifierStake;
    /// @inheritdoc IStakeRegistry
    uint256 public immutable verifierLock;
    /// @inheritdoc IStakeRegistry
    uint256 public immutable disputeBond;
    /// @inheritdoc IStakeRegistry
    uint256 public immutable unbondingDelay;
    /// @inheritdoc IStakeRegistry
    uint256 public immutable drawLag;
    /// @inheritdoc IStakeRegistry
    uint256 public immutable slashRewardBps;
    /// @inheritdoc IStakeRegistry
    uint256 public immutable committeeRewardBps;

    /// @notice Tokens escrowed by sponsors and not yet paid out or refunded (all jobs together).
    uint256 public escrowed;

    mapping(address account => Account) private _accounts;
    /// @dev Every account that ever registered, in registration order; never reordered or shrunk.
    address[] private _verifiers;
    mapping(address verifier => uint256 indexPlusOne) private _verifierIndex;
    /// @dev Draw weight (stake while registered, zero otherwise) by block number.
    mapping(address verifier => Checkpoints.Trace208) private _weights;
    /// @dev Registered verifiers now (the append-only list also holds departed ones).
    uint256 private _registeredCount;

    /// @param token_ the token (ERC20Burnable)
    /// @param admin receives DEFAULT_ADMIN_ROLE and wires the roles at deployment
    /// @param minNodeStake_ stake locked by each slot claim (token units, 1..2^96-1)
    /// @param minVerifierStake_ stake needed to join the verifier set (token units, >= verifierLock_)
    /// @param verifierLock_ stake locked per verifier assignment and per committee seat (token
    /// units, 1..minVerifierStake_)
    /// @param disputeBond_ stake locked by a dispute and by a posted aggregate (token units, 1..2^96-1)
    /// @param unbondingDelay_ seconds from an unbond request to its withdrawal (> 0; Disputes
    /// checks at deployment that it exceeds the longest verification and dispute)
    /// @param drawLag_ blocks (1..2^32-1): a draw for snapshot block B reads every verifier's
    /// weight as of block B - drawLag_. This is the registration warm-up (a new verifier, or new
    /// stake, counts only drawLag_ blocks later) and the deregistration cooldown (a leaving
    /// verifier stays drawable for drawLag_ blocks)
    /// @param slashRewardBps_ share of a slash credited to the winning party (basis points)
    /// @param committeeRewardBps_ share of a slash split among majority voters (basis points;
    /// the two shares sum to at most 10000, the rest is burned)
    constructor(
        IERC20 token_,
        address admin,
        uint256 minNodeStake_,
        uint256 minVerifierStake_,
        uint256 verifierLock_,
        uint256 disputeBond_,
        uint256 unbondingDelay_,
        uint256 drawLag_,
        uint256 slashRewardBps_,
        uint256 committeeRewardBps_
    ) {
        if (address(token_) == address(0) || admin == address(0)) revert StakeRegistryInvalidParams("address");
        if (minNodeStake_ == 0 || minNodeStake_ > Limits.MAX_AMOUNT) revert StakeRegistryInvalidParams("minNodeStake");
        if (minVerifierStake_ == 0 || minVerifierStake_ > Limits.MAX_AMOUNT) {
            revert StakeRegistryInvalidParams("minVerifierStake");
        }
        if (verifierLock_ == 0 || verifierLock_ > minVerifierStake_) revert StakeRegistryInvalidParams("verifierLock");
        if (disputeBond_ == 0 || disputeBond_ > Limits.MAX_AMOUNT) revert StakeRegistryInvalidParams("disputeBond");
        if (unbondingDelay_ == 0 || unbondingDelay_ > type(uint32).max) {
            revert StakeRegistryInvalidParams("unbondingDelay");
        }
        if (drawLag_ == 0 || drawLag_ > type(uint32).max) revert StakeRegistryInvalidParams("drawLag");
        if (slashRewardBps_ + committeeRewardBps_ > Limits.BPS) revert StakeRegistryInvalidParams("rewardBps");
        token = token_;
        minNodeStake = minNodeStake_;
        minVerifierStake = minVerifierStake_;
        verifierLock = verifierLock_;
        disputeBond = disputeBond_;
        unbondingDelay = unbondingDelay_;
        drawLag = drawLag_;
        slashRewardBps = slashRewardBps_;
        committeeRewardBps = committeeRewardBps_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // -- staking ---------------------------------------------------------------------------

    /// @notice Deposit `amount` tokens as stake (needs prior approval of this contract).
    /// @param amount token base units, > 0
    function stake(uint256 amount) external nonReentrant {
        if (amount == 0) revert StakeRegistryZeroAmount();
        if (amount > Limits.MAX_AMOUNT) revert StakeRegistryAmountTooLarge(amount);
        Account storage a = _accounts[msg.sender];
        uint256 total = uint256(a.staked) + amount;
        a.staked = total.toUint128();
        if (a.registered) _checkpoint(msg.sender, total);
        emit Staked(msg.sender, amount, total);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Start unbonding `amount` of free (unlocked) stake; it becomes withdrawable after
    /// `unbondingDelay` seconds, and a later request moves the ready time of the whole unbonding
    /// amount. A verifier whose remaining stake falls below `minVerifierStake` leaves the set.
    /// @param amount token base units, 0 < amount <= free stake
    function requestUnbond(uint256 amount) external nonReentrant {
        if (amount == 0) revert StakeRegistryZeroAmount();
        Account storage a = _accounts[msg.sender];
        uint256 free = a.staked - a.locked;
        if (amount > free) revert StakeRegistryInsufficientFreeStake(msg.sender, free, amount);
        // unchecked: amount <= free <= staked
        unchecked {
            a.staked -= uint128(amount);
        }
        a.unbonding = (uint256(a.unbonding) + amount).toUint128();
        uint256 ready = block.timestamp + unbondingDelay;
        a.unbondReadyAt = uint64(ready);
        if (a.registered) _restake(msg.sender, a);
        emit UnbondRequested(msg.sender, amount, ready);
    }

    /// @notice Withdraw all unbonding stake once its ready time is reached.
    function withdrawUnbonded() external nonReentrant {
        Account storage a = _accounts[msg.sender];
        uint256 amount = a.unbonding;
        if (amount == 0) revert StakeRegistryNothingUnbonding();
        if (block.timestamp < a.unbondReadyAt) revert StakeRegistryUnbondingNotReady(a.unbondReadyAt);
        a.unbonding = 0;
        emit UnbondWithdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Withdraw every credited token: rewards, fees and slash shares (pull payment).
    /// Works while JobMarket is paused.
    function withdraw() external nonReentrant {
        Account storage a = _accounts[msg.sender];
        uint256 amount = a.credits;
        if (amount == 0) revert StakeRegistryNothingToWithdraw(msg.sender);
        a.credits = 0;
        emit CreditsWithdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Join the set from which verifiers and committees are drawn; needs
    /// `minVerifierStake` staked. The caller's draw weight (its stake) counts for draws whose
    /// snapshot block is at least `drawLag` blocks after this one (warm-up). The first
    /// registration of an address appends it to the append-only set (at most MAX_VERIFIERS
    /// addresses ever); a re-registration reuses its position.
    function registerVerifier() external {
        Account storage a = _accounts[msg.sender];
        if (a.registered) revert StakeRegistryAlreadyVerifier();
        uint256 staked = a.staked;
        if (staked < minVerifierStake) revert StakeRegistryBelowVerifierMinimum(staked, minVerifierStake);
        if (_verifierIndex[msg.sender] == 0) {
            if (_verifiers.length >= Limits.MAX_VERIFIERS) revert StakeRegistryVerifierSetFull(Limits.MAX_VERIFIERS);
            _verifiers.push(msg.sender);
            _verifierIndex[msg.sender] = _verifiers.length;
        }
        a.registered = true;
        _registeredCount += 1;
        _checkpoint(msg.sender, staked);
        emit VerifierRegistered(msg.sender);
    }

    /// @notice Leave the verifier set. Open assignments and seats keep their locks until they
    /// settle; draws whose snapshot predates this block by less than `drawLag` blocks can still
    /// draw the caller (deregistration cooldown), and skip it once its free stake is below
    /// `verifierLock`.
    function deregisterVerifier() external {
        if (!_accounts[msg.sender].registered) revert StakeRegistryNotVerifier();
        _removeVerifier(msg.sender);
    }

    // -- locks, slashes, draws (protocol contracts only) -----------------------------------

    /// @inheritdoc IStakeRegistry
    function lock(address account, uint256 amount) external onlyRole(LOCKER_ROLE) nonReentrant {
        Account storage a = _accounts[account];
        uint256 free = a.staked - a.locked;
        if (amount > free) revert StakeRegistryInsufficientFreeStake(account, free, amount);
        // unchecked: amount <= free, so locked + amount <= staked < 2^128
        unchecked {
            a.locked += uint128(amount);
        }
        emit StakeLocked(account, amount, a.locked);
    }

    /// @inheritdoc IStakeRegistry
    function unlock(address account, uint256 amount) external onlyRole(LOCKER_ROLE) nonReentrant {
        Account storage a = _accounts[account];
        if (amount > a.locked) revert StakeRegistryInsufficientLockedStake(account, a.locked, amount);
        // unchecked: amount <= locked
        unchecked {
            a.locked -= uint128(amount);
        }
        emit StakeUnlocked(account, amount, a.locked);
    }

    /// @inheritdoc IStakeRegistry
    /// @dev `voters` is at most MAX_COMMITTEE long. Shares round down; the dust is burned.
    function slash(address account, uint256 amount, address beneficiary, address[] calldata voters)
        external
        onlyRole(SLASHER_ROLE)
        nonReentrant
    {
        uint256 n = voters.length;
        if (n > Limits.MAX_COMMITTEE) revert StakeRegistryTooManyBeneficiaries(n, Limits.MAX_COMMITTEE);
        Account storage a = _accounts[account];
        if (amount > a.locked) revert StakeRegistryInsufficientLockedStake(account, a.locked, amount);
        // unchecked: amount <= locked <= staked
        unchecked {
            a.locked -= uint128(amount);
            a.staked -= uint128(amount);
        }
        if (a.registered) _restake(account, a);
        uint256 reward = 0;
        if (beneficiary != address(0)) {
            reward = (amount * slashRewardBps) / Limits.BPS;
            _credit(beneficiary, reward);
        }
        // each majority voter gets an equal floor share of the committee's part; the dust is burned
        uint256 voterReward = n == 0 ? 0 : (amount * committeeRewardBps) / Limits.BPS / n;
        uint256 paid = reward;
        for (uint256 i = 0; i < n; ++i) {
            _credit(voters[i], voterReward);
            paid += voterReward;
        }
        // paid <= amount * (slashRewardBps + committeeRewardBps) / BPS <= amount
        uint256 burned = amount - paid;
        emit StakeSlashed(account, amount, beneficiary, reward, voterReward, n, burned);
        if (burned > 0) ERC20Burnable(address(token)).burn(burned);
    }

    /// @inheritdoc IStakeRegistry
    function slashWithPayment(address account, uint256 amount, address payee, uint256 payment)
        external
        onlyRole(SLASHER_ROLE)
        nonReentrant
    {
        Account storage a = _accounts[account];
        if (amount > a.locked) revert StakeRegistryInsufficientLockedStake(account, a.locked, amount);
        if (payment > amount) revert StakeRegistryInsufficientLockedStake(account, amount, payment);
        // unchecked: amount <= locked <= staked
        unchecked {
            a.locked -= uint128(amount);
            a.staked -= uint128(amount);
        }
        if (a.registered) _restake(account, a);
        _credit(payee, payment);
        uint256 burned;
        // unchecked: payment <= amount (checked above)
        unchecked {
            burned = amount - payment;
        }
        emit StakeSlashed(account, amount, payee, payment, 0, 0, burned);
        if (burned > 0) ERC20Burnable(address(token)).burn(burned);
    }

    /// @inheritdoc IStakeRegistry
    /// @dev See `drawTicket` for one ticket. Tickets `firstCounter`, `firstCounter + 1`, ... are
    /// drawn (at most MAX_DRAW_PROBES); a ticket is skipped when it lands on an excluded party or
    /// someone already drawn. A ticket on a verifier without `verifierLock` of free stake now is
    /// skipped too, unless `stopAtLocked`: then the draw stops there and `nextCounter` is that
    /// ticket (a later draw retries it). Fewer than `count` may be drawn (none when every weight
    /// of the snapshot is zero).
    function drawAndLock(
        bytes32 seed,
        bytes32 tag,
        uint256 snapshotBlock,
        uint256 count,
        uint256 firstCounter,
        address[3] calldata excluded,
        bool stopAtLocked
    ) external onlyRole(LOCKER_ROLE) nonReentrant returns (address[] memory drawn, uint256 nextCounter) {
        if (count > Limits.MAX_COMMITTEE) revert StakeRegistryTooManyDraws(count, Limits.MAX_COMMITTEE);
        Draw memory dr;
        (dr.accounts, dr.cumulative, dr.total) = _snapshot(snapshotBlock);
        dr.seed = seed;
        dr.tag = tag;
        drawn = new address[](count);
        uint256 found = 0;
        uint256 end = firstCounter + Limits.MAX_DRAW_PROBES;
        uint256 c = dr.total == 0 ? end : firstCounter;
        for (; c < end && found < count; ++c) {
            address v = dr.accounts[Sampling.pick(dr.cumulative, Sampling.ticket(dr.seed, dr.tag, c, dr.total))];
            if (v == excluded[0] || v == excluded[1] || v == excluded[2] || _contains(drawn, found, v)) continue;
            Account storage a = _accounts[v];
            if (a.staked - a.locked < verifierLock) {
                // the drawn verifier is busy: wait for it (this ticket again next time) rather
                // than redraw, so nobody gains by keeping others' stake locked
                if (stopAtLocked) break;
                continue;
            }
            // unchecked: verifierLock <= free stake, so locked stays <= staked
            unchecked {
                a.locked += uint128(verifierLock);
            }
            emit StakeLocked(v, verifierLock, a.locked);
            drawn[found++] = v;
        }
        nextCounter = c;
        // shrink the array to what was found (found <= count, memory already allocated)
        assembly ("memory-safe") {
            mstore(drawn, found)
        }
    }

    // -- escrow and payouts (protocol contracts only) --------------------------------------

    /// @inheritdoc IStakeRegistry
    /// @dev Bookkeeping only: JobMarket has already moved the tokens from the sponsor (its own
    /// `msg.sender`) into this contract, so no caller can pull tokens from a third party here.
    function depositEscrow(address from, uint256 amount) external onlyRole(TREASURER_ROLE) nonReentrant {
        uint256 total = escrowed + amount;
        escrowed = total;
        emit EscrowDeposited(from, amount, total);
    }

    /// @inheritdoc IStakeRegistry
    function releaseEscrow(address to, uint256 amount) external onlyRole(TREASURER_ROLE) nonReentrant {
        uint256 held = escrowed;
        if (amount > held) revert StakeRegistryInsufficientEscrow(held, amount);
        // unchecked: amount <= held
        unchecked {
            escrowed = held - amount;
        }
        emit EscrowReleased(to, amount, held - amount);
        token.safeTransfer(to, amount);
    }

    /// @inheritdoc IStakeRegistry
    /// @dev A party with nothing to unlock and nothing to credit is skipped (and may be zero).
    function payout(
        address node,
        uint256 nodeUnlock,
        uint256 nodeCredit,
        address verifier,
        uint256 verifierUnlock,
        uint256 verifierCredit
    ) external onlyRole(TREASURER_ROLE) nonReentrant {
        uint256 paid = nodeCredit + verifierCredit;
        uint256 held = escrowed;
        if (paid > held) revert StakeRegistryInsufficientEscrow(held, paid);
        // unchecked: paid <= held
        unchecked {
            escrowed = held - paid;
        }
        _release(node, nodeUnlock, nodeCredit);
        _release(verifier, verifierUnlock, verifierCredit);
    }

    // -- views -----------------------------------------------------------------------------

    /// @inheritdoc IStakeRegistry
    function stakeOf(address account) external view returns (uint256) {
        return _accounts[account].staked;
    }

    /// @inheritdoc IStakeRegistry
    function lockedOf(address account) external view returns (uint256) {
        return _accounts[account].locked;
    }

    /// @inheritdoc IStakeRegistry
    function freeStakeOf(address account) external view returns (uint256) {
        Account storage a = _accounts[account];
        return a.staked - a.locked;
    }

    /// @inheritdoc IStakeRegistry
    function creditsOf(address account) external view returns (uint256) {
        return _accounts[account].credits;
    }

    /// @notice Tokens waiting out the unbonding delay, and the time (unix seconds) they become
    /// withdrawable.
    /// @param account the staker
    function unbondingOf(address account) external view returns (uint256 amount, uint256 readyAt) {
        Account storage a = _accounts[account];
        return (a.unbonding, a.unbondReadyAt);
    }

    /// @inheritdoc IStakeRegistry
    function verifierCount() external view returns (uint256) {
        return _registeredCount;
    }

    /// @notice Length of the append-only verifier list (every address that ever registered).
    function verifierListLength() external view returns (uint256) {
        return _verifiers.length;
    }

    /// @inheritdoc IStakeRegistry
    function verifierAt(uint256 index) external view returns (address) {
        return _verifiers[index];
    }

    /// @inheritdoc IStakeRegistry
    function isVerifier(address account) external view returns (bool) {
        return _accounts[account].registered;
    }

    /// @inheritdoc IStakeRegistry
    function weightAt(address verifier, uint256 blockNumber) external view returns (uint256) {
        return _weights[verifier].upperLookupRecent(blockNumber.toUint48());
    }

    /// @inheritdoc IStakeRegistry
    function verifierSnapshot(uint256 snapshotBlock)
        external
        view
        returns (address[] memory accounts, uint256[] memory weights)
    {
        uint256[] memory cumulative;
        (accounts, cumulative,) = _snapshot(snapshotBlock);
        uint256 n = accounts.length;
        weights = new uint256[](n);
        uint256 previous = 0;
        for (uint256 i = 0; i < n; ++i) {
            weights[i] = cumulative[i] - previous;
            previous = cumulative[i];
        }
    }

    /// @inheritdoc IStakeRegistry
    function drawTicket(bytes32 seed, bytes32 tag, uint256 snapshotBlock, uint256 counter)
        external
        view
        returns (address)
    {
        (address[] memory accounts, uint256[] memory cumulative, uint256 total) = _snapshot(snapshotBlock);
        if (total == 0) return address(0);
        return accounts[Sampling.pick(cumulative, Sampling.ticket(seed, tag, counter, total))];
    }

    /// @notice `drawTicket` for many seeds at once (counter 0, one snapshot): for measuring draw
    /// frequencies off-chain with one call.
    /// @param firstSeed seed i is keccak256(abi.encode(firstSeed, i))
    /// @param tag the draw's domain tag
    /// @param snapshotBlock the snapshot
    /// @param n number of seeds (at most 4096)
    /// @return hits hits[j] = tickets of the n seeds that landed on list position j
    function drawFrequencies(bytes32 firstSeed, bytes32 tag, uint256 snapshotBlock, uint256 n)
        external
        view
        returns (uint256[] memory hits)
    {
        if (n > 4096) revert StakeRegistryTooManyDraws(n, 4096);
        (address[] memory accounts, uint256[] memory cumulative, uint256 total) = _snapshot(snapshotBlock);
        hits = new uint256[](accounts.length);
        if (total == 0) return hits;
        for (uint256 i = 0; i < n; ++i) {
            bytes32 seed = keccak256(abi.encode(firstSeed, i));
            hits[Sampling.pick(cumulative, Sampling.ticket(seed, tag, 0, total))] += 1;
        }
    }

    // -- internals -------------------------------------------------------------------------

    function _credit(address account, uint256 amount) private {
        if (amount == 0) return;
        Account storage a = _accounts[account];
        uint256 total = a.credits + amount;
        a.credits = total.toUint128();
        emit Credited(account, amount, total);
    }

    /// @dev Lock release and credit of one settlement party: one storage word (locked and
    /// credits share it).
    function _release(address account, uint256 unlockAmount, uint256 credit) private {
        if (unlockAmount == 0 && credit == 0) return;
        Account storage a = _accounts[account];
        uint256 locked = a.locked;
        if (unlockAmount > locked) revert StakeRegistryInsufficientLockedStake(account, locked, unlockAmount);
        uint256 total = a.credits + credit;
        // unchecked: unlockAmount <= locked
        unchecked {
            locked -= unlockAmount;
        }
        a.locked = uint128(locked);
        a.credits = total.toUint128();
        if (unlockAmount != 0) emit StakeUnlocked(account, unlockAmount, locked);
        if (credit != 0) emit Credited(account, credit, total);
    }

    function _contains(address[] memory list, uint256 length, address item) private pure returns (bool) {
        for (uint256 j = 0; j < length; ++j) {
            if (list[j] == item) return true;
        }
        return false;
    }

    /// @dev Leave the set: the weight drops to zero from this block on (the list keeps the
    /// address at its position, so nobody can reorder the set).
    function _removeVerifier(address verifier) private {
        _accounts[verifier].registered = false;
        _registeredCount -= 1;
        _checkpoint(verifier, 0);
        emit VerifierDeregistered(verifier);
    }

    /// @dev A registered verifier's stake changed: new weight, or out of the set below the minimum.
    function _restake(address verifier, Account storage a) private {
        if (a.staked < minVerifierStake) _removeVerifier(verifier);
        else _checkpoint(verifier, a.staked);
    }

    function _checkpoint(address verifier, uint256 weight) private {
        // slither-disable-next-line unused-return (the previous and new values are not needed)
        _weights[verifier].push(block.number.toUint48(), weight.toUint208());
    }

    /// @dev The verifier list with cumulative weights as of block `snapshotBlock - drawLag`
    /// (all zero when that is before block 1). cumulative[i] = w_0 + ... + w_i.
    function _snapshot(uint256 snapshotBlock)
        private
        view
        returns (address[] memory accounts, uint256[] memory cumulative, uint256 total)
    {
        uint256 n = _verifiers.length;
        accounts = new address[](n);
        cumulative = new uint256[](n);
        bool any = snapshotBlock > drawLag;
        uint48 key = any ? uint48(snapshotBlock - drawLag) : 0;
        for (uint256 i = 0; i < n; ++i) {
            address v = _verifiers[i];
            accounts[i] = v;
            if (any) total += _weights[v].upperLookupRecent(key);
            cumulative[i] = total;
        }
    }
}
