// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title TraceCommitment
/// @notice Leaves and proofs of a contribution's trace: leaf j commits to checkpoint j by its
/// sha256, encoded as in the OpenZeppelin merkle-tree StandardMerkleTree of ["uint256","bytes32"]
/// (double keccak, sorted pairs). Mirrored by `opentrain.commitments` in Python.
library TraceCommitment {
    /// @notice The leaf of checkpoint `index` whose file has sha256 `digest`.
    function leaf(uint256 index, bytes32 digest) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(index, digest))));
    }

    /// @notice Whether checkpoint `index` with sha256 `digest` is under `root`.
    function verify(bytes32[] memory proof, bytes32 root, uint256 index, bytes32 digest)
        internal
        pure
        returns (bool)
    {
        return MerkleProof.verify(proof, root, leaf(index, digest));
    }
}
