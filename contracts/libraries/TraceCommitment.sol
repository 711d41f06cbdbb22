// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title TraceCommitment
/// @notice Leaves and proofs of a contribution's trace. Leaf j commits to checkpoint j by its
/// sha256, encoded as in the OpenZeppelin merkle-tree StandardMerkleTree of ["uint256","bytes32"]
/// (double keccak, sorted pairs); the trace root seals that tree's root with a 32-byte `seal`
/// in a fixed order, `keccak256(abi.encode(TRACE_DOMAIN, checkpointsRoot, seal))`, so a trace
/// root opens to exactly one (checkpoints root, seal) pair. An honest node's seal is random;
/// a canary's commits to its faults (contracts/CANARIES.md). Mirrored by
/// `opentrain.protocol.commitments` in Python.
library TraceCommitment {
    /// @notice Domain of sealed trace roots (no Merkle node or leaf hashes 96 bytes).
    bytes32 internal constant TRACE_DOMAIN = keccak256("opentrain.trace");

    /// @notice The leaf of checkpoint `index` whose file has sha256 `digest`.
    function leaf(uint256 index, bytes32 digest) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(index, digest))));
    }

    /// @notice The trace root of a checkpoint tree with root `checkpointsRoot` sealed by `seal`.
    function sealedRoot(bytes32 checkpointsRoot, bytes32 seal) internal pure returns (bytes32) {
        return keccak256(abi.encode(TRACE_DOMAIN, checkpointsRoot, seal));
    }

    /// @notice Whether checkpoint `index` with sha256 `digest` is under the trace root `root`
    /// sealed with `seal` (`proof`: its siblings in the checkpoint tree).
    function verify(bytes32[] memory proof, bytes32 root, bytes32 seal, uint256 index, bytes32 digest)
        internal
        pure
        returns (bool)
    {
        return sealedRoot(MerkleProof.processProof(proof, leaf(index, digest)), seal) == root;
    }
}
