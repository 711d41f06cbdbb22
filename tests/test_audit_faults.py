"""The auditor finds each fault planted for real on one shared job, and only that fault:

- a verifier that attests pass with a report whose Merkle proof was doctored;
- two lazy verifiers that attest pass without re-executing: one publishes no checks (and commits
  on-chain to the hash of the node's committed digests, which its report does not back), the
  other forges everything derivable from the commitment (the node's committed digests as
  "recomputed", which in exact mode coincide with an honest recomputation's, and zero
  distances under every tensor name of the training state, its on-chain digests hash
  consistent with that), so only the per-step losses, which nothing but running the segment
  yields, give it away;
- a rogue treasurer: the deployer grants TREASURER_ROLE on the vault to an outside account,
  which drains escrow that JobMarket still books to an open job.

One honest contribution beside them has no findings; the honest whole job is in test_audit.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Market
from typer.testing import CliRunner

from node.daemon import NodeDaemon
from opentrain.chain.account import ChainAccount
from opentrain.chain.types import TOKEN, JobParams
from opentrain.chain.views import contribution_info
from opentrain.cli.demo import post_bounty
from opentrain.protocol.manifest import TraceManifest
from opentrain.protocol.presets import mlp_demo_spec
from opentrain.protocol.sampling import recomputed_digests_hash
from opentrain.spec import TrainingSpec
from verifier import audit_cli
from verifier.audit import Auditor, AuditReport, settlement_problem
from verifier.worker import RoundAggregator, VerifierWorker

PROOFS = "Merkle proofs in the verifier report verify"
LAZY = "verifier report holds what re-execution computes (not lazy)"
DIGESTS = "attested digests hash matches the report"
VAULT_BOOKS = "vault escrow equals the sum of every job's open escrow plus the canary pool"
STRAY_RELEASE = "every escrow release is a JobMarket refund in the same transaction"
ROLES = "only protocol contracts hold the vault's treasurer, locker and slasher roles"
DRAINED = 3 * TOKEN // 10


@dataclass
class Planted:
    market: Market
    auditor: Auditor
    job_id: int
    honest: int
    bad_proof: int
    lazy_empty: int
    lazy_echo: int
    rogue: ChainAccount
    before_drain: AuditReport


def _names(report: AuditReport) -> set[tuple[str, str]]:
    return {(c.subject, c.name) for c in report.findings}


def _doctored(report_json: bytes, index: int) -> bytes:
    """The honest report with one sibling of checkpoint ``index``'s proof altered."""
    doc = json.loads(report_json)
    sibling = doc["proofs"][str(index)][0]
    doc["proofs"][str(index)][0] = sibling[:-1] + ("0" if sibling[-1] != "0" else "1")
    return json.dumps(doc).encode()


def _lazy_report(
    market: Market, contribution_id: int, echo: bool, tensor_names: tuple[str, ...] = ()
) -> bytes:
    """What a verifier publishes when it attests pass without training: the parts it can get
    from public data cheaply (sampled segments, Merkle proofs from the manifest), and either no
    checks at all or the node's committed digests echoed as its "recomputation"."""
    chain = market.chain
    info = contribution_info(chain, contribution_id)
    manifest = TraceManifest.from_json(market.store.get_bytes(info.manifest_cid))
    sampled = [int(i) for i in chain.settlement.functions.sampledSegments(contribution_id).call()]
    tree = manifest.trace_tree()
    used = sorted({0, *sampled, *(j + 1 for j in sampled)})
    checks: list[dict[str, Any]] = []
    if echo:
        for index, end in [(-1, 0), *((j, j + 1) for j in sampled)]:
            committed = manifest.digests[end].hex()
            checks.append(
                {
                    "index": index,
                    "passed": True,
                    "reason": "digests equal",
                    "claimed_sha256": committed,
                    "recomputed_sha256": committed,
                    "max_relative_distance": 0.0,
                    "distances": {name: 0.0 for name in tensor_names} if index >= 0 else {},
                    "seconds": 0.0,
                }
            )
    doc = {
        "version": 1,
        "contribution_id": contribution_id,
        "job_id": info.job_id,
        "round": info.round,
        "slot": info.slot,
        "sampled_segments": sampled,
        "passed": True,
        "reason": "all sampled segments re-executed to their committed checkpoints",
        "checks": checks,
        "proofs": {str(i): ["0x" + p.hex() for p in tree.proof(i)] for i in used},
        "seconds": 0.0,
    }
    return json.dumps(doc).encode()


def _committed_hash(market: Market, contribution_id: int) -> bytes:
    """The digests hash a lazy verifier can compute without work: the node's committed
    digests at the end of each sampled segment."""
    chain = market.chain
    info = contribution_info(chain, contribution_id)
    manifest = TraceManifest.from_json(market.store.get_bytes(info.manifest_cid))
    sampled = [int(i) for i in chain.settlement.functions.sampledSegments(contribution_id).call()]
    return recomputed_digests_hash([manifest.digests[j + 1] for j in sampled])


@pytest.fixture(scope="module")
def planted(shared_market: Market) -> Planted:
    m = shared_market
    chain = m.chain
    sponsor, node, verifier, rogue = (m.new_account() for _ in range(4))
    node.stake(400 * TOKEN)  # four claims open at once
    verifier.stake(300 * TOKEN)
    verifier.register_verifier()  # the only verifier: drawn for every contribution
    # short slots (4 segments of 3 steps): the faults do not depend on how long training is
    training = TrainingSpec(inner_steps=12, segment_steps=3, lr=5e-3, outer_momentum=0.5)
    spec = mlp_demo_spec(rounds=1, slots_per_round=4, training=training)
    job_id = post_bounty(sponsor, m.store, spec)
    daemon = NodeDaemon(node, m.store, m.home / "node")
    ids = [daemon.run_once() for _ in range(4)]
    assert all(i is not None for i in ids)
    honest, bad_proof, lazy_empty, lazy_echo = (int(i) for i in ids if i is not None)
    chain.mine(1)
    worker = VerifierWorker(verifier, m.store)
    for cid in (honest, bad_proof, lazy_empty, lazy_echo):
        assert worker.ensure_seed(cid)

    names = tuple(worker.verify_and_attest(honest).checks[1].distances)
    report = worker.verify(bad_proof)
    assert report.passed
    doctored = _doctored(report.to_json(), report.sampled_segments[0])
    verifier.attest(bad_proof, True, m.store.put_bytes(doctored), report.digests_hash)
    empty = _lazy_report(m, lazy_empty, echo=False)
    verifier.attest(lazy_empty, True, m.store.put_bytes(empty), _committed_hash(m, lazy_empty))
    forged = _lazy_report(m, lazy_echo, echo=True, tensor_names=names)
    verifier.attest(lazy_echo, True, m.store.put_bytes(forged), _committed_hash(m, lazy_echo))
    chain.advance(int(chain.settlement.functions.challengeWindow().call()) + 1)
    for cid in (honest, bad_proof, lazy_empty, lazy_echo):
        m.admin.finalize(cid)
    RoundAggregator(verifier, m.store).aggregate_and_post(job_id, 0)

    # honest money moves around it: a job cancelled and refunded, and one left open
    cancelled = post_bounty(sponsor, m.store, spec)
    sponsor.cancel_job(cancelled)
    sponsor.refund(cancelled)
    post_bounty(sponsor, m.store, spec)

    auditor = Auditor(chain, m.store)
    before_drain = auditor.accounting(job_id)

    stakes = chain.stakes.functions
    m.admin.send(stakes.grantRole(stakes.TREASURER_ROLE().call(), rogue.address), "grant rogue")
    rogue.send(stakes.releaseEscrow(rogue.address, DRAINED), "drain escrow")
    assert rogue.balance() == 1_000 * TOKEN + DRAINED
    return Planted(
        m, auditor, job_id, honest, bad_proof, lazy_empty, lazy_echo, rogue, before_drain
    )


def test_an_honest_contribution_has_no_findings(planted: Planted) -> None:
    report = planted.auditor.contribution(planted.honest)
    assert report.findings == []
    names = {c.name for c in report.checks}
    assert {PROOFS, LAZY, "checkpoint 0 is G_r with fresh optimizer state"} <= names


def test_a_wrong_merkle_proof_is_found_and_nothing_else(planted: Planted) -> None:
    report = planted.auditor.contribution(planted.bad_proof)
    subject = f"contribution {planted.bad_proof}"
    assert _names(report) == {(subject, PROOFS)}
    assert "do not verify" in report.findings[0].detail
    reexecuted = [c for c in report.checks if "re-executes" in c.name]
    assert reexecuted and all(c.ok for c in reexecuted)


@pytest.mark.parametrize("which", ["lazy_empty", "lazy_echo"])
def test_a_lazy_report_is_found(planted: Planted, which: str) -> None:
    contribution_id = getattr(planted, which)
    report = planted.auditor.contribution(contribution_id)
    subject = f"contribution {contribution_id}"
    detail = next(c.detail for c in report.findings if c.name == LAZY)
    if which == "lazy_empty":  # and its on-chain hash commits to digests it never recomputed
        assert _names(report) == {(subject, LAZY), (subject, DIGESTS)}
        assert "no record" in detail
        digests = next(c.detail for c in report.findings if c.name == DIGESTS)
        assert "0 of" in digests
    else:
        # digest and distances are what re-execution gives: only the losses give it away
        assert _names(report) == {(subject, LAZY)}
        assert "per-step losses" in detail and "differs" not in detail


def test_a_drained_vault_is_found(planted: Planted) -> None:
    assert planted.before_drain.findings == []
    assert len(planted.before_drain.checks) == 7
    report = planted.auditor.accounting(planted.job_id)
    vault = "vault (StakeRegistry)"
    assert _names(report) == {(vault, VAULT_BOOKS), (vault, STRAY_RELEASE), (vault, ROLES)}
    details = {c.name: c.detail for c in report.findings}
    assert planted.rogue.address in details[STRAY_RELEASE]
    assert planted.rogue.address in details[ROLES] and "TREASURER_ROLE" in details[ROLES]
    # the job's own books still balance: only the vault shows the theft
    job_checks = [c for c in report.checks if c.subject == f"job {planted.job_id}"]
    assert job_checks and all(c.ok for c in job_checks)


def test_the_job_audit_reports_every_planted_fault_and_the_cli_fails(
    planted: Planted, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(audit_cli, "_auditor", lambda: planted.auditor)
    result = CliRunner().invoke(
        audit_cli.audit_app, ["job", str(planted.job_id), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    doc = json.loads((tmp_path / "audit.json").read_text())
    found = {(c["subject"], c["name"]) for c in doc["checks"] if not c["ok"]}
    vault = "vault (StakeRegistry)"
    assert found == {
        (f"contribution {planted.bad_proof}", PROOFS),
        (f"contribution {planted.lazy_empty}", LAZY),
        (f"contribution {planted.lazy_empty}", DIGESTS),
        (f"contribution {planted.lazy_echo}", LAZY),
        (vault, VAULT_BOOKS),
        (vault, STRAY_RELEASE),
        (vault, ROLES),
    }
    assert doc["findings"] == len(found)


def _terms(fee: int = 10**17) -> JobParams:
    return JobParams(
        spec_digest=b"\x01" * 32,
        initial_model_digest=b"\x02" * 32,
        rounds=1,
        slots_per_round=1,
        num_segments=4,
        sample_count=2,
        reward_per_slot=10**18,
        verifier_fee=fee,
    )


@pytest.mark.parametrize(
    ("accepted", "reward", "fee", "withheld", "problem"),
    [
        (True, 10**18, 10**17, False, ""),
        (True, 10**18, 0, True, ""),  # contest of a fail ruled valid: the fee is withheld
        (False, 0, 0, False, ""),
        (True, 10**18, 0, False, "fee withheld without a contest ruled valid"),
        (True, 2 * 10**18, 10**17, False, "reward"),
        (True, 10**18, 2 * 10**17, False, "fee 200000000000000000"),
        (False, 10**18, 0, False, "rejected yet paid"),
        (False, 0, 10**17, True, "rejected yet paid"),
    ],
)
def test_settlement_terms(
    accepted: bool, reward: int, fee: int, withheld: bool, problem: str
) -> None:
    found = settlement_problem(accepted, reward, fee, _terms(), withheld)
    assert (found == "") if not problem else problem in found
