"""``opentrain job`` (the sponsor's commands) and fast ``--help``: specs written and checked
offline, and posts the contract would refuse stopped before anything is sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import deploy_on

from opentrain.chain.types import TOKEN

OPENTRAIN = str(Path(sys.executable).parent / "opentrain")
REPO = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENTRAIN_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = "1"
    return {**env, **extra}


def ot(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENTRAIN, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_help_imports_no_heavy_module() -> None:
    """`opentrain … --help` must not pay for torch, web3, FastAPI or SQLAlchemy (under 0.5 s:
    bench/cli_startup.py measures it)."""
    probe = (
        "import sys\n"
        "import opentrain.cli.main as m\n"
        "for args in (['--help'], ['job', 'post', '--help'], ['node', 'earnings', '--help'],"
        " ['market', 'up', '--help'], ['audit', 'job', '--help'], ['store', 'export', '--help']):\n"
        "    sys.argv = ['opentrain', *args]\n"
        "    try:\n"
        "        m.app()\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), (args, e.code)\n"
        "heavy = ('torch', 'web3', 'fastapi', 'sqlalchemy', 'eth_account', 'httpx', 'pydantic')\n"
        "print(sorted(h for h in heavy if h in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "command", ["init", "validate", "post", "status", "model", "generate", "cancel", "refund"]
)
def test_every_job_command_has_help_with_an_example(command: str) -> None:
    done = ot("job", command, "--help", env=_env())
    assert done.returncode == 0
    assert "Example: opentrain job" in done.stdout


def test_init_writes_a_valid_spec_and_validate_lists_every_problem(tmp_path: Path) -> None:
    env = _env()
    made = ot(
        "job",
        "init",
        "--model",
        "mlp",
        "--size",
        "tiny",
        "--no-probe",
        "-o",
        "s.json",
        env=env,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    assert "verifier share" in made.stdout and "minimum node stake" in made.stdout
    assert ot("job", "validate", "s.json", env=env, cwd=tmp_path).returncode == 0
    again = ot("job", "init", "-o", "s.json", "--no-probe", env=env, cwd=tmp_path)
    assert again.returncode == 1 and again.stderr.startswith("error: s.json exists")

    spec = json.loads((tmp_path / "s.json").read_text())
    spec["rounds"] = 0
    spec["slots_per_round"] = "two"
    spec["extra"] = 1
    (tmp_path / "bad.json").write_text(json.dumps(spec))
    bad = ot("job", "validate", "bad.json", env=env, cwd=tmp_path)
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith("error: bad.json: ") for line in lines)
    assert any("rounds" in line for line in lines) and any("extra" in line for line in lines)


def test_init_picks_the_pseudo_gradient_codec_and_shows_what_a_slot_uploads(
    tmp_path: Path,
) -> None:
    """``--compression topk --density --bits`` write the spec's ``diloco`` part (error decay
    0.95 by default) and the summary prints the upload per slot; options that do not fit the
    codec are refused in one line, writing nothing."""
    env = _env(COLUMNS="200")  # the summary table on one line per row
    args = ("job", "init", "--model", "mlp", "--size", "tiny", "--no-probe")
    made = ot(
        *args, "--compression", "topk", "--density", "0.05", "-o", "t.json", env=env, cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    assert "upload per slot" in made.stdout and "less than float32" in made.stdout
    diloco = json.loads((tmp_path / "t.json").read_text())["diloco"]
    assert diloco["compression"] == "topk" and diloco["density"] == 0.05
    assert diloco["bits"] == 2 and diloco["error_decay"] == 0.95
    assert ot("job", "validate", "t.json", env=env, cwd=tmp_path).returncode == 0
    for extra, message in (
        (("--density", "0.03"), "apply to --compression topk only"),
        (("--compression", "topk", "--bits", "3"), "--bits must be 2 or 4"),
        (("--compression", "zip"), "--compression must be"),
    ):
        refused = ot(*args, *extra, "-o", "r.json", env=env, cwd=tmp_path)
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "r.json").exists()


def test_a_post_the_contract_would_refuse_is_one_line_and_posts_nothing(
    hardhat_rpc: str, tmp_path: Path
) -> None:
    market = deploy_on(hardhat_rpc, tmp_path)
    sponsor = market.new_account(tokens=2 * TOKEN)  # less than the tiny job's 4.4 TRAIN
    market.chain.deployment.save(tmp_path / "deployment.json")
    env = _env(
        OPENTRAIN_RPC_URL=hardhat_rpc,
        OPENTRAIN_HOME=str(tmp_path / "sponsor"),
        OPENTRAIN_DEPLOYMENT_FILE=str(tmp_path / "deployment.json"),
        OPENTRAIN_STORE_DIR=str(tmp_path / "store"),
        OPENTRAIN_PRIVATE_KEY="0x" + sponsor.signer.key.hex(),
    )
    made = ot(
        "job",
        "init",
        "--model",
        "mlp",
        "--size",
        "tiny",
        "--no-probe",
        "-o",
        "ok.json",
        env=env,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    spec = json.loads((tmp_path / "ok.json").read_text())

    bad = dict(spec, training={**spec["training"], "inner_steps": 9})
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    greedy = dict(
        spec,
        reward={"reward_per_slot": 1000 * TOKEN, "verifier_fee": 0},
        rounds=1,
        slots_per_round=1,
    )
    greedy["verification"] = {**spec["verification"], "samples": 1}
    (tmp_path / "greedy.json").write_text(json.dumps(greedy))
    cheap = dict(greedy, reward={"reward_per_slot": TOKEN // 100, "verifier_fee": 0})
    (tmp_path / "cheap.json").write_text(json.dumps(cheap))

    cases = {
        "bad.json": "inner_steps (9) must be a multiple of segment_steps",
        "ok.json": "balance:",  # 4.4 TRAIN escrow, 2 held
        "greedy.json": "economics guard: cheating would pay",
    }
    for name, expected in cases.items():
        done = ot("job", "post", name, "--yes", env=env, cwd=tmp_path)
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, lines)
        assert expected in lines[0], (name, lines[0])
    assert market.chain.market.functions.jobCount().call() == 0
    assert sponsor.balance() == 2 * TOKEN

    posted = ot("job", "post", "cheap.json", "--yes", env=env, cwd=tmp_path)  # what it allows
    assert posted.returncode == 0, posted.stderr
    assert "job 1 posted" in posted.stdout
    assert market.chain.market.functions.jobCount().call() == 1
    missing = ot("job", "status", "99", env=env)
    assert missing.returncode == 1 and "job 99 does not exist" in missing.stderr

    early = ot("job", "refund", "1", env=env)
    assert early.returncode == 1 and "still open" in early.stderr
    cancelled = ot("job", "cancel", "1", env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    refunded = ot("job", "refund", "1", env=env)
    assert refunded.returncode == 0, refunded.stderr
    assert "refunded 0.01 TRAIN of job 1" in refunded.stdout
    assert sponsor.balance() == 2 * TOKEN
