"""The economics of issue 18: the Python guard agrees with Economics.sol (on the in-process
chain, through createJob), the guard and the canary guard refuse wherever the simulation
(``bench/economics.py``) says a dishonest strategy pays, the simulation agrees with its closed
forms, and its sybil row draws verifiers by the stake-weighted rule of issue 13."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import Market
from eth_utils import keccak

from opentrain.chain.client import ProtocolParams
from opentrain.chain.types import TOKEN, ChainError, JobParams
from opentrain.protocol.economics import (
    BPS,
    CANARY_WEIGHT_BPS,
    WAD,
    canary_weight,
    cheating_loses,
    detection_exact,
    detection_probability,
    effective_detection,
    laziness_loses,
    maximum_reward,
    minimum_canary_rate,
    minimum_stake,
)
from opentrain.protocol.presets import default_demo_spec

ROOT = Path(__file__).resolve().parent.parent
P = ProtocolParams()


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_economics", ROOT / "bench/economics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_economics"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


bench = _bench()
DEMO = bench.Market.from_spec(default_demo_spec(), P)


def fake(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


# -- the guard: Python == Solidity ---------------------------------------------------------------


def test_default_guard_is_the_contract_formula() -> None:
    """With q = 1, s = 0 the extended guard is today's rule, bit for bit."""
    for f, k in itertools.product((1, 7, 200, 1_000, 3_333, 9_999, 10_000), (1, 2, 3, 8, 32)):
        p = detection_probability(f, k)
        assert effective_detection(f, k) == p
        assert effective_detection(f, k, detect_bps=BPS, ally_share_bps=0, challenge_bps=0) == p
        # a fully challenged ally changes nothing; s = 0 changes nothing whatever c is
        assert effective_detection(f, k, ally_share_bps=5_000, challenge_bps=BPS) == p
        for stake, reward in ((100 * TOKEN, TOKEN), (TOKEN, 50 * TOKEN), (1, 0)):
            assert cheating_loses(f, k, stake, reward) == (p * (stake + reward) > reward * WAD)


def test_extended_guard_rounds_towards_refusing() -> None:
    """Every extra term can only lower P, and never above the exact real value."""
    for f, k, q, s, c in itertools.product(
        (200, 1_000, 10_000), (1, 2, 8), (10, 5_000, BPS), (0, 1_000, 9_990), (0, 5_000)
    ):
        p = effective_detection(f, k, detect_bps=q, ally_share_bps=s, challenge_bps=c)
        exact = (1 - s / BPS * (1 - c / BPS)) * (1 - (1 - q * f / BPS / BPS) ** k)
        assert p <= detection_probability(f, k)
        assert p / WAD <= exact + 1e-15
        assert exact - p / WAD < 1e-12


def test_minimum_stake_and_maximum_reward_are_tight() -> None:
    cases = [
        (1_000, 2, {}),
        (200, 2, {}),
        (1_000, 1, {}),
        (1_000, 2, {"detect_bps": 5_000, "ally_share_bps": 1_000}),
        (10_000, 4, {"ally_share_bps": 3_000, "challenge_bps": 2_000}),
    ]
    for f, k, kw in cases:
        for reward in (TOKEN, 10**17, 7 * TOKEN + 3):
            s = minimum_stake(reward, f, k, **kw)
            assert cheating_loses(f, k, s, reward, **kw)
            assert not cheating_loses(f, k, s - 1, reward, **kw)
        r = maximum_reward(100 * TOKEN, f, k, **kw)
        assert cheating_loses(f, k, 100 * TOKEN, r, **kw)
        assert not cheating_loses(f, k, 100 * TOKEN, r + 1, **kw)
    # the demo: f = 10 %, k = 2, 1 TRAIN reward needs 4.27 TRAIN of stake (it locks 100)
    assert minimum_stake(TOKEN, 1_000, 2) == 4_263_157_894_736_842_106
    with pytest.raises(ValueError):
        minimum_stake(TOKEN, 1_000, 2, detect_bps=0)
    with pytest.raises(ValueError):
        minimum_stake(TOKEN, 1_000, 2, ally_share_bps=BPS)


def _refusal_detection(exc: ChainError) -> int:
    found = re.search(r"detectionWad=(\d+)", str(exc))
    assert found, str(exc)
    return int(found.group(1))


def test_guard_agrees_with_createjob_on_chain(shared_market: Market) -> None:
    """At the largest reward ``maximum_reward`` allows the contract accepts, one base unit more it
    refuses, and the detection it reports is ``detection_probability``'s, for several f and k."""
    sponsor = shared_market.new_account(tokens=100_000 * TOKEN)
    stake = shared_market.chain.params().min_node_stake
    for f, k in ((1_000, 1), (1_000, 2), (37, 3), (5_000, 4)):
        limit = maximum_reward(stake, f, k)
        ok = JobParams(fake(f"s{f}{k}"), fake("g"), 1, 1, 32, k, limit, 0, cheat_fraction_bps=f)
        assert sponsor.create_job(ok, "s", "g") > 0
        bad = replace(ok, reward_per_slot=limit + 1)
        with pytest.raises(ChainError, match=r"JobMarketCheatingPays") as refused:
            sponsor.create_job(bad, "s", "g")
        assert _refusal_detection(refused.value) == detection_probability(f, k)
        # job init's helper names the stake that would have made the refused job acceptable
        assert minimum_stake(limit + 1, f, k) > stake >= minimum_stake(limit, f, k)


# -- the guard refuses where the simulation says cheating pays ----------------------------------


def _paying_node_rows(m: Any, jobs: int = 1_500) -> list[Any]:
    rows = bench.simulate(m, jobs, seed=3)
    return [r for r in rows if r.fake_bps is not None and r.pays]


def test_guard_refuses_where_the_simulation_says_cheating_pays() -> None:
    """Over a grid of markets: every node strategy the simulation finds profitable is refused by
    the guard with that strategy's f, q and s (the verifiers it meets re-execute every sample;
    laziness is the canary guard's, below). Some grid points pay, and at some of them today's
    guard (q = 1, s = 0) accepts: the extra terms matter."""
    paying = 0
    today_accepts = 0
    for stake, k, q, s in itertools.product((1.0, 100.0), (1, 2), (0.001, 0.5), (0.0, 0.999)):
        m = replace(
            DEMO.with_stake(stake).with_samples(k),
            exploit_detect=q,
            ally_share=s,
            canary_rate=0.01,
            canary_bonus=DEMO.fee,
        )
        for r in _paying_node_rows(m):
            if r.checks != k:
                continue  # verifiers lazy: the canary guard's case
            paying += 1
            s_tok, r_tok = round(stake * TOKEN), round(DEMO.reward * TOKEN)
            assert not cheating_loses(
                r.fake_bps,
                k,
                s_tok,
                r_tok,
                detect_bps=r.detect_bps,
                ally_share_bps=r.ally_bps,
                challenge_bps=round(m.challenge * BPS),
            ), (r.strategy, stake, k, q, s)
            today_accepts += cheating_loses(r.fake_bps, k, s_tok, r_tok)
    assert paying >= 3
    assert today_accepts >= 1


def test_demo_job_is_accepted_and_every_dishonest_strategy_loses_there() -> None:
    spec = default_demo_spec()
    reward = spec.reward.reward_per_slot
    assert cheating_loses(1_000, spec.verification.samples, P.min_node_stake, reward)
    rate, bonus = bench.recommend(DEMO)
    assert laziness_loses(rate, P.verifier_lock, spec.reward.verifier_fee, round(bonus * TOKEN))
    m = replace(DEMO, canary_rate=rate / BPS, canary_bonus=bonus)
    rows = bench.simulate(m, 2_000, seed=1)
    assert all(r.loses for r in rows), [r.strategy for r in rows if not r.loses]
    # without canaries the verifier's dilemma is back: laziness pays and so does faking
    today = {r.strategy: r for r in bench.simulate(DEMO, 2_000, seed=1)}
    assert today["lazy verifier"].pays
    assert today["fake 10% vs best-response verifiers (check 0/2)"].pays


def test_canary_guard_refuses_where_the_simulation_says_laziness_pays() -> None:
    """With verifier compute at its bound (V = F), the lazy and partly lazy verifier lose in the
    simulation wherever ``laziness_loses`` accepts, including at ``minimum_canary_rate``, and pay
    just below it."""
    assert all(canary_weight(k) >= CANARY_WEIGHT_BPS / BPS for k in range(1, 33))
    for k, lock, bonus in itertools.product((1, 2, 4), (5.0, 50.0), (0.0, 0.1)):
        base = DEMO.with_samples(k)
        m0 = replace(base, verifier_lock=lock, canary_bonus=bonus, verify_cost=base.fee)
        lock_u, fee_u, bonus_u = round(lock * TOKEN), round(m0.fee * TOKEN), round(bonus * TOKEN)
        least = minimum_canary_rate(lock_u, fee_u, bonus_u)
        assert laziness_loses(least, lock_u, fee_u, bonus_u)
        assert not laziness_loses(least - 1, lock_u, fee_u, bonus_u)
        for rate in (least, 2 * least):
            rows = bench.simulate(replace(m0, canary_rate=rate / BPS), 4_000, seed=2)
            verifier_rows = [r for r in rows if r.party == "verifier"]
            assert all(r.loses for r in verifier_rows), (k, lock, bonus, rate)
        # the guard's w = 0.36 is a floor: the simulation breaks even at w(k) instead
        below = least * CANARY_WEIGHT_BPS / BPS / canary_weight(k) * 0.9
        lazy = {
            r.strategy: r
            for r in bench.simulate(replace(m0, canary_rate=below / BPS), 4_000, seed=2)
        }
        assert any(lazy[s].pays for s in ("lazy verifier", "partly lazy verifier") if s in lazy)


# -- the simulation agrees with its closed forms ------------------------------------------------


def test_simulation_matches_closed_forms() -> None:
    m = replace(DEMO, canary_rate=0.01, canary_bonus=0.1)
    rows = {r.strategy: r for r in bench.simulate(m, 20_000, seed=5)}
    n = m.segments
    for name, faked, q in (
        ("fake 1 segment", 1, 1.0),
        ("fake 10% of segments", n // 10, 1.0),
        ("fake every segment", n, 1.0),
        ("tolerance exploit (10%, q=0.5)", n // 10, 0.5),
    ):
        r = rows[name]
        assert abs(r.mean - bench.expected_fake(m, faked, q)) <= 2 * r.half_width + 1e-9, name
    lazy = rows["lazy verifier"]
    assert abs(lazy.mean - bench.expected_lazy(m)) <= 2 * lazy.half_width + 1e-9
    # hypergeometric detection is at least the with-replacement bound the contract uses
    for faked, k, q in itertools.product((1, 5, 25, 50), (1, 2, 4), (0.3, 1.0)):
        assert detection_exact(n, faked, k, q) >= 1 - (1 - q * faked / n) ** k - 1e-12


# -- sybils: the stake-weighted draw -------------------------------------------------------------

# StakeRegistry.drawTicket on a Hardhat chain (issue 13's tests/contracts/draw_vectors.json)
VECTOR_WEIGHTS = [400, 400, 100, 100, 100, 100]
VECTOR_CASES = [  # seed, tag, counter, expected list position
    ("0xc54cda32cfb8f9e8103205ab3b627a7ea5b02bb00fed91fbd1bd449389f94854", "verifier", 0, 0),
    ("0xc54cda32cfb8f9e8103205ab3b627a7ea5b02bb00fed91fbd1bd449389f94854", "verifier", 1, 1),
    ("0xc54cda32cfb8f9e8103205ab3b627a7ea5b02bb00fed91fbd1bd449389f94854", "verifier", 31, 5),
    ("0xc54cda32cfb8f9e8103205ab3b627a7ea5b02bb00fed91fbd1bd449389f94854", "committee", 0, 3),
    ("0xc54cda32cfb8f9e8103205ab3b627a7ea5b02bb00fed91fbd1bd449389f94854", "committee", 1, 4),
    ("0xc54cda32cfb8f9e8103205ab3b627a7ea5b02bb00fed91fbd1bd449389f94854", "committee", 31, 4),
    ("0x0d2297f698a3301514c0647a5fd772ed72648bc8aba395893b934249cac2739f", "verifier", 0, 1),
    ("0x0d2297f698a3301514c0647a5fd772ed72648bc8aba395893b934249cac2739f", "verifier", 1, 0),
]


def test_draw_mirror_agrees_with_the_contract_vectors() -> None:
    weights = [w * TOKEN for w in VECTOR_WEIGHTS]
    for seed, tag, counter, expected in VECTOR_CASES:
        tag_hash = keccak(f"opentrain.{tag}".encode())
        assert bench.draw_one(bytes.fromhex(seed[2:]), tag_hash, counter, weights) == expected
    vectors = ROOT / "tests/contracts/draw_vectors.json"
    if vectors.exists():  # the full set, once issue 13 is merged
        data = json.loads(vectors.read_text())
        accounts = [s["account"] for s in data["snapshot"]]
        full = [int(s["weight"]) for s in data["snapshot"]]
        for case in data["cases"]:
            got = bench.draw_one(
                bytes.fromhex(case["seed"][2:]),
                bytes.fromhex(case["tagHash"][2:]),
                case["counter"],
                full,
            )
            assert accounts[got] == case["expected"]


def test_sybil_row_uses_the_stake_share_rule() -> None:
    """Splitting a stake share over accounts does not change how often the attacker is drawn
    under the stake-weighted rule (it did under the count rule), and the sybil row is simulated
    with exactly those draws."""
    seeds = bench.draw_seeds(keccak(b"test_economics"), 6_000)
    share = 0.1
    freqs = {}
    for accounts in (1, 16):
        sy, weighted, counted = bench.sybil_draws(share, accounts, seeds)
        assert sy.share == pytest.approx(share, abs=1e-3)
        assert weighted.mean() == pytest.approx(sy.share, abs=0.015)  # 6000 draws: sd 0.004
        freqs[accounts] = counted.mean()
        ally = weighted
    assert freqs[16] > 2 * share  # one ticket per account would reward splitting
    m = replace(DEMO, ally_share=share)
    rows = {r.party: r for r in bench.simulate(m, 3_000, seed=4, sybil_ally=ally)}
    sybil = rows["node+sybils"]
    assert sybil.ally_bps == round(share * BPS)
    # with every contribution drawn to the attacker and nobody challenging, the fake passes:
    # the coalition gains the saved compute and the ally's skipped re-execution, exactly
    everyone = bench.simulate(m, 200, seed=4, sybil_ally=ally | True)
    row = next(r for r in everyone if r.party == "node+sybils")
    per = (m.segments // 10) / m.segments * m.train_cost + m.verify_cost
    assert row.mean == pytest.approx(per * m.contributions_per_job)
    assert sybil.loses
