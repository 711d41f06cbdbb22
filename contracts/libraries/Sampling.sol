// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Limits} from "./Limits.sol";

/// @title Sampling
/// @notice The one rule that turns a seed into the k segment indices a verifier re-executes.
/// Mirrored exactly by `opentrain.sampling.sample_indices` in Python (tested to agree).
/// @dev A partial Fisher-Yates shuffle of [0, n) over a sparse swap list: exactly k distinct
/// indices, no rejection loop, O(k^2) work with k bounded by the caller (JobMarket caps it).
/// Draw i is `i + uint256(keccak256(abi.encode(seed, i))) % (n - i)`.
library Sampling {
    error SamplingTooManySamples(uint256 k, uint256 n);

    /// @notice Domain tag for drawing the assigned verifier from a seed.
    bytes32 internal constant VERIFIER_TAG = keccak256("opentrain.verifier");

    /// @notice k distinct indices in [0, n), in draw order.
    function sampleIndices(bytes32 seed, uint256 n, uint256 k) internal pure returns (uint256[] memory out) {
        if (k > n) revert SamplingTooManySamples(k, n);
        out = new uint256[](k);
        uint256[] memory swapPos = new uint256[](k);
        uint256[] memory swapVal = new uint256[](k);
        uint256 swaps = 0;
        for (uint256 i = 0; i < k; ++i) {
            uint256 j = i + uint256(keccak256(abi.encode(seed, i))) % (n - i);
            out[i] = _valueAt(swapPos, swapVal, swaps, j);
            uint256 vi = _valueAt(swapPos, swapVal, swaps, i);
            swaps = _store(swapPos, swapVal, swaps, j, vi);
        }
    }

    /// @notice Ticket `counter` of a stake-weighted draw: uint256(keccak256(abi.encode(seed,
    /// tag, counter))) % totalWeight (totalWeight > 0).
    function ticket(bytes32 seed, bytes32 tag, uint256 counter, uint256 totalWeight) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, tag, counter))) % totalWeight;
    }

    /// @notice The list position a ticket lands on: the first i with cumulative[i] > t, where
    /// cumulative[i] = w_0 + ... + w_i (non-decreasing, t < its last entry). Positions of zero
    /// weight are never picked; position i is hit by exactly w_i of the totalWeight tickets.
    /// Binary search: O(log n). (Python: bisect.bisect_right(cumulative, t).)
    function pick(uint256[] memory cumulative, uint256 t) internal pure returns (uint256 lo) {
        uint256 hi = cumulative.length - 1;
        while (lo < hi) {
            uint256 mid;
            // unchecked: lo < hi < 2^64, so lo + hi cannot overflow
            unchecked {
                mid = (lo + hi) / 2;
            }
            if (cumulative[mid] > t) hi = mid;
            else lo = mid + 1;
        }
    }

    /// @notice The hash of block `blockNumber`: from the BLOCKHASH opcode for the last 256
    /// blocks, from the EIP-2935 history contract for the last 8191 where it exists; zero when
    /// neither answers (too old, not yet mined, or no history contract on this chain).
    function blockHashOf(uint256 blockNumber) internal view returns (bytes32 h) {
        if (blockNumber >= block.number) return bytes32(0);
        h = blockhash(blockNumber);
        // slither-disable-next-line incorrect-equality (zero is how the EVM reports an expired hash)
        if (h != bytes32(0) || block.number - blockNumber > Limits.HISTORY_HORIZON) return h;
        // slither-disable-next-line low-level-calls (the EIP-2935 system contract has no ABI)
        (bool ok, bytes memory ret) = Limits.HISTORY_STORAGE.staticcall(abi.encode(blockNumber));
        if (ok && ret.length == 32) h = abi.decode(ret, (bytes32));
    }

    function _valueAt(uint256[] memory pos, uint256[] memory val, uint256 len, uint256 p)
        private
        pure
        returns (uint256)
    {
        for (uint256 t = 0; t < len; ++t) {
            if (pos[t] == p) return val[t];
        }
        return p;
    }

    function _store(uint256[] memory pos, uint256[] memory val, uint256 len, uint256 p, uint256 v)
        private
        pure
        returns (uint256)
    {
        for (uint256 t = 0; t < len; ++t) {
            if (pos[t] == p) {
                val[t] = v;
                return len;
            }
        }
        pos[len] = p;
        val[len] = v;
        return len + 1;
    }
}
