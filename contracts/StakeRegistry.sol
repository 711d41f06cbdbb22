// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";

/// @title StakeRegistry
/// @notice Holds the stakes of nodes and verifiers. Stake that backs an open claim is locked
/// and cannot leave; only the Settlement contract can slash it. Leaving takes an unbonding
/// delay longer than any challenge window, so a cheat cannot run before being caught.
contract StakeRegistry is IStakeRegistry, AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice May lock and unlock stake (JobMarket, Settlement).
    bytes32 public constant LOCKER_ROLE = keccak256("LOCKER_ROLE");
    /// @notice May slash locked stake (Settlement only).
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");

    struct Account {
        uint256 staked;
        uint256 locked;
        uint256 unbonding;
        uint256 unbondReadyBlock;
    }

    IERC20 public immutable token;
    /// @inheritdoc IStakeRegistry
    uint256 public immutable minNodeStake;
    /// @inheritdoc IStakeRegistry
    uint256 public immutable minVerifierStake;
    /// @notice Blocks between an unbond request and the withdrawal.
    uint256 public immutable unbondingDelay;

    mapping(address account => Account) private _accounts;
    address[] private _verifiers;
    mapping(address verifier => uint256 indexPlusOne) private _verifierIndex;

    /// @param token_ the staking token (must be ERC20Burnable: slashes are burned)
    /// @param admin receives DEFAULT_ADMIN_ROLE and wires the roles at deployment
    /// @param minNodeStake_ stake locked by each slot claim
    /// @param minVerifierStake_ stake a verifier needs to be drawn
    /// @param unbondingDelay_ blocks from unbond request to withdrawal
    constructor(
        IERC20 token_,
        address admin,
        uint256 minNodeStake_,
        uint256 minVerifierStake_,
        uint256 unbondingDelay_
    ) {
        token = token_;
        minNodeStake = minNodeStake_;
        minVerifierStake = minVerifierStake_;
        unbondingDelay = unbondingDelay_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Deposit `amount` tokens as stake (needs prior approval).
    /// @param amount token base units
    function stake(uint256 amount) external nonReentrant {
        if (amount == 0) revert StakeRegistryZeroAmount();
        Account storage a = _accounts[msg.sender];
        a.staked += amount;
        emit Staked(msg.sender, amount, a.staked);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Start unbonding `amount` of free stake; withdrawable after `unbondingDelay` blocks.
    /// A verifier whose remaining stake falls below the minimum leaves the verifier set.
    /// @param amount token base units, at most the free (unlocked) stake
    function requestUnbond(uint256 amount) external {
        if (amount == 0) revert StakeRegistryZeroAmount();
        Account storage a = _accounts[msg.sender];
        uint256 free = a.staked - a.locked;
        if (amount > free) revert StakeRegistryInsufficientFreeStake(msg.sender, free, amount);
        a.staked -= amount;
        a.unbonding += amount;
        a.unbondReadyBlock = block.number + unbondingDelay;
        if (_verifierIndex[msg.sender] != 0 && a.staked < minVerifierStake) _removeVerifier(msg.sender);
        emit UnbondRequested(msg.sender, amount, a.unbondReadyBlock);
    }

    /// @notice Withdraw all unbonded stake once the delay has passed.
    function withdrawUnbonded() external nonReentrant {
        Account storage a = _accounts[msg.sender];
        uint256 amount = a.unbonding;
        if (amount == 0) revert StakeRegistryNothingUnbonding();
        if (block.number < a.unbondReadyBlock) revert StakeRegistryUnbondingNotReady(a.unbondReadyBlock);
        a.unbonding = 0;
        emit UnbondWithdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Join the set from which verifiers are drawn; needs `minVerifierStake` staked.
    function registerVerifier() external {
        if (_verifierIndex[msg.sender] != 0) revert StakeRegistryAlreadyVerifier();
        uint256 staked = _accounts[msg.sender].staked;
        if (staked < minVerifierStake) revert StakeRegistryBelowVerifierMinimum(staked, minVerifierStake);
        _verifiers.push(msg.sender);
        _verifierIndex[msg.sender] = _verifiers.length;
        emit VerifierRegistered(msg.sender);
    }

    /// @notice Leave the verifier set.
    function deregisterVerifier() external {
        if (_verifierIndex[msg.sender] == 0) revert StakeRegistryNotVerifier();
        _removeVerifier(msg.sender);
    }

    /// @inheritdoc IStakeRegistry
    function lock(address account, uint256 amount) external onlyRole(LOCKER_ROLE) {
        Account storage a = _accounts[account];
        uint256 free = a.staked - a.locked;
        if (amount > free) revert StakeRegistryInsufficientFreeStake(account, free, amount);
        a.locked += amount;
        emit StakeLocked(account, amount, a.locked);
    }

    /// @inheritdoc IStakeRegistry
    function unlock(address account, uint256 amount) external onlyRole(LOCKER_ROLE) {
        Account storage a = _accounts[account];
        if (amount > a.locked) revert StakeRegistryInsufficientLockedStake(account, a.locked, amount);
        a.locked -= amount;
        emit StakeUnlocked(account, amount, a.locked);
    }

    /// @inheritdoc IStakeRegistry
    /// @dev Takes `amount` from the account's locked stake: `reward` goes to `beneficiary`,
    /// the rest is burned.
    function slash(address account, uint256 amount, address beneficiary, uint256 reward)
        external
        onlyRole(SLASHER_ROLE)
        nonReentrant
    {
        Account storage a = _accounts[account];
        if (amount > a.locked) revert StakeRegistryInsufficientLockedStake(account, a.locked, amount);
        if (reward > amount) revert StakeRegistryInsufficientLockedStake(account, amount, reward);
        a.locked -= amount;
        a.staked -= amount;
        if (_verifierIndex[account] != 0 && a.staked < minVerifierStake) _removeVerifier(account);
        uint256 burned = amount - reward;
        emit StakeSlashed(account, amount, beneficiary, reward, burned);
        if (reward > 0) token.safeTransfer(beneficiary, reward);
        if (burned > 0) ERC20Burnable(address(token)).burn(burned);
    }

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

    /// @notice Tokens waiting out the unbonding delay, and the block they become withdrawable.
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
