"""A market used only through the ``opentrain`` command, as a person would: no Python import of
the project anywhere in this file, every step a subprocess.

``market up --detach`` (a Hardhat node, deployment, funding, gateway, API with its indexer, two
node daemons, one verifier daemon: separate processes), then as the sponsor ``job init``,
``job post``, ``job status --watch`` until the job completes, ``job model``, ``job generate``;
``node earnings`` for each node and the verifier (the ledger agrees with the chain and with the
API's page), ``node withdraw``, ``audit job`` with no findings, ``market down``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

OPENTRAIN = str(Path(sys.executable).parent / "opentrain")
REPO = Path(__file__).resolve().parent.parent
TOKEN = 10**18

pytestmark = pytest.mark.skipif(
    not (REPO / "node_modules" / ".bin" / "hardhat").exists(),
    reason="node_modules absent: run `make setup` to get a Hardhat node",
)


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENTRAIN_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = "1"
    return env


def ot(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [OPENTRAIN, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    print(f"$ opentrain {' '.join(args)}  -> {done.returncode}\n{done.stdout}{done.stderr}")
    return done


def role_env(home: Path, role: str, cwd: Path) -> dict[str, str]:
    done = ot("market", "env", role, "--home", str(home), "--json", env=_base_env(), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return {**_base_env(), **json.loads(done.stdout)}


def get_json(url: str, timeout: float = 10) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


def test_a_market_of_separate_processes_runs_a_job_from_the_command_line(tmp_path: Path) -> None:
    began = time.monotonic()
    home = tmp_path / "market"
    base = _base_env()
    up = ot(
        "market", "up", "--detach", "--nodes", "2", "--verifiers", "1", "--home", str(home),
        "--port", "0", "--rpc-port", "0", "--gateway-port", "0",
        env=base, cwd=tmp_path, timeout=900,
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        assert "dashboard" in up.stdout
        sponsor = role_env(home, "sponsor", tmp_path)
        api = sponsor["OPENTRAIN_API_URL"]

        init = ot("job", "init", "--model", "gpt", "--size", "tiny", "--no-probe", "-o",
                  "spec.json", env=sponsor, cwd=tmp_path)  # fmt: skip
        assert init.returncode == 0, init.stderr
        post = ot("job", "post", "spec.json", "--yes", env=sponsor, cwd=tmp_path)
        assert post.returncode == 0, post.stderr
        job = re.search(r"job (\d+) posted", post.stdout)
        assert job is not None, post.stdout
        job_id = job.group(1)
        assert f"{api}/ui/jobs/{job_id}" in post.stdout

        watch = ot("job", "status", job_id, "--watch", "--interval", "2", "--timeout", "900",
                   env=sponsor, cwd=tmp_path, timeout=960)  # fmt: skip
        assert watch.returncode == 0, watch.stderr
        assert f"job {job_id} completed" in watch.stdout

        model = ot("job", "model", job_id, "-o", "model.safetensors", env=sponsor, cwd=tmp_path)
        assert model.returncode == 0, model.stderr
        assert (
            "matches the chain" in model.stdout and (tmp_path / "model.safetensors").stat().st_size
        )
        text = ot("job", "generate", job_id, "--prompt", "The ", "--tokens", "40",
                  env=sponsor, cwd=tmp_path)  # fmt: skip
        assert text.returncode == 0, text.stderr
        assert text.stdout.startswith("The ")

        credited = {}
        for role in ("node-1", "node-2", "verifier-1"):
            env = role_env(home, role, tmp_path)
            earned = ot("node", "earnings", "--json", env=env, cwd=tmp_path)
            assert earned.returncode == 0, earned.stderr
            ledger = json.loads(earned.stdout)
            assert ledger["matches_chain"] is True
            credited[role] = int(ledger["credited"])
            # the API's page says the same, once its indexer has caught up
            deadline = time.monotonic() + 120
            while True:
                page = get_json(f"{api}/accounts/{ledger['address']}/earnings")
                if page["credited"] == ledger["credited"] or time.monotonic() > deadline:
                    break
                time.sleep(2)
            assert page["credited"] == ledger["credited"] and page["matches_chain"] is True
            assert page["total"] == len(ledger["entries"])
            ot("node", "earnings", env=env, cwd=tmp_path)  # the table, printed for the log
        spec = json.loads((tmp_path / "spec.json").read_text())
        slots = spec["rounds"] * spec["slots_per_round"]
        assert credited["node-1"] + credited["node-2"] == slots * spec["reward"]["reward_per_slot"]
        assert credited["verifier-1"] == slots * spec["reward"]["verifier_fee"]

        rich = max(("node-1", "node-2"), key=lambda r: credited[r])
        env = role_env(home, rich, tmp_path)
        assert ot("node", "withdraw", env=env, cwd=tmp_path).returncode == 0
        after = json.loads(ot("node", "earnings", "--json", env=env, cwd=tmp_path).stdout)
        assert after["matches_chain"] is True and int(after["withdrawn"]) == credited[rich]
        assert after["entries"][-1]["kind"] == "withdrawal"

        audit = ot("audit", "job", job_id, "--out", str(tmp_path / "audit"),
                   env=sponsor, cwd=tmp_path, timeout=600)  # fmt: skip
        assert audit.returncode == 0, audit.stdout + audit.stderr
        missing = ot("audit", "contribution", "99999", env=sponsor, cwd=tmp_path)
        assert missing.returncode == 1 and "does not exist" in missing.stderr
    finally:
        down = ot("market", "down", "--home", str(home), env=base, cwd=tmp_path, timeout=120)
        print(f"CLI-only market test: {time.monotonic() - began:.0f} s wall time")
    assert down.returncode == 0, down.stderr
    status = ot("market", "status", "--home", str(home), env=base, cwd=tmp_path)
    assert status.returncode == 1 and "stopped" in status.stdout
