"""Canaries, the shared rules (contracts/CANARIES.md, ``Canaries.sol``): which segments a canary
faults, the bitmap the contract reads, the seal its trace root carries (which commits to the
faults before the sampling seed exists, and opens one way only), and the verdict a canary's
sample calls for. The authority computes them; the contract recomputes the seal and the
expected verdict; tests check the two agree.
"""

from __future__ import annotations

from collections.abc import Iterable

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

__all__ = [
    "CANARY_DOMAIN",
    "canary_seal",
    "draw_faults",
    "expected_fail",
    "fault_words",
]

CANARY_DOMAIN = keccak(text="opentrain.canary")


def draw_faults(secret: bytes, num_segments: int, samples: int) -> set[int]:
    """Each segment faulty with probability 1/k, from the secret (so the authority can redo
    it): a verifier that re-executes j of its k samples misses a canary's fault with a
    probability that punishes every degree of laziness (CANARIES.md 2.2)."""
    return {
        j
        for j in range(num_segments)
        if int.from_bytes(keccak(secret + j.to_bytes(32, "big")), "big") % samples == 0
    }


def fault_words(faults: Iterable[int], num_segments: int) -> list[int]:
    """The bitmap ``Canaries.reveal`` takes: bit j of word j // 256 set for a faulty segment."""
    words = [0] * ((num_segments + 255) // 256)
    for j in faults:
        if not 0 <= j < num_segments:
            raise ValueError(f"segment {j} is not in 0..{num_segments - 1}")
        words[j // 256] |= 1 << (j % 256)
    return words


def canary_seal(
    chain_id: int,
    market: str,
    job_id: int,
    round_: int,
    slot: int,
    node: str,
    secret: bytes,
    words: list[int],
) -> bytes:
    """``Canaries.canarySeal``: keccak256(abi.encode(CANARY_DOMAIN, chainid, market, jobId,
    round, slot, node, secret, keccak256(abi.encodePacked(faults)))). The secret makes it
    look as random as an honest node's seal."""
    faults_hash = keccak(b"".join(w.to_bytes(32, "big") for w in words))
    return keccak(
        encode(
            [
                "bytes32",
                "uint256",
                "address",
                "uint256",
                "uint256",
                "uint256",
                "address",
                "bytes32",
                "bytes32",
            ],
            [
                CANARY_DOMAIN,
                chain_id,
                to_checksum_address(market),
                job_id,
                round_,
                slot,
                to_checksum_address(node),
                secret,
                faults_hash,
            ],
        )
    )


def expected_fail(sampled: Iterable[int], faults: set[int]) -> bool:
    """The right verdict on a canary: fail iff a sampled segment is faulty."""
    return any(j in faults for j in sampled)
