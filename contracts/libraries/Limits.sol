// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Limits
/// @notice Constants shared by the contracts: every loop in the protocol is bounded by one of
/// these, never by a length a user chooses.
library Limits {
    /// @notice Basis points in one whole.
    uint256 internal constant BPS = 10_000;
    /// @notice Largest dispute committee (m); also bounds the voters credited by one slash.
    uint256 internal constant MAX_COMMITTEE = 9;
    /// @notice Positions of the verifier set tried when drawing verifiers from one seed.
    uint256 internal constant MAX_DRAW_PROBES = 32;
    /// @notice Blocks for which `blockhash` is available; a seed not recorded within them is
    /// taken from a later block instead.
    uint256 internal constant SEED_HORIZON = 256;
    /// @notice Largest amount per slot (reward, fee) and per stake parameter: 2^96 - 1 base units
    /// (7.9e10 tokens of 18 decimals), so sums of them never overflow the packed fields.
    uint256 internal constant MAX_AMOUNT = type(uint96).max;
}
