// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {Limits} from "./libraries/Limits.sol";

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
        uint64 unbondReadyBlock;
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
    uint256 public immutable slashRewardBps;
    /// @inheritdoc IStakeRegistry
    uint256 public immutable committeeRewardBps;

    /// @notice Tokens escrowed by sponsors and not yet paid out or refunded (all jobs together).
    uint256 public escrowed;

    mapping(address account => Account) private _accounts;
    address[] private _verifiers;
    mapping(address verifier => uint256 indexPlusOne) private _verifierIndex;

    /// @param token_ the token (ERC20Burnable)
    /// @param admin receives DEFAULT_ADMIN_ROLE and wires the roles at deployment
    /// @param minNodeStake_ stake locked by each slot claim (token units, 1..2^96-1)
    /// @param minVerifierStake_ stake needed to join the verifier set (token units, >= verifierLock_)
    /// @param verifierLock_ stake locked per verifier assignment and per committee seat (token
    /// units, 1..minVerifierStake_)
    /// @param disputeBond_ stake locked by a dispute and by a posted aggregate (token units, 1..2^96-1)
    /// @param unbondingDelay_ blocks from an unbond request to its withdrawal (> 0; Disputes
    /// checks at deployment that it exceeds the longest verification and dispute)
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
        if (slashRewardBps_ + committeeRewardBps_ > Limits.BPS) revert StakeRegistryInvalidParams("rewardBps");
        token = token_;
        minNodeStake = minNodeStake_;
        minVerifierStake = minVerifierStake_;
        verifierLock = verifierLock_;
        disputeBond = disputeBond_;
        unbondingDelay = unbondingDelay_;
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
        emit Staked(msg.sender, amount, total);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Start unbonding `amount` of free (unlocked) stake; it becomes withdrawable after
    /// `unbondingDelay` blocks, and a later request moves the ready block of the whole unbonding
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
        uint256 ready = block.number + unbondingDelay;
        a.unbondReadyBlock = uint64(ready);
        if (_verifierIndex[msg.sender] != 0 && a.staked < minVerifierStake) _removeVerifier(msg.sender);
        emit UnbondRequested(msg.sender, amount, ready);
    }

    /// @notice Withdraw all unbonding stake once its ready block is reached.
    function withdrawUnbonded() external nonReentrant {
        Account storage a = _accounts[msg.sender];
        uint256 amount = a.unbonding;
        if (amount == 0) revert StakeRegistryNothingUnbonding();
        if (block.number < a.unbondReadyBlock) revert StakeRegistryUnbondingNotReady(a.unbondReadyBlock);
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
    /// `minVerifierStake` staked.
    function registerVerifier() external {
        if (_verifierIndex[msg.sender] != 0) revert StakeRegistryAlreadyVerifier();
        uint256 staked = _accounts[msg.sender].staked;
        if (staked < minVerifierStake) revert StakeRegistryBelowVerifierMinimum(staked, minVerifierStake);
        _verifiers.push(msg.sender);
        _verifierIndex[msg.sender] = _verifiers.length;
        emit VerifierRegistered(msg.sender);
    }

    /// @notice Leave the verifier set. Open assignments keep their locks until they settle.
    function deregisterVerifier() external {
        if (_verifierIndex[msg.sender] == 0) revert StakeRegistryNotVerifier();
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
        if (_verifierIndex[account] != 0 && a.staked < minVerifierStake) _removeVerifier(account);
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
    /// @dev Probe i looks at position keccak256(seed, tag) mod n for i = 0 and keccak256(seed,
    /// tag, i) mod n after, for at most MAX_DRAW_PROBES probes; a probe is skipped when it hits
    /// an excluded party, someone already drawn, or a verifier without `verifierLock` free.
    /// Fewer than `count` may be drawn (none when the set is empty).
    function drawAndLock(bytes32 seed, bytes32 tag, uint256 count, address[3] calldata excluded)
        external
        onlyRole(LOCKER_ROLE)
        nonReentrant
        returns (address[] memory drawn)
    {
        if (count > Limits.MAX_COMMITTEE) revert StakeRegistryTooManyDraws(count, Limits.MAX_COMMITTEE);
        drawn = new address[](count);
        uint256 n = _verifiers.length;
        uint256 found = 0;
        for (uint256 i = 0; i < Limits.MAX_DRAW_PROBES && found < count && n > 0; ++i) {
            bytes32 h = i == 0 ? keccak256(abi.encode(seed, tag)) : keccak256(abi.encode(seed, tag, i));
            address v = _verifiers[uint256(h) % n];
            if (v == excluded[0] || v == excluded[1] || v == excluded[2] || _contains(drawn, found, v)) continue;
            Account storage a = _accounts[v];
            if (a.staked - a.locked < verifierLock) continue;
            // unchecked: verifierLock <= free stake, so locked stays <= staked
            unchecked {
                a.locked += uint128(verifierLock);
            }
            emit StakeLocked(v, verifierLock, a.locked);
            drawn[found++] = v;
        }
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

    /// @notice Tokens waiting out the unbonding delay, and the block they become withdrawable.
    /// @param account the staker
    function unbondingOf(address account) external view returns (uint256 amount, uint256 readyBlock) {
        Account storage a = _accounts[account];
        return (a.unbonding, a.unbondReadyBlock);
    }

    /// @inheritdoc IStakeRegistry
    function verifierCount() external view returns (uint256) {
        return _verifiers.length;
    }

    /// @inheritdoc IStakeRegistry
    function verifierAt(uint256 index) external view returns (address) {
        return _verifiers[index];
    }

    /// @inheritdoc IStakeRegistry
    function isVerifier(address account) external view returns (bool) {
        return _verifierIndex[account] != 0;
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

    /// @dev Swap-and-pop removal: O(1), no loop.
    function _removeVerifier(address verifier) private {
        uint256 index = _verifierIndex[verifier] - 1;
        address last = _verifiers[_verifiers.length - 1];
        _verifiers[index] = last;
        _verifierIndex[last] = index + 1;
        _verifiers.pop();
        delete _verifierIndex[verifier];
        emit VerifierDeregistered(verifier);
    }
}
