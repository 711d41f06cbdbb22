// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Sampling} from "../libraries/Sampling.sol";
import {TraceCommitment} from "../libraries/TraceCommitment.sol";

/// @notice Fuzz tests of the sampling rule and the trace leaf (Hardhat 3 Solidity tests; no
/// forge-std: plain `require`s, inputs bounded by modular reduction).
/// hardhat-config: fuzz.runs = 500
contract SamplingTest {
    uint256 private constant MAX_SEGMENTS = 4096;
    uint256 private constant MAX_SAMPLES = 32;

    /// k distinct indices in [0, n) for any seed, n <= 4096, k <= min(n, 32).
    function testFuzz_sampleIndicesDistinctInRange(bytes32 seed, uint256 nRaw, uint256 kRaw) public pure {
        uint256 n = 1 + (nRaw % MAX_SEGMENTS);
        uint256 cap = n < MAX_SAMPLES ? n : MAX_SAMPLES;
        uint256 k = kRaw % (cap + 1);
        uint256[] memory out = Sampling.sampleIndices(seed, n, k);
        require(out.length == k, "length");
        for (uint256 i = 0; i < k; ++i) {
            require(out[i] < n, "range");
            for (uint256 j = 0; j < i; ++j) {
                require(out[i] != out[j], "distinct");
            }
        }
    }

    /// k == n yields a permutation of [0, n).
    function testFuzz_fullSampleIsPermutation(bytes32 seed, uint256 nRaw) public pure {
        uint256 n = 1 + (nRaw % MAX_SAMPLES);
        uint256[] memory out = Sampling.sampleIndices(seed, n, n);
        bool[] memory seen = new bool[](n);
        for (uint256 i = 0; i < n; ++i) {
            require(!seen[out[i]], "repeat");
            seen[out[i]] = true;
        }
    }

    /// The first draw is exactly `keccak256(abi.encode(seed, 0)) % n` (nothing swapped yet).
    function testFuzz_firstDrawMatchesRule(bytes32 seed, uint256 nRaw) public pure {
        uint256 n = 1 + (nRaw % MAX_SEGMENTS);
        uint256[] memory out = Sampling.sampleIndices(seed, n, 1);
        require(out[0] == uint256(keccak256(abi.encode(seed, uint256(0)))) % n, "draw 0");
    }

    /// A ticket lands on the first position whose cumulative weight exceeds it: never on a
    /// zero weight, always within the list, and exactly where a linear walk lands.
    function testFuzz_pickMatchesLinearWalk(bytes32 seed, uint256 counter, uint64[8] memory raw) public pure {
        uint256[] memory cumulative = new uint256[](8);
        uint256 total = 0;
        for (uint256 i = 0; i < 8; ++i) {
            // a few zero weights on purpose
            uint256 w = raw[i] % 3 == 0 ? 0 : raw[i];
            total += w;
            cumulative[i] = total;
        }
        if (total == 0) return;
        uint256 t = Sampling.ticket(seed, keccak256("opentrain.verifier"), counter, total);
        require(t == uint256(keccak256(abi.encode(seed, keccak256("opentrain.verifier"), counter))) % total, "rule");
        uint256 idx = Sampling.pick(cumulative, t);
        uint256 walk = 0;
        while (cumulative[walk] <= t) walk++;
        require(idx == walk, "binary search == linear walk");
        uint256 previous = idx == 0 ? 0 : cumulative[idx - 1];
        require(cumulative[idx] > previous, "never a zero weight");
    }

    /// A one-leaf tree: its root is the leaf; the sealed root verifies only that leaf and seal.
    function testFuzz_singleLeafTrace(uint256 index, bytes32 digest, bytes32 other, bytes32 seal) public pure {
        bytes32 leafHash = keccak256(bytes.concat(keccak256(abi.encode(index, digest))));
        require(TraceCommitment.leaf(index, digest) == leafHash, "leaf encoding");
        bytes32 root = keccak256(abi.encode(keccak256("opentrain.trace"), leafHash, seal));
        require(TraceCommitment.sealedRoot(leafHash, seal) == root, "sealed root encoding");
        bytes32[] memory proof = new bytes32[](0);
        require(TraceCommitment.verify(proof, root, seal, index, digest), "verifies");
        if (other != digest) require(!TraceCommitment.verify(proof, root, seal, index, other), "other digest");
        if (other != seal) require(!TraceCommitment.verify(proof, root, other, index, digest), "other seal");
    }

    /// Two leaves: each verifies with the other as its proof (sorted-pair hashing).
    function testFuzz_twoLeafTrace(bytes32 d0, bytes32 d1, bytes32 seal) public pure {
        bytes32 l0 = TraceCommitment.leaf(0, d0);
        bytes32 l1 = TraceCommitment.leaf(1, d1);
        bytes32 tree = l0 < l1 ? keccak256(abi.encode(l0, l1)) : keccak256(abi.encode(l1, l0));
        bytes32 root = TraceCommitment.sealedRoot(tree, seal);
        bytes32[] memory p0 = new bytes32[](1);
        p0[0] = l1;
        bytes32[] memory p1 = new bytes32[](1);
        p1[0] = l0;
        require(TraceCommitment.verify(p0, root, seal, 0, d0), "leaf 0");
        require(TraceCommitment.verify(p1, root, seal, 1, d1), "leaf 1");
        require(!TraceCommitment.verify(p0, root, seal, 1, d0), "index swapped");
        require(!TraceCommitment.verify(p0, tree, seal, 0, d0), "the unsealed root is not a trace root");
    }
}
