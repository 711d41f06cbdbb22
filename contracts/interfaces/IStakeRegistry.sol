// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice Errors of the StakeRegistry.
interface IStakeRegistryErrors {
    error StakeRegistryZeroAmount();
    error StakeRegistryInsufficientFreeStake(address account, uint256 free, uint256 needed);
    error StakeRegistryInsufficientLockedStake(address account, uint256 locked, uint256 needed);
    error StakeRegistryUnbondingNotReady(uint256 readyBlock);
    error StakeRegistryNothingUnbonding();
    error StakeRegistryBelowVerifierMinimum(uint256 stake, uint256 minimum);
    error StakeRegistryAlreadyVerifier();
    error StakeRegistryNotVerifier();
}

/// @notice Events of the StakeRegistry, read by the indexer and the node daemon.
interface IStakeRegistryEvents {
    event Staked(address indexed account, uint256 amount, uint256 total);
    event UnbondRequested(address indexed account, uint256 amount, uint256 readyBlock);
    event UnbondWithdrawn(address indexed account, uint256 amount);
    event StakeLocked(address indexed account, uint256 amount, uint256 totalLocked);
    event StakeUnlocked(address indexed account, uint256 amount, uint256 totalLocked);
    event StakeSlashed(address indexed account, uint256 amount, address indexed beneficiary, uint256 reward, uint256 burned);
    event VerifierRegistered(address indexed verifier);
    event VerifierDeregistered(address indexed verifier);
}

/// @notice Stake accounting used by JobMarket (locks) and Settlement (locks, slashing).
interface IStakeRegistry is IStakeRegistryErrors, IStakeRegistryEvents {
    function minNodeStake() external view returns (uint256);
    function minVerifierStake() external view returns (uint256);
    function stakeOf(address account) external view returns (uint256);
    function lockedOf(address account) external view returns (uint256);
    function freeStakeOf(address account) external view returns (uint256);
    function verifierCount() external view returns (uint256);
    function verifierAt(uint256 index) external view returns (address);
    function isVerifier(address account) external view returns (bool);
    function lock(address account, uint256 amount) external;
    function unlock(address account, uint256 amount) external;
    function slash(address account, uint256 amount, address beneficiary, uint256 reward) external;
}
