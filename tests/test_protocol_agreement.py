"""Python and Solidity must compute the same commitments, samples (issue 2) and verifier
draws (issue 13)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from conftest import Market
from eth_abi import encode as abi_encode
from eth_utils import keccak

from opentrain.chain.account import ChainAccount
from opentrain.chain.client import DEV_PARAMS
from opentrain.chain.types import TOKEN, JobParams
from opentrain.protocol.commitments import build_trace_tree, verify_proof
from opentrain.protocol.draws import COMMITTEE_TAG, VERIFIER_TAG, Snapshot, draw_one
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
    seal = hashlib.sha256(b"a seal").digest()
    tree = build_trace_tree(digests, seal)
    sponsor, node = market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    params = JobParams(b"\x01" * 32, b"\x02" * 32, 1, 1, 8, 2, TOKEN, TOKEN // 10)
    job_id = sponsor.create_job(params, "spec-cid", "model-cid")
    node.claim_slot(job_id, 0, 0)
    cid = node.submit_contribution(job_id, 0, 0, digests[-1], tree.root, "out", "manifest")
    verify = market.chain.settlement.functions.verifyCheckpoint
    for i, d in enumerate(digests):
        proof = tree.proof(i)
        assert verify_proof(tree.root, i, d, proof, seal)
        assert verify(cid, i, d, proof, seal).call() is True
        assert verify(cid, (i + 1) % 9, d, proof, seal).call() is False
        assert verify(cid, i, hashlib.sha256(d).digest(), proof, seal).call() is False
        assert verify(cid, i, d, proof, hashlib.sha256(seal).digest()).call() is False
        assert not verify_proof(tree.checkpoints_root, i, d, proof, seal)


# -- the verifier draw (issue 13): opentrain.protocol.draws against StakeRegistry ---------------

VECTORS = Path(__file__).parent / "contracts" / "draw_vectors.json"


def test_python_draws_match_the_hardhat_vectors() -> None:
    """``tests/contracts/draw_vectors.json`` holds drawTicket answers from a live Hardhat chain."""
    doc = json.loads(VECTORS.read_text())
    snap = Snapshot.of(
        [e["account"] for e in doc["snapshot"]], [int(e["weight"]) for e in doc["snapshot"]]
    )
    cases = doc["cases"]
    assert len(cases) >= 10
    for case in cases:
        tag = bytes.fromhex(case["tagHash"][2:])
        assert tag == keccak(case["tag"].encode())
        seed = bytes.fromhex(case["seed"][2:])
        assert draw_one(seed, tag, int(case["counter"]), snap) == case["expected"]


def _weighted_verifiers(market: Market, stakes: list[int]) -> list[ChainAccount]:
    verifiers = []
    for amount in stakes:
        v = market.new_account(tokens=amount * TOKEN)
        v.stake(amount * TOKEN)
        v.register_verifier()
        verifiers.append(v)
    return verifiers


def test_python_and_solidity_draw_the_same_verifier_for_500_seeds(market: Market) -> None:
    chain = market.chain
    stakes = chain.stakes.functions
    verifiers = _weighted_verifiers(market, [100, 250, 100, 400, 175, 100])
    verifiers[2].deregister_verifier()  # stays listed, weight 0
    verifiers[4].request_unbond(75 * TOKEN)  # weight follows the stake
    chain.mine(DEV_PARAMS.draw_lag)
    block = chain.block_number()
    snap = Snapshot.of(*stakes.verifierSnapshot(block).call())
    assert snap.accounts == tuple(v.address for v in verifiers)  # first-registration order
    assert snap.weights == tuple(w * TOKEN for w in (100, 250, 0, 400, 100, 100))
    key = block - DEV_PARAMS.draw_lag
    assert [stakes.weightAt(a, key).call() for a in snap.accounts] == list(snap.weights)
    rng = random.Random(13)
    for tag in (VERIFIER_TAG, COMMITTEE_TAG):
        for _ in range(250):
            seed, counter = rng.randbytes(32), rng.randint(0, 40)
            assert stakes.drawTicket(seed, tag, block, counter).call() == draw_one(
                seed, tag, counter, snap
            )
    # a snapshot before the verifiers registered (or before drawLag blocks) has no weight
    empty = Snapshot.of(*stakes.verifierSnapshot(1).call())
    assert empty.total == 0 and draw_one(b"\x01" * 32, VERIFIER_TAG, 0, empty) == "0x" + "00" * 20
    assert stakes.drawTicket(b"\x01" * 32, VERIFIER_TAG, 1, 0).call() == "0x" + "00" * 20


def test_draw_frequencies_follow_stake_on_chain_and_in_python(market: Market) -> None:
    chain = market.chain
    stakes = chain.stakes.functions
    verifiers = _weighted_verifiers(market, [100, 100, 200, 400])
    chain.mine(DEV_PARAMS.draw_lag)
    block = chain.block_number()
    snap = Snapshot.of(*stakes.verifierSnapshot(block).call())
    first, n = keccak(b"frequencies"), 2_000
    hits = stakes.drawFrequencies(first, VERIFIER_TAG, block, n).call()
    local = [0] * len(verifiers)
    for i in range(n):
        seed = keccak(abi_encode(["bytes32", "uint256"], [first, i]))
        local[snap.accounts.index(draw_one(seed, VERIFIER_TAG, 0, snap))] += 1
    assert list(hits) == local
    for count, v in zip(local, verifiers, strict=True):
        assert abs(count / n - snap.share(v.address)) < 0.035
