// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice TEST ONLY. The few Foundry-standard cheatcodes the Solidity tests use (forge-std is not
/// installable here); Hardhat 3's test runner serves them at the standard cheatcode address.
interface Vm {
    function roll(uint256 newHeight) external;
    function warp(uint256 newTimestamp) external;
    function prank(address msgSender) external;
    function startPrank(address msgSender) external;
    function stopPrank() external;
    function assume(bool condition) external pure;
    function setBlockhash(uint256 blockNumber, bytes32 blockHash) external;
}

/// @notice TEST ONLY. The cheatcode handle.
abstract contract WithVm {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
}
