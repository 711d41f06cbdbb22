"""``opentrain node run --nproc N``: a slot trained by several processes (torchrun, DDP over
gloo on the CPU) is submitted and accepted by the verifier in tolerance mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from conftest import Market

from node.daemon import NodeDaemon
from node.ddp import FileBlobs, export_job_data
from node.worker import SlotTrainer
from opentrain.chain.types import TOKEN
from opentrain.chain.views import contribution_info
from opentrain.cli.demo import post_bounty
from opentrain.content.errors import ContentError
from opentrain.protocol.binding import binding_for
from opentrain.protocol.jobs import load_global_model, load_job
from opentrain.protocol.presets import DEMO_TOLERANCES, mlp_demo_spec, small_gpt_spec
from opentrain.protocol.segment import check_segment, group_maxima, relative_l2
from opentrain.spec import CorpusDataSpec, JobSpec, TrainingSpec, VerificationSpec
from opentrain.training.checkpoint import decode_checkpoint, state_tensors
from opentrain.training.corpus import load_corpus
from opentrain.training.data import ensure_job_data
from verifier.worker import VerifierWorker


def ddp_spec(mode: Literal["exact", "tolerance"] = "tolerance", micro_batches: int = 1) -> JobSpec:
    """One slot of 4 segments x 10 steps, batch 32: 16 examples per rank."""
    return mlp_demo_spec(
        rounds=1,
        slots_per_round=1,
        training=TrainingSpec(
            lr=5e-3, outer_lr=0.7, outer_momentum=0.5, micro_batches=micro_batches
        ),
        verification=VerificationSpec(mode=mode, tolerances=DEMO_TOLERANCES, samples=2),
    )


def test_two_processes_train_a_slot_that_the_verifier_accepts(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # 2 workers on a 2-core machine
    sponsor, node, verifier = market.new_account(), market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    verifier.stake(200 * TOKEN)
    verifier.register_verifier()
    spec = ddp_spec()
    job_id = post_bounty(sponsor, market.store, spec)
    total = spec.training.num_segments

    seen: list[int] = []
    daemon = NodeDaemon(node, market.store, market.home / "node", nproc=2)
    assert daemon.run_once(progress=lambda done, _: seen.append(done)) == 1
    assert seen == list(range(1, total + 1))  # published one by one as the workers wrote them

    folder = market.home / "node" / f"job-{job_id}" / "round-0" / "slot-0"
    markers = [json.loads(p.read_text()) for p in sorted((folder / "ddp").glob("rank-*.json"))]
    assert [(m["rank"], m["world_size"], m["backend"], m["segments"]) for m in markers] == [
        (0, 2, "gloo", total),
        (1, 2, "gloo", total),
    ]
    assert len({m["pid"] for m in markers}) == 2 and all(m["threads"] == 1 for m in markers)

    chain = market.chain
    chain.mine(2)
    checker = VerifierWorker(verifier, market.store)
    assert checker.ensure_seed(1)
    report = checker.verify(1)
    assert report.passed, report.reason
    for check in report.checks[1:]:  # re-executed in one process: other bits, well within
        assert check.recomputed_sha256 != check.claimed_sha256
        for group, worst in group_maxima(check.distances).items():
            assert worst < DEMO_TOLERANCES.model_dump()[group] / 10

    # the whole slot against one process: not bitwise equal, within tolerance
    job = load_job(chain, market.store, job_id)
    g0, _ = load_global_model(chain, market.store, job, 0)
    single = SlotTrainer(market.store, market.home / "single").train(
        job, g0, 0, 0, claimant=node.address
    )
    info = contribution_info(chain, 1)
    assert info.output_digest != single.output_digest
    ours = state_tensors(decode_checkpoint(spec, market.store.get_bytes(info.output_cid)))
    theirs = state_tensors(decode_checkpoint(spec, market.store.get_bytes(single.output_cid)))
    distances = {n: relative_l2(ours[n], theirs[n]) for n in ours}
    for group, worst in group_maxima(distances).items():
        assert worst < DEMO_TOLERANCES.model_dump()[group]

    # exact mode rejects these bits; they are exactly 1 process with 2 micro-batches (each
    # rank's share is one slice, DDP averages), which exact mode accepts
    ckpts = [(folder / f"ckpt-{i}.safetensors").read_bytes() for i in range(total + 1)]
    bound = binding_for(job, node.address)
    assert not check_segment(ddp_spec("exact"), ckpts[1], ckpts[2], 1, 0, 0, binding=bound).passed
    exact2 = ddp_spec("exact", micro_batches=2)
    assert check_segment(exact2, ckpts[1], ckpts[2], 1, 0, 0, binding=bound).passed

    # a restart finds the checkpoints on disk: the workers resume from the last one
    for i in (3, 4):
        (folder / f"ckpt-{i}.safetensors").unlink()
    resumed = SlotTrainer(market.store, market.home / "node", nproc=2).train(
        job, g0, 0, 0, claimant=node.address
    )
    assert resumed.output_digest == info.output_digest
    markers = [json.loads(p.read_text()) for p in (folder / "ddp").glob("rank-*.json")]
    assert sorted((m["rank"], m["first_checkpoint"]) for m in markers) == [(0, 2), (1, 2)]


def test_jobs_several_processes_must_not_train_are_refused_before_claiming(market: Market) -> None:
    sponsor, node = market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    job_id = post_bounty(sponsor, market.store, ddp_spec())  # batch 32
    daemon = NodeDaemon(node, market.store, market.home / "node", nproc=3)
    offers = daemon.offers()
    assert [(o.job_id, o.runnable) for o in offers] == [(job_id, False)]
    assert offers[0].reason == "--nproc 3: batch_size 32 is not divisible by 3 processes"
    assert daemon.run_once() is None
    _, _, status, _ = market.chain.market.functions.slotState(job_id, 0, 0).call()
    assert status == 0  # still open: never claimed
    trainer = SlotTrainer(market.store, market.home / "t", nproc=2)
    assert "not divisible by micro_batches 32" in trainer.refusal(ddp_spec(micro_batches=32))
    assert "exact mode" in trainer.refusal(ddp_spec("exact"))
    assert SlotTrainer(market.store, market.home / "t").refusal(ddp_spec("exact")) == ""


def test_corpus_data_reaches_the_workers_as_checked_files(market: Market, tmp_path: Path) -> None:
    spec = small_gpt_spec()
    assert isinstance(spec.data, CorpusDataSpec)
    ensure_job_data(spec, market.store)
    folder = export_job_data(spec, market.store, tmp_path / "data")
    assert folder is not None
    loaded = load_corpus(spec.data, FileBlobs(folder))
    direct = load_corpus(spec.data, market.store)
    assert all(a.equal(b) for a, b in zip(loaded.shards, direct.shards, strict=True))
    assert export_job_data(ddp_spec(), market.store, tmp_path / "none") is None

    shard = folder / direct.manifest.shards[0].cid
    shard.write_bytes(b"x" + shard.read_bytes()[1:])
    with pytest.raises(ContentError, match="sha256"):
        load_corpus(spec.data, FileBlobs(folder))
