"""Local retention: a node keeps a slot's checkpoints until its contribution is final and its
dispute window has closed, then prunes them (``--keep-checkpoints`` keeps them); the disk
each slot uses is what ``node status`` prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import Market, deploy_on

from node.daemon import NodeDaemon
from node.retention import slot_folder, slot_usage
from opentrain.chain.types import TOKEN, ContributionStatus
from opentrain.chain.views import contribution_info, verification_info
from opentrain.cli.demo import post_bounty
from opentrain.protocol.presets import mlp_demo_spec
from verifier.daemon import VerifierDaemon

STAKE = 200 * TOKEN


def test_settled_slots_are_pruned_unless_kept(market: Market) -> None:
    spec = mlp_demo_spec(rounds=1, slots_per_round=2)
    sponsor = market.new_account()
    verifiers = [market.new_account() for _ in range(2)]
    for v in verifiers:
        v.stake(STAKE)
        v.register_verifier()
    job_id = post_bounty(sponsor, market.store, spec)
    daemons: dict[str, NodeDaemon] = {}
    for name, keep in (("pruning", False), ("keeping", True)):
        account = market.new_account()
        account.stake(STAKE)
        daemons[name] = NodeDaemon(account, market.store, market.home / name, keep_checkpoints=keep)
    contributions = {name: d.run_once() for name, d in daemons.items()}
    folders = {
        name: slot_folder(market.home / name, job_id, 0, contribution_info(market.chain, c).slot)
        for name, c in contributions.items()
        if c is not None
    }
    checkpoints = spec.training.num_segments + 1
    for name, d in daemons.items():
        [usage] = slot_usage(market.home / name)
        assert (usage.job_id, usage.round, usage.path) == (job_id, 0, folders[name])
        assert usage.checkpoints == checkpoints and usage.bytes > 0
        assert d.aftercare.step() == 0 and folders[name].is_dir()  # submitted, not final

    watchers = [
        VerifierDaemon(v, market.store, market.home / f"v{i}.json") for i, v in enumerate(verifiers)
    ]
    ids = [c for c in contributions.values() if c is not None]
    window = int(market.chain.settlement.functions.challengeWindow().call())
    for _ in range(80):
        for w in watchers:
            w.step()
        for d in daemons.values():
            d.aftercare.step()
        statuses = [contribution_info(market.chain, c).status for c in ids]
        if not folders["pruning"].exists() and ContributionStatus.SUBMITTED not in statuses:
            break
        # kept until settled (accepted on chain only once the challenge window has closed)
        assert statuses[0] is not ContributionStatus.SUBMITTED or folders["pruning"].is_dir()
        market.chain.advance(window // 5)  # seconds: verdicts, then the challenge window
    assert statuses == [ContributionStatus.ACCEPTED] * 2
    assert not folders["pruning"].exists(), "settled slot was never pruned"
    deadline = verification_info(market.chain, ids[0]).challenge_deadline
    assert market.chain.now() > deadline
    assert daemons["pruning"].aftercare.pruned_bytes > 0
    assert slot_usage(market.home / "pruning") == []
    [kept] = slot_usage(market.home / "keeping")
    assert kept.checkpoints == checkpoints and daemons["keeping"].aftercare.pruned_bytes == 0
    # the output stays available from the content store after the local copy is gone
    out = contribution_info(market.chain, contributions["pruning"] or 0).output_cid
    assert market.store.has(out)


def test_node_status_prints_disk_use_per_slot(hardhat_rpc: str, tmp_path: Path) -> None:
    market = deploy_on(hardhat_rpc, tmp_path)
    node = market.new_account()
    market.chain.deployment.save(tmp_path / "deployment.json")
    for slot, sizes in ((0, (3 << 20, 3 << 20)), (1, (1 << 20,))):
        folder = slot_folder(tmp_path / "node", 7, 2, slot)
        folder.mkdir(parents=True)
        for i, size in enumerate(sizes):
            (folder / f"ckpt-{i}.safetensors").write_bytes(b"\0" * size)
    env = {
        **os.environ,
        "OPENTRAIN_RPC_URL": market.chain.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
        "OPENTRAIN_HOME": str(tmp_path),
        "OPENTRAIN_PRIVATE_KEY": "0x" + node.signer.key.hex(),
        "COLUMNS": "200",
    }
    opentrain = str(Path(sys.executable).parent / "opentrain")
    done = subprocess.run(
        [opentrain, "node", "status"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    numbers = [[c for c in r if c.replace(".", "").isdigit()] for r in rows]
    assert ["7", "2", "0", "2", "6.0"] in numbers and ["7", "2", "1", "1", "1.0"] in numbers
    assert any(
        "total" in line and "3" in line and "7.0" in line for line in done.stdout.splitlines()
    )
