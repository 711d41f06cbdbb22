"""The node daemon as a GPU owner runs it: a separate process on a real JSON-RPC chain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Market, deploy_on

from node.daemon import NodeDaemon
from node.disputes import VerdictWatcher
from node.worker import SlotTrainer
from opentrain.chain.types import TOKEN, ChainError
from opentrain.chain.views import contribution_info
from opentrain.cli.demo import post_bounty
from opentrain.protocol.jobs import load_global_model, load_job
from opentrain.protocol.presets import mlp_demo_spec
from opentrain.spec import JobSpec, MLPSpec, TrainingSpec

OPENTRAIN = str(Path(sys.executable).parent / "opentrain")


def slow_spec() -> JobSpec:
    """One slot of 10 segments, each long enough (~0.3 s) to be killed in the middle of."""
    return mlp_demo_spec(
        rounds=1,
        slots_per_round=1,
        model=MLPSpec(hidden_dim=256, depth=3),
        training=TrainingSpec(inner_steps=100, segment_steps=10, batch_size=128, lr=5e-3),
    )


def _env(market: Market, home: Path, key: str) -> dict[str, str]:
    market.chain.deployment.save(home / "deployment.json")
    return {
        **os.environ,
        "OPENTRAIN_RPC_URL": market.chain.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
        "OPENTRAIN_HOME": str(home),
        "OPENTRAIN_PRIVATE_KEY": key,
        "OMP_NUM_THREADS": "1",
    }


def _run_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENTRAIN, "node", "run", "--once"], env=env, capture_output=True, text=True, timeout=300
    )


def test_kill_9_mid_slot_then_rerun_resumes_to_the_same_output(
    hardhat_rpc: str, tmp_path: Path
) -> None:
    market = deploy_on(hardhat_rpc, tmp_path)
    sponsor, node = market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    spec = slow_spec()
    job_id = post_bounty(sponsor, market.store, spec)
    env = _env(market, tmp_path, "0x" + node.signer.key.hex())
    folder = tmp_path / "node" / f"job-{job_id}" / "round-0" / "slot-0"

    proc = subprocess.Popen(
        [OPENTRAIN, "node", "run", "--once"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (folder / "ckpt-4.safetensors").exists():
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "training never reached segment 4"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(folder.glob("ckpt-*.safetensors")))
    assert done_before < spec.training.num_segments + 1, "killed too late to test a resume"
    assert not list(folder.glob("*.tmp")) or True  # a torn temp file is ignored on resume

    second = _run_once(env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "submitted contribution 1" in second.stdout

    info = contribution_info(market.chain, 1)
    reference = SlotTrainer(market.store, tmp_path / "reference")
    job = load_job(market.chain, market.store, job_id)
    g0, _ = load_global_model(market.chain, market.store, job, 0)
    kept_seal = (folder / "seal").read_bytes()  # written before the first segment
    uninterrupted = reference.train(
        job, g0, 0, 0, claimant=node.address, seal_fn=lambda *_: kept_seal
    )
    assert info.output_digest == uninterrupted.output_digest
    assert info.trace_root == uninterrupted.trace_root  # the resume kept its seal

    claims = market.chain.market.events.SlotClaimed.get_logs(from_block=0)
    submissions = market.chain.market.events.ContributionSubmitted.get_logs(from_block=0)
    assert len([c for c in claims if c["args"]["jobId"] == job_id]) == 1
    assert len([s for s in submissions if s["args"]["jobId"] == job_id]) == 1

    third = _run_once(env)  # the landed submission is recognised: nothing is sent again
    assert third.returncode == 0 and "no work available" in third.stdout


def test_unrunnable_jobs_are_skipped_with_a_reason_and_never_claimed(
    hardhat_rpc: str, tmp_path: Path
) -> None:
    market = deploy_on(hardhat_rpc, tmp_path)
    sponsor, node = market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    huge = mlp_demo_spec(rounds=1, slots_per_round=1, model=MLPSpec(hidden_dim=4096, depth=8))
    job_id = post_bounty(sponsor, market.store, huge)
    daemon = NodeDaemon(node, market.store, tmp_path / "node", memory_limit=64 * 2**20)
    offers = daemon.offers()
    assert [(o.job_id, o.runnable) for o in offers] == [(job_id, False)]
    assert "GiB" in offers[0].reason
    assert daemon.run_once() is None
    _, _, status, _ = market.chain.market.functions.slotState(job_id, 0, 0).call()
    assert status == 0  # still open: never claimed


@pytest.mark.parametrize(
    "command", ["init", "stake", "unstake", "withdraw", "status", "jobs", "run"]
)
def test_every_node_command_has_help_with_an_example(command: str) -> None:
    result = subprocess.run([OPENTRAIN, "node", command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "Example: opentrain node" in result.stdout


class _FakeAftercare:
    """Records which thread steps it; the second pass fails like an unreachable RPC."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def step(self) -> int:
        self.threads.append(threading.current_thread().name)
        if len(self.threads) == 2:
            raise ChainError("contest(3) failed: RPC http://127.0.0.1:8545 unreachable")
        return 0


def test_the_verdict_watcher_steps_aftercare_in_its_own_thread_and_survives_errors() -> None:
    fake = _FakeAftercare()
    with VerdictWatcher(fake, interval=0.01) as watcher:  # type: ignore[arg-type]
        deadline = time.monotonic() + 30
        while len(fake.threads) < 4:  # the caller is free meanwhile (it trains)
            assert time.monotonic() < deadline, "the watcher stopped stepping"
            time.sleep(0.01)
    assert set(fake.threads) == {"verdict-watcher"}
    assert watcher.errors == 1 and watcher.passes >= 4
    stopped = len(fake.threads)
    time.sleep(0.1)
    assert len(fake.threads) == stopped  # leaving the block stops it


def test_the_run_loop_watches_verdicts_while_a_slot_trains(tmp_path: Path) -> None:
    """``NodeDaemon.run`` keeps its watcher stepping while ``run_once`` is busy training."""
    fake = _FakeAftercare()
    during: list[int] = []
    daemon = NodeDaemon.__new__(NodeDaemon)  # no chain needed: only the loop is exercised
    daemon.aftercare = fake  # type: ignore[assignment]

    def train_one_slot(progress: object = None) -> int:
        before = len(fake.threads)
        time.sleep(0.5)  # "training"
        during.append(len(fake.threads) - before)
        return 1

    daemon.run_once = train_one_slot  # type: ignore[method-assign]
    daemon.run(poll_seconds=0.01, watch_seconds=0.02, should_stop=lambda: len(during) >= 2)
    assert len(during) == 2 and all(n >= 3 for n in during)
