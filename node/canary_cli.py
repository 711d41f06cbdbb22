"""``opentrain canary``: the canary authority's commands (contracts/CANARIES.md).

The authority's own keystore (OPENTRAIN_KEYSTORE, holding ``Canaries.CANARY_ROLE``) funds the
pool and reveals; a separate, staked node keystore (``--node-keystore``) claims, trains and
submits the canary (its trace root sealed with the fault commitment), so nothing links the
submission to the authority. The planned
canary (its secret and faults) is kept in ``<home>/canaries/`` until it is revealed, so a
restarted ``canary run --contribution N`` still reveals it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from opentrain.chain.types import TOKEN
from opentrain.cli.errors import fail

if TYPE_CHECKING:
    from node.canary import PlannedCanary

canary_app = typer.Typer(
    help="The canary authority: fund the canary pool, train and reveal canaries that slash lazy "
    "verifiers.\n\n"
    "Example: opentrain canary fund 10 && opentrain canary run 1 --node-keystore canary-node.json",
    no_args_is_help=True,
)
out = Console()


@canary_app.command()
def fund(amount: Annotated[float, typer.Argument(help="TRAIN to add to the pool")]) -> None:
    """Add TRAIN to the canary pool (it pays right verdicts on canaries).

    Example: opentrain canary fund 10
    """
    from opentrain.context import role_context

    ctx = role_context()
    ctx.account.fund_canary_pool(int(amount * TOKEN))
    pool = int(ctx.chain.canaries.functions.pool().call())
    out.print(f"canary pool: {pool / TOKEN:g} TRAIN")


def _planned_file(home: Path, job_id: int, node: str) -> Path:
    return home / "canaries" / f"job-{job_id}-{node.lower()}.json"


def _save(path: Path, planned: PlannedCanary, contribution: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "job_id": planned.job_id,
        "node": planned.node,
        "secret": planned.secret.hex(),
        "faults": sorted(planned.faults),
        "words": [str(w) for w in planned.words],
        "contribution": contribution,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the secret stays private
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)


def _load(path: Path) -> tuple[PlannedCanary, int | None]:
    from node.canary import PlannedCanary

    doc = json.loads(path.read_text())
    planned = PlannedCanary(
        int(doc["job_id"]),
        str(doc["node"]),
        bytes.fromhex(doc["secret"]),
        frozenset(int(j) for j in doc["faults"]),
        tuple(int(w) for w in doc["words"]),
    )
    return planned, doc.get("contribution")


@canary_app.command()
def run(
    job_id: Annotated[int, typer.Argument(help="the job whose open slot the canary takes")],
    node_keystore: Annotated[
        Path, typer.Option(help="keystore of a staked node account used only for canaries")
    ],
    node_password_env: Annotated[
        str, typer.Option(help="environment variable holding the node keystore's password")
    ] = "OPENTRAIN_CANARY_NODE_PASSWORD",
    every_segment: Annotated[
        bool, typer.Option(help="fault every segment (default: each with probability 1/k)")
    ] = False,
    poll: Annotated[float, typer.Option(help="seconds between verdict checks")] = 5.0,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the verdict")] = 3600.0,
) -> None:
    """Train a canary on an open slot of JOB_ID with the canary node account (faulty segments
    drawn, its trace root sealed with them), wait for the verifier's verdict and reveal it: a
    wrong verdict slashes the verifier's lock.

    Example: OPENTRAIN_CANARY_NODE_PASSWORD=... opentrain canary run 1 --node-keystore n.json
    """
    from node.canary import CanaryRun
    from opentrain.chain.keys import load_keystore
    from opentrain.context import role_context
    from opentrain.protocol.jobs import load_job

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ctx = role_context()
    password = os.environ.get(node_password_env)
    if password is None:
        fail(f"set {node_password_env} to the password of {node_keystore}")
    node = ctx.chain.account(load_keystore(node_keystore, password))
    runner = CanaryRun(ctx.account, node, ctx.store, ctx.settings.home / "canary-node")
    path = _planned_file(ctx.settings.home, job_id, node.address)
    if path.exists():
        planned, contribution = _load(path)
    else:
        n = load_job(ctx.chain, ctx.store, job_id).spec.training.num_segments
        planned = runner.plan(job_id, faults=set(range(n)) if every_segment else None)
        contribution = None
        _save(path, planned, None)
        out.print(f"planned a canary on job {job_id} (faulty segments {sorted(planned.faults)})")
    if contribution is None:
        contribution = runner.train(planned)
        if contribution is None:
            fail(f"job {job_id} has no open slot for the canary node")
        _save(path, planned, contribution)
        out.print(f"canary submitted as contribution {contribution}; waiting for its verdict")
    deadline = time.monotonic() + timeout
    while (right := runner.reveal_if_attested(planned, contribution)) is None:
        if time.monotonic() > deadline:
            fail(f"no verdict on contribution {contribution} within {timeout:g} s")
        time.sleep(poll)
    path.unlink()
    out.print(
        f"canary {contribution} revealed: the verifier was "
        + ("right and was paid from the pool" if right else "WRONG and its lock was slashed")
    )
