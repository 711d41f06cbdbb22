"""Sampling: which segments a verifier re-executes, and the hash of what it recomputed.

The same rule is written in Solidity (``contracts/libraries/Sampling.sol``); tests check that the
two agree. The seed comes from the chain (``Settlement.recordSeed``), from a block after the
submission, so a node cannot know it when it commits. Which *verifier* is drawn is
``opentrain.protocol.draws``.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode as abi_encode
from eth_utils import keccak


def _draw(seed: bytes, i: int) -> int:
    return int.from_bytes(keccak(abi_encode(["bytes32", "uint256"], [seed, i])), "big")


def sample_indices(seed: bytes, n: int, k: int) -> list[int]:
    """``k`` distinct indices in ``[0, n)`` by a partial Fisher-Yates shuffle, in draw order."""
    if k > n:
        raise ValueError(f"cannot sample {k} distinct segments out of {n}")
    swapped: dict[int, int] = {}
    out: list[int] = []
    for i in range(k):
        j = i + _draw(seed, i) % (n - i)
        out.append(swapped.get(j, j))
        swapped[j] = swapped.get(i, i)
    return out


def contribution_seed(block_hash: bytes, contribution_id: int) -> bytes:
    """The seed ``Settlement.recordSeed`` stores: keccak256(abi.encode(blockhash, id))."""
    return keccak(abi_encode(["bytes32", "uint256"], [block_hash, contribution_id]))


def sampled_checkpoints(sampled: Sequence[int]) -> list[int]:
    """The checkpoints a verifier fetches for a sample, ascending: checkpoint 0 (checked to be
    G_r with fresh optimizer state and the node's binding) and each sampled segment's start and
    end. On-demand availability publishes exactly these (``node.reveal``)."""
    return sorted({0} | {i for s in sampled for i in (s, s + 1)})


def recomputed_digests_hash(digests: Sequence[bytes]) -> bytes:
    """What ``attest`` commits to: keccak256(abi.encode(bytes32[] digests)) of the sha256
    digests of the checkpoints the verifier recomputed, in sample order (for each sampled
    segment, the checkpoint at its end). Any party can recompute it from the report and the
    manifest, so a pass that recomputed nothing (or something else) is provable."""
    if any(len(d) != 32 for d in digests):
        raise ValueError("a checkpoint digest is 32 bytes")
    return keccak(abi_encode(["bytes32[]"], [list(digests)]))
