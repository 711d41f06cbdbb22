"""Python and Solidity must compute the same commitments and samples (issue 2)."""

from __future__ import annotations

import hashlib
import random

from conftest import Market

from opentrain.chain.types import TOKEN, JobParams
from opentrain.protocol.commitments import build_trace_tree, verify_proof
from opentrain.protocol.sampling import sample_indices


def test_python_and_solidity_choose_the_same_samples_for_100_seeds(shared_market: Market) -> None:
    rng = random.Random(2026)
    settlement = shared_market.chain.settlement
    for _ in range(100):
        seed = rng.randbytes(32)
        n = rng.randint(1, 300)
        k = rng.randint(1, min(n, 32))
        on_chain = settlement.functions.sampleIndices(seed, n, k).call()
        local = sample_indices(seed, n, k)
        assert local == list(on_chain)
        assert len(set(local)) == k and all(0 <= i < n for i in local)


def test_python_merkle_proofs_verify_in_the_contract(market: Market) -> None:
    digests = [hashlib.sha256(f"checkpoint {i}".encode()).digest() for i in range(9)]
    tree = build_trace_tree(digests)
    sponsor, node = market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    params = JobParams(b"\x01" * 32, b"\x02" * 32, 1, 1, 8, 2, TOKEN, TOKEN // 10)
    job_id = sponsor.create_job(params, "spec-cid", "model-cid")
    node.claim_slot(job_id, 0, 0)
    cid = node.submit_contribution(job_id, 0, 0, digests[-1], tree.root, "out", "manifest")
    verify = market.chain.settlement.functions.verifyCheckpoint
    for i, d in enumerate(digests):
        proof = tree.proof(i)
        assert verify_proof(tree.root, i, d, proof)
        assert verify(cid, i, d, proof).call() is True
        assert verify(cid, (i + 1) % 9, d, proof).call() is False
        assert verify(cid, i, hashlib.sha256(d).digest(), proof).call() is False
