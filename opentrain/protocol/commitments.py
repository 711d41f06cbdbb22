"""Trace commitments: a Merkle tree over checkpoint leaves, identical to OpenZeppelin's
``StandardMerkleTree`` of ``["uint256", "bytes32"]`` values (npm ``@openzeppelin/merkle-tree``),
so the Solidity side verifies proofs with ``MerkleProof.verify`` unchanged.

Leaf ``j`` = keccak256(keccak256(abi.encode(j, sha256(checkpoint j)))). Pairs are hashed
sorted; the tree is the library's array layout (leaves sorted by hash, stored from the end).

The trace root the node submits seals that tree's root with 32 bytes in a fixed order
(``TraceCommitment.sealedRoot``: keccak256(abi.encode(TRACE_DOMAIN, checkpoints root, seal))),
so it opens to exactly one seal. An honest node's seal is random; a canary's commits to its
faults before the sampling seed exists (``opentrain.protocol.canaries``, contracts/CANARIES.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi import encode as abi_encode
from eth_utils import keccak

TRACE_DOMAIN = keccak(text="opentrain.trace")


def sealed_root(checkpoints_root: bytes, seal: bytes) -> bytes:
    """``TraceCommitment.sealedRoot``: the trace root of a checkpoint tree sealed with ``seal``."""
    if len(seal) != 32:
        raise ValueError("a trace seal is 32 bytes")
    values = [TRACE_DOMAIN, checkpoints_root, seal]
    return keccak(abi_encode(["bytes32", "bytes32", "bytes32"], values))


def leaf_hash(index: int, digest: bytes) -> bytes:
    """The leaf committing checkpoint ``index`` by its sha256 ``digest``."""
    if len(digest) != 32:
        raise ValueError("a checkpoint digest is 32 bytes")
    return keccak(keccak(abi_encode(["uint256", "bytes32"], [index, digest])))


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


@dataclass(frozen=True)
class TraceTree:
    """The tree over checkpoint digests ``0..n`` and its seal; build with
    :func:`build_trace_tree`."""

    digests: tuple[bytes, ...]
    tree: tuple[bytes, ...]
    leaf_position: dict[int, int]
    seal: bytes

    @property
    def checkpoints_root(self) -> bytes:
        """The checkpoint tree's root (what a canary reveal opens the seal with)."""
        return self.tree[0]

    @property
    def root(self) -> bytes:
        """The trace root submitted on-chain: the checkpoints root sealed."""
        return sealed_root(self.tree[0], self.seal)

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from the leaf of checkpoint ``index`` up to the checkpoints root."""
        pos = self.leaf_position[index]
        proof: list[bytes] = []
        while pos > 0:
            sibling = pos - 1 if pos % 2 == 0 else pos + 1
            proof.append(self.tree[sibling])
            pos = (pos - 1) // 2
        return proof


def build_trace_tree(digests: Sequence[bytes], seal: bytes) -> TraceTree:
    """Build the standard tree (leaves sorted by hash, complete binary tree in an array)
    sealed with ``seal``."""
    if not digests:
        raise ValueError("a trace has at least one checkpoint")
    leaves = [(leaf_hash(i, d), i) for i, d in enumerate(digests)]
    leaves.sort(key=lambda item: item[0])
    size = 2 * len(leaves) - 1
    tree: list[bytes] = [b""] * size
    position: dict[int, int] = {}
    for k, (h, index) in enumerate(leaves):
        tree[size - 1 - k] = h
        position[index] = size - 1 - k
    for i in range(size - 1 - len(leaves), -1, -1):
        tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
    if len(seal) != 32:
        raise ValueError("a trace seal is 32 bytes")
    return TraceTree(tuple(digests), tuple(tree), position, seal)


def verify_proof(
    root: bytes, index: int, digest: bytes, proof: Sequence[bytes], seal: bytes
) -> bool:
    """What ``Settlement.verifyCheckpoint`` computes on-chain (``TraceCommitment.verify``)."""
    node = leaf_hash(index, digest)
    for sibling in proof:
        node = hash_pair(node, sibling)
    return sealed_root(node, seal) == root
