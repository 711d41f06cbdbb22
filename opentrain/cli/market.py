"""``opentrain market``: a local market whose parts are separate OS processes, as they would be
on separate machines.

``market up`` starts, each as its own process with its own home (and its own encrypted keystore
for every account): a Hardhat JSON-RPC node (unless OPENTRAIN_RPC_URL names a chain), the
contract deployment (``opentrain chain deploy``) and the funding of the local accounts
(``opentrain chain fund``), the stakes (``node stake``, ``verifier stake`` and ``register``),
the content store's trustless gateway (``store serve``), the marketplace API (``api serve``)
with its indexer (``api index --follow``), N ``node run`` daemons and M ``verifier run``
daemons. The processes share one content store folder (this machine's "IPFS node"); the
gateway serves it to anyone else. Every process logs to ``<home>/logs/<name>.log``.

The launcher itself (the supervisor) only starts, watches and stops: Ctrl-C or SIGTERM stops
every child and leaves all state on disk; ``market up`` again resumes it (same accounts, same
homes; the chain's state when the chain survived, e.g. an OPENTRAIN_RPC_URL chain). Hardhat
keeps its chain in memory: when the chain is new, the contracts are deployed again and the old
chain's local state (database, daemon cursors, checkpoints) is moved to ``<home>/archive/``.
On a development chain nothing else mines blocks between transactions, so the supervisor mines
one every ``--block-time`` seconds; windows and deadlines are seconds of block time, and a new
deployment gets the local market's short windows (``--attest-window``, ``--challenge-window``,
``--vote-window``), so a job completes in minutes rather than the hours a public chain needs.

``--detach`` runs the supervisor in the background; ``market down`` stops it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from opentrain.cli.errors import fail, one_line_errors
from opentrain.cli.market_state import (
    DEFAULT_HOME,
    Market,
    _alive,
    free_port,
    load_state,
    opentrain_command,
    port_open,
    save_state,
)
from opentrain.cli.market_supervisor import _banner, _supervise

market_app = typer.Typer(
    help="A local market of separate processes: chain, API, gateway, nodes, verifiers.\n\n"
    "Example: opentrain market up --nodes 2 --verifiers 1 --detach && opentrain market down",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
_errors = one_line_errors()


HomeOpt = Annotated[
    Path, typer.Option("--home", help="the market's state folder", envvar="OPENTRAIN_MARKET_HOME")
]


# -- commands ------------------------------------------------------------------------------------


def _port(given: int | None, last: Any, default: int) -> int:
    if given == 0:
        return free_port()
    return given or (int(last) if last else 0) or default


@market_app.command()
@_errors
def up(
    nodes: Annotated[int, typer.Option(min=0, max=32, help="node daemons")] = 2,
    verifiers: Annotated[int, typer.Option(min=1, max=32, help="verifier daemons")] = 1,
    port: Annotated[
        int | None,
        typer.Option(help="API and dashboard port (0: a free one); default: last run's, or 8000"),
    ] = None,
    rpc_port: Annotated[
        int | None,
        typer.Option(help="Hardhat node port (0: a free one); default: last run's, or 8545"),
    ] = None,
    gateway_port: Annotated[
        int | None,
        typer.Option(help="gateway port (0: a free one); default: last run's, or 8080"),
    ] = None,
    block_time: Annotated[
        float, typer.Option(min=0.1, help="seconds between blocks mined on a dev chain")
    ] = 1.0,
    attest_window: Annotated[
        int, typer.Option(min=1, help="seconds a drawn verifier has to attest (new deployment)")
    ] = 300,
    challenge_window: Annotated[
        int, typer.Option(min=1, help="seconds to contest a verdict or aggregate (new deployment)")
    ] = 30,
    vote_window: Annotated[
        int, typer.Option(min=1, help="seconds a dispute committee votes (new deployment)")
    ] = 120,
    detach: Annotated[bool, typer.Option(help="run in the background; stop with market down")] = (
        False
    ),
    wait: Annotated[float, typer.Option(help="with --detach: seconds to wait for ready")] = 600.0,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Start a local market as separate processes: chain, deployment and funding, gateway, API
    with its indexer, N node daemons, M verifier daemons. Ctrl-C stops them all; running it
    again resumes the state in --home.

    Example: opentrain market up --nodes 2 --verifiers 1 --port 8000
    """
    home = home.resolve()
    state = load_state(home)
    pid = state.get("supervisor")
    if pid and _alive(int(pid)):
        fail(f"a market is already running from {home} (pid {pid}): opentrain market down")
    external_url = os.environ.get("OPENTRAIN_RPC_URL", "inprocess")
    external = external_url not in ("", "inprocess")
    # a resumed market keeps its ports unless told otherwise; 0 asks for a free one
    last_rpc = str(state.get("rpc_url") or "").rsplit(":", 1)[-1]
    port = _port(port, state.get("api_port"), 8000)
    gateway_port = _port(gateway_port, state.get("gateway_port"), 8080)
    rpc_port = _port(rpc_port, int(last_rpc) if last_rpc.isdigit() else None, 8545)
    rpc_url = external_url if external else f"http://127.0.0.1:{rpc_port}"
    for what, p in (("--port", port), ("--gateway-port", gateway_port)):
        if port_open(p):
            fail(f"port {p} is taken: pass another {what}")
    windows = [
        "--attest-window", str(attest_window),
        "--challenge-window", str(challenge_window),
        "--vote-window", str(vote_window),
    ]  # fmt: skip
    # the unbonding delay must outlast the longest open verdict (chain deploy checks it)
    from opentrain.chain.client import ProtocolParams

    local = ProtocolParams(
        attest_window=attest_window, challenge_window=challenge_window, vote_window=vote_window
    )
    unbonding = max(3_600, local.longest_open_verdict() + 1)
    deploy_options = [*windows, "--unbonding-delay", str(unbonding)]
    market = Market(
        home, rpc_url, port, gateway_port, nodes, verifiers, deploy_options=deploy_options
    )
    if not detach:
        _supervise(market, block_time, external, None)
        return
    home.mkdir(parents=True, exist_ok=True)
    log = home / "logs" / "market.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [
        *opentrain_command(),
        "market",
        "up",
        "--home",
        str(home),
        "--nodes",
        str(nodes),
        "--verifiers",
        str(verifiers),
        "--port",
        str(port),
        "--rpc-port",
        str(rpc_port),
        "--gateway-port",
        str(gateway_port),
        "--block-time",
        str(block_time),
        *windows,
    ]
    state.pop("error", None)
    state["ready"] = False
    save_state(home, state)
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            args,
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait
    while True:
        state = load_state(home)
        if state.get("ready") and state.get("supervisor") == proc.pid:
            break
        if proc.poll() is not None:
            why = state.get("error") or f"exit {proc.returncode}"
            fail(f"market did not start: {why} (log {log})")
        if time.monotonic() > deadline:
            fail(f"market not ready after {wait:g} s (log {log}); stop it: opentrain market down")
        time.sleep(0.5)
    for line in _banner(market, state):
        out.print(line)


@market_app.command()
@_errors
def down(
    home: HomeOpt = DEFAULT_HOME,
    timeout: Annotated[float, typer.Option(help="seconds to wait for it to stop")] = 60.0,
) -> None:
    """Stop a market started with --detach (every child process; state stays on disk).

    Example: opentrain market down
    """
    home = home.resolve()
    state = load_state(home)
    pid = state.get("supervisor")
    if not state:
        fail(f"no market in {home}")
    if not pid or not _alive(int(pid)):
        out.print(f"no market running from {home}")
        return
    os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(int(pid)):
        if time.monotonic() > deadline:
            fail(f"the market (pid {pid}) did not stop within {timeout:g} s")
        time.sleep(0.2)
    out.print(f"market stopped (pid {pid}); state kept in {home}")


@market_app.command()
@_errors
def status(home: HomeOpt = DEFAULT_HOME) -> None:
    """The market's processes (running or not), URLs and accounts.

    Example: opentrain market status
    """
    home = home.resolve()
    state = load_state(home)
    if not state:
        fail(f"no market in {home}")
    pid = state.get("supervisor")
    running = pid is not None and _alive(int(pid))
    out.print(f"market in {home}: {'running' if running else 'stopped'}")
    for name, child in (state.get("pids") or {}).items():
        out.print(f"  {name:<12} pid {child:<8} {'up' if _alive(int(child)) else 'down'}")
    for name, address in (state.get("accounts") or {}).items():
        out.print(f"  {name:<12} {address}")
    if not running:
        raise typer.Exit(1)


@market_app.command()
@_errors
def env(
    role: Annotated[str, typer.Argument(help="sponsor, node-1, verifier-1, …")] = "sponsor",
    home: HomeOpt = DEFAULT_HOME,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print the OPENTRAIN_* settings of one of the market's accounts, for your shell.

    Example: eval "$(opentrain market env sponsor)" && opentrain job post spec.json --yes
    """
    home = home.resolve()
    state = load_state(home)
    if not state:
        fail(f"no market in {home}: opentrain market up --home {home}")
    if role not in (state.get("accounts") or {}):
        fail(f"no account {role!r} in this market: {', '.join(state.get('accounts') or {})}")
    market = Market(
        home,
        state["rpc_url"],
        int(state["api_port"]),
        int(state["gateway_port"]),
        int(state["nodes"]),
        int(state["verifiers"]),
    )
    values = market.env(market.role(role))
    if as_json:
        typer.echo(json.dumps(values))
        return
    import shlex

    for key, value in values.items():
        typer.echo(f"export {key}={shlex.quote(value)}")
