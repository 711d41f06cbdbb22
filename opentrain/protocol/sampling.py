"""Sampling: which segments a verifier re-executes and which verifier is drawn.

The same rule is written in Solidity (``contracts/libraries/Sampling.sol``); tests check that the
two agree. The seed comes from the chain (``Settlement.recordSeed``), from a block after the
submission, so a node cannot know it when it commits.
"""

from __future__ import annotations

from eth_abi import encode as abi_encode
from eth_utils import keccak

VERIFIER_TAG = keccak(b"opentrain.verifier")


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


def verifier_index(seed: bytes, count: int) -> int:
    """Index of the verifier drawn from ``count`` registered verifiers (``Settlement`` takes
    the next index instead when the drawn verifier is the contribution's own node)."""
    digest = keccak(abi_encode(["bytes32", "bytes32"], [seed, VERIFIER_TAG]))
    return int.from_bytes(digest, "big") % count


def contribution_seed(block_hash: bytes, contribution_id: int) -> bytes:
    """The seed ``Settlement.recordSeed`` stores: keccak256(abi.encode(blockhash, id))."""
    return keccak(abi_encode(["bytes32", "uint256"], [block_hash, contribution_id]))
