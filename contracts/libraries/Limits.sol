// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Limits
/// @notice Constants shared by the contracts: every loop in the protocol is bounded by one of
/// these, never by a length a user chooses.
library Limits {
    /// @notice Basis points in one whole.
    uint256 internal constant BPS = 10_000;
    /// @notice Largest dispute committee (m, after escalation too); also bounds the voters
    /// credited by one slash.
    uint256 internal constant MAX_COMMITTEE = 9;
    /// @notice Tickets drawn per draw call (each one a fresh counter of the same seed); a ticket
    /// that lands on an excluded, already drawn or fully locked verifier is followed by the next.
    uint256 internal constant MAX_DRAW_PROBES = 32;
    /// @notice Blocks for which the `BLOCKHASH` opcode answers.
    uint256 internal constant SEED_HORIZON = 256;
    /// @notice Blocks for which the EIP-2935 history contract answers (prague and later). A
    /// seed block older than this (and than SEED_HORIZON where the history contract is absent)
    /// can no longer be read: an unrecorded contribution then fails.
    uint256 internal constant HISTORY_HORIZON = 8191;
    /// @notice The EIP-2935 block hash history contract.
    address internal constant HISTORY_STORAGE = 0x0000F90827F1C53a10cb7A02335B175320002935;
    /// @notice Distinct accounts that can ever join the verifier set. The set is append-only (a
    /// verifier keeps its position forever, re-registering reuses it), so no one can reorder it;
    /// this bounds the draw's walk over it.
    uint256 internal constant MAX_VERIFIERS = 64;
    /// @notice Missed-attestation takeovers per contribution; after the last one the slot is
    /// redone without a slash.
    uint256 internal constant MAX_TAKEOVERS = 3;
    /// @notice Extra committee rounds of a dispute whose committee cast fewer votes than the
    /// quorum (each with a larger committee and a longer vote window).
    uint256 internal constant MAX_ESCALATIONS = 2;
    /// @notice Largest amount per slot (reward, fee) and per stake parameter: 2^96 - 1 base units
    /// (7.9e10 tokens of 18 decimals), so sums of them never overflow the packed fields.
    uint256 internal constant MAX_AMOUNT = type(uint96).max;
}
