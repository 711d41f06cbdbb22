// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

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

    /// @notice Index of the first verifier probed for a seed among `count` registered verifiers
    /// (`StakeRegistry.drawAndLock` probe 0 with VERIFIER_TAG; later probes use
    /// keccak256(abi.encode(seed, tag, i)) and skip the node and verifiers without free stake).
    function verifierIndex(bytes32 seed, uint256 count) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, VERIFIER_TAG))) % count;
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
