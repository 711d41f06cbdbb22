"""Work bound to its worker (issue 14): every checkpoint carries its claimant, job and spec digest
in its safetensors metadata (so in its sha256 and Merkle leaf), the binding seeds the batch order,
and verifier and auditor reject a trace bound to anyone else, replayed or relabelled."""

from __future__ import annotations

import dataclasses
import json
import struct

import pytest
from conftest import Market

from node.worker import SlotTrainer
from opentrain.chain.account import ChainAccount
from opentrain.chain.types import TOKEN, ContributionStatus
from opentrain.chain.views import contribution_info
from opentrain.content.store import ContentStore
from opentrain.protocol.binding import binding_for
from opentrain.protocol.jobs import job_params, load_global_model, load_job
from opentrain.protocol.manifest import CheckpointRef
from opentrain.protocol.presets import mlp_demo_spec
from opentrain.protocol.segment import check_initial_checkpoint, check_segment
from opentrain.spec import JobSpec, canonical_json, spec_digest
from opentrain.training.binding import Binding, BindingError
from opentrain.training.checkpoint import (
    CheckpointError,
    decode_checkpoint,
    digest,
    encode_checkpoint,
    encode_params,
    fresh_state,
    read_binding,
)
from opentrain.training.data import batch_seed, ensure_job_data
from opentrain.training.models import build_model, model_params
from opentrain.training.train import train_segment
from verifier.audit.auditor import Auditor
from verifier.worker import VerifierWorker

A = "0x" + "aa" * 20
B = "0x" + "bb" * 20


def _spec() -> JobSpec:
    return mlp_demo_spec(rounds=1, slots_per_round=2)


def _binding(spec: JobSpec, claimant: str, job_id: int = 1) -> Binding:
    return Binding(claimant, job_id, spec_digest(spec).hex())


def _trace(spec: JobSpec, binding: Binding | None, segments: int = 2) -> list[bytes]:
    state = fresh_state(spec, model_params(build_model(spec.model)), binding)
    out = [encode_checkpoint(state, 0, 0)]
    for _ in range(segments):
        train_segment(spec, state, 0, 0)
        out.append(encode_checkpoint(state, 0, 0))
    return out


def _relabel(spec: JobSpec, raw: bytes, binding: Binding, slot: int = 0) -> bytes:
    state = decode_checkpoint(spec, raw, 0, slot)
    state.binding = binding
    return encode_checkpoint(state, 0, slot)


def _with_metadata(raw: bytes, metadata: dict[str, str]) -> bytes:
    """The same tensors with a hand-written ``__metadata__`` (safetensors header rewritten)."""
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + size :]


def test_the_binding_is_in_the_bytes_and_survives_a_round_trip() -> None:
    spec = _spec()
    bound = _binding(spec, A)
    trace = _trace(spec, bound, segments=1)
    assert read_binding(trace[0]) == bound and read_binding(trace[1]) == bound
    assert json.dumps(bound.to_json()).encode() in trace[0][:4096]  # one metadata entry
    again = decode_checkpoint(spec, trace[1], 0, 0, binding=bound)
    assert again.binding == bound and encode_checkpoint(again, 0, 0) == trace[1]
    unbound = _trace(spec, None, segments=0)[0]
    assert read_binding(unbound) is None
    # every part of the binding changes checkpoint 0's digest (so its Merkle leaf)
    others = [_binding(spec, B), _binding(spec, A, job_id=2), Binding(A, 1, "00" * 32)]
    zeros = {digest(_trace(spec, b, segments=0)[0]) for b in [bound, None, *others]}
    assert len(zeros) == 5


def test_a_checkpoint_bound_to_someone_else_or_unbound_is_refused() -> None:
    spec = _spec()
    bound_a, bound_b = _binding(spec, A), _binding(spec, B)
    raw = _trace(spec, bound_a, segments=0)[0]
    with pytest.raises(CheckpointError, match="bound to claimant 0xaaaa.*expected claimant 0xbbbb"):
        decode_checkpoint(spec, raw, binding=bound_b)
    with pytest.raises(CheckpointError, match="expected unbound"):
        decode_checkpoint(spec, raw, binding=None)
    with pytest.raises(CheckpointError, match="bound to no one"):
        decode_checkpoint(spec, _trace(spec, None, segments=0)[0], binding=bound_a)
    # metadata other than the one canonical binding entry is refused
    doc = json.loads(bound_a.to_json())
    for bad in (
        {"opentrain.binding": bound_a.to_json(), "note": "x"},
        {"opentrain.binding": json.dumps(doc)},  # not the canonical spacing
        {"opentrain.binding": json.dumps({**doc, "job_id": 1.0}, separators=(",", ":"))},
        {"opentrain.binding": bound_a.to_json().replace("0xaa", "0xAA")},
        {"opentrain.binding": "{"},
        {"other": "1"},
    ):
        with pytest.raises(CheckpointError):
            decode_checkpoint(spec, _with_metadata(raw, bad))
    with pytest.raises(BindingError):
        Binding("0x1234", 1, "00" * 32)


def test_the_binding_seeds_the_batch_order() -> None:
    spec = _spec()
    seeds = {
        batch_seed(spec, 0, 0, 3, b)
        for b in (None, _binding(spec, A), _binding(spec, B), _binding(spec, A, job_id=2))
    }
    assert len(seeds) == 4


def test_replayed_or_relabelled_traces_fail_and_the_claimants_own_passes() -> None:
    spec = _spec()
    g0 = model_params(build_model(spec.model))
    bound_a, bound_b = _binding(spec, A), _binding(spec, B)
    theirs = _trace(spec, bound_a)
    # replayed as is: checkpoint 0 and every segment are bound to A
    first = check_initial_checkpoint(spec, g0, theirs[0], 0, 0, bound_b)
    assert not first.passed and "bound to claimant 0xaaaa" in first.reason
    replay = check_segment(spec, theirs[0], theirs[1], 0, 0, 0, binding=bound_b)
    assert not replay.passed and "bound to claimant 0xaaaa" in replay.reason
    # relabelled to B: checkpoint 0 is then right, but B's batches lead elsewhere
    relabelled = [_relabel(spec, raw, bound_b) for raw in theirs]
    assert check_initial_checkpoint(spec, g0, relabelled[0], 0, 0, bound_b).passed
    for j in range(2):
        lifted = check_segment(spec, relabelled[j], relabelled[j + 1], j, 0, 0, binding=bound_b)
        assert not lifted.passed and "digest differs" in lifted.reason
    # even in tolerance mode the lifted trace is far off: another batch order is no rounding
    loose = spec.model_copy(
        update={"verification": spec.verification.model_copy(update={"mode": "tolerance"})}
    )
    lifted = check_segment(loose, relabelled[1], relabelled[2], 1, 0, 0, binding=bound_b)
    assert not lifted.passed and lifted.max_relative_distance > 1e-3
    # B's own work passes
    own = _trace(spec, bound_b)
    assert check_initial_checkpoint(spec, g0, own[0], 0, 0, bound_b).passed
    assert all(
        check_segment(spec, own[j], own[j + 1], j, 0, 0, binding=bound_b).passed for j in (0, 1)
    )


def _post(sponsor: ChainAccount, store: ContentStore, spec: JobSpec, claim_timeout: int) -> int:
    """``demo.post_bounty`` with a short claim timeout, so a claim can expire in a test."""
    ensure_job_data(spec, store)
    spec_cid = store.put_bytes(canonical_json(spec))
    g0 = encode_params(model_params(build_model(spec.model)))
    params = dataclasses.replace(job_params(spec, digest(g0)), claim_timeout=claim_timeout)
    return sponsor.create_job(params, spec_cid, store.put_bytes(g0))


def _settle(market: Market, contribution_id: int) -> None:
    market.chain.advance(market.chain.settlement.functions.challengeWindow().call() + 1)
    market.admin.finalize(contribution_id)


def test_a_node_submitting_another_nodes_published_trace_is_failed_and_slashed(
    market: Market,
) -> None:
    """Node A trains both slots and publishes every checkpoint, then lets its claims expire.
    Node B claims slot 0 and submits A's trace as is, and slot 1 with A's checkpoints relabelled
    to its own binding: both fail re-execution and B is slashed twice; the auditor agrees.
    An honest node then redoes slot 0 and is paid."""
    sponsor, node_a, node_b, honest = (market.new_account() for _ in range(4))
    verifier_acct = market.new_account()
    for acct in (node_a, node_b, honest):
        acct.stake(200 * TOKEN)
    verifier_acct.stake(200 * TOKEN)
    verifier_acct.register_verifier()
    spec = _spec()
    job_id = _post(sponsor, market.store, spec, claim_timeout=20)
    job = load_job(market.chain, market.store, job_id)
    g0, _ = load_global_model(market.chain, market.store, job, 0)

    trainer_a = SlotTrainer(market.store, market.home / "a")
    published = {}
    for slot in (0, 1):
        node_a.claim_slot(job_id, 0, slot)
        published[slot] = trainer_a.train(job, g0, 0, slot, claimant=node_a.address)
    market.chain.advance(21)  # seconds: past both claims' deadlines
    for slot in (0, 1):
        node_b.expire_claim(job_id, 0, slot)
        node_b.claim_slot(job_id, 0, slot)

    # slot 0: A's trace as published; slot 1: A's checkpoints relabelled to B
    lifted = published[1].manifest
    relabelled = [
        _relabel(spec, market.store.get_bytes(ref.cid), binding_for(job, node_b.address), 1)
        for ref in lifted.checkpoints
    ]
    refs = tuple(
        CheckpointRef(index=i, cid=market.store.put_bytes(raw), sha256=digest(raw))
        for i, raw in enumerate(relabelled)
    )
    manifest = dataclasses.replace(lifted, checkpoints=refs)
    submissions = {
        0: (
            published[0].output_digest,
            published[0].trace_root,
            published[0].output_cid,
            published[0].manifest_cid,
        ),
        1: (
            refs[-1].sha256,
            manifest.trace_root,
            refs[-1].cid,
            market.store.put_bytes(manifest.to_json()),
        ),
    }
    contributions = {
        slot: node_b.submit_contribution(job_id, 0, slot, *args)
        for slot, args in submissions.items()
    }
    market.chain.mine(1)
    verifier = VerifierWorker(verifier_acct, market.store)
    reports = {}
    for slot, cid in contributions.items():
        assert verifier.ensure_seed(cid)
        reports[slot] = verifier.verify_and_attest(cid)
    assert not reports[0].passed
    assert reports[0].reason.startswith("segment -1: checkpoint 0: bound to claimant")
    assert not reports[1].passed and "digest differs" in reports[1].reason
    assert reports[1].checks[0].passed  # checkpoint 0 relabelled is right; training is not
    for cid in contributions.values():
        _settle(market, cid)
        assert contribution_info(market.chain, cid).status is ContributionStatus.REJECTED
    assert node_b.credits() == 0
    assert node_b.stake_of() == 0  # two locks of 100 slashed
    auditor = Auditor(market.chain, market.store)
    for cid in contributions.values():
        assert auditor.contribution(cid).findings == []

    # the honest redo of slot 0 passes and is paid
    honest.claim_slot(job_id, 0, 0)
    redo = SlotTrainer(market.store, market.home / "honest").train(
        job, g0, 0, 0, claimant=honest.address
    )
    assert redo.output_digest != published[0].output_digest  # its own batch order
    redo_id = honest.submit_contribution(
        job_id, 0, 0, redo.output_digest, redo.trace_root, redo.output_cid, redo.manifest_cid
    )
    market.chain.mine(1)
    assert verifier.ensure_seed(redo_id)
    report = verifier.verify_and_attest(redo_id)
    assert report.passed, report.reason
    _settle(market, redo_id)
    assert honest.credits() == spec.reward.reward_per_slot
    assert auditor.contribution(redo_id).findings == []
