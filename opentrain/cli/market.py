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
one every ``--block-time`` seconds (windows and deadlines are counted in blocks).

``--detach`` runs the supervisor in the background; ``market down`` stops it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console

from opentrain.cli.errors import fail, one_line_errors

market_app = typer.Typer(
    help="A local market of separate processes: chain, API, gateway, nodes, verifiers.\n\n"
    "Example: opentrain market up --nodes 2 --verifiers 1 --detach && opentrain market down",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
_errors = one_line_errors()

STATE = "market.json"
TOKEN_FUNDING = 1_000.0
STAKE = 200.0
HomeOpt = Annotated[
    Path, typer.Option("--home", help="the market's state folder", envvar="OPENTRAIN_MARKET_HOME")
]
DEFAULT_HOME = Path(".opentrain-market")


# -- helpers -------------------------------------------------------------------------------------


def opentrain_command() -> list[str]:
    """How to run ``opentrain`` as a child: the script beside this interpreter, else -m."""
    script = Path(sys.executable).parent / "opentrain"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "opentrain.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 10.0) -> Any:
    """One JSON-RPC call without web3 (the supervisor stays light)."""
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error'].get('message', answer['error'])}")
    return answer["result"]


def hardhat_paths() -> tuple[Path, Path] | None:
    """(hardhat executable, project folder with hardhat.config.js), when installed."""
    import opentrain

    for root in (Path(opentrain.__file__).resolve().parent.parent, Path.cwd()):
        hardhat = root / "node_modules" / ".bin" / "hardhat"
        if hardhat.exists() and (root / "hardhat.config.js").exists():
            return hardhat, root
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_state(home: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((home / STATE).read_text())
        return data
    except FileNotFoundError:
        return {}
    except ValueError:
        fail(f"{home / STATE} is not valid JSON")


def save_state(home: Path, state: dict[str, Any]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".{STATE}.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(home / STATE)


# -- accounts ------------------------------------------------------------------------------------


@dataclass
class Role:
    """One party of the market: its home, its keystore and the password that unlocks it."""

    name: str
    home: Path

    @property
    def keystore(self) -> Path:
        return self.home / "keystore.json"

    @property
    def password_file(self) -> Path:
        return self.home / "keystore.password"

    @property
    def address(self) -> str:
        """The keystore's address (keystores name it in lowercase hex without 0x)."""
        return "0x" + str(json.loads(self.keystore.read_text())["address"])

    def ensure_key(self) -> str:
        """Create this role's encrypted keystore on first use; returns its address."""
        if self.keystore.exists():
            return self.address
        from opentrain.chain.keys import create_keystore

        self.home.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(18)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password)
        return create_keystore(self.keystore, password)


@dataclass
class Market:
    """Where everything of one market lives, and the environment each process gets."""

    home: Path
    rpc_url: str
    api_port: int
    gateway_port: int
    nodes: int
    verifiers: int
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def deployment_file(self) -> Path:
        return self.home / "deployment.json"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{(self.home / 'api' / 'opentrain.db').resolve()}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def role(self, name: str) -> Role:
        return Role(name, (self.home / name).resolve())

    def roles(self) -> list[Role]:
        names = ["sponsor"]
        names += [f"node-{i + 1}" for i in range(self.nodes)]
        names += [f"verifier-{i + 1}" for i in range(self.verifiers)]
        return [self.role(n) for n in names]

    def env(self, role: Role | None = None) -> dict[str, str]:
        """The OPENTRAIN_* settings of one process (``role``: its home and keystore)."""
        env = {
            "OPENTRAIN_RPC_URL": self.rpc_url,
            "OPENTRAIN_DEPLOYMENT_FILE": str(self.deployment_file.resolve()),
            "OPENTRAIN_STORE_DIR": str(self.store_dir.resolve()),
            "OPENTRAIN_DATABASE_URL": self.database_url,
            "OPENTRAIN_API_URL": self.api_url,
            "OPENTRAIN_HOME": str((self.home / "deployer").resolve()),
        }
        if role is not None:
            env["OPENTRAIN_HOME"] = str(role.home)
            env["OPENTRAIN_KEYSTORE"] = str(role.keystore)
            if role.password_file.exists():
                env["OPENTRAIN_KEYSTORE_PASSWORD"] = role.password_file.read_text().strip()
        return env


# -- the supervisor ------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    restart: bool = True
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    _log_file: IO[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file.write(f"\n== {time.strftime('%H:%M:%S')} {' '.join(self.argv)}\n".encode())
        self._log_file.flush()
        self.process = subprocess.Popen(
            self.argv,
            env={**os.environ, **self.env},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.cwd,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops us in order
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class Supervisor:
    """Starts the market's processes in order, keeps the daemons running, stops them all."""

    def __init__(self, market: Market, block_time: float, log: Any = None) -> None:
        self.on_restart: Any = lambda: None
        self.market = market
        self.block_time = block_time
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self.say = log or (lambda text: out.print(text))

    def _child(self, name: str, args: list[str], env: dict[str, str], **kw: Any) -> Child:
        child = Child(name, args, env, self.market.home / "logs" / f"{name}.log", **kw)
        self.children.append(child)
        return child

    def _run_once(self, name: str, args: list[str], env: dict[str, str]) -> None:
        """A one-off step as its own process (deploy, fund, stake); its output goes to its log."""
        log = self.market.home / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            done = subprocess.run(
                [*opentrain_command(), *args],
                env={**os.environ, **env},
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=600,
            )
        if done.returncode != 0:
            lines = [
                line.strip(" │╭╰─╮╯")
                for line in log.read_text(errors="replace").splitlines()
                if any(ch.isalnum() for ch in line)
            ]
            last = lines[-1] if lines else ""
            raise RuntimeError(f"{name} failed (exit {done.returncode}): {last} (see {log})")

    def _parallel(self, steps: list[tuple[str, list[str], dict[str, str]]]) -> None:
        errors: list[BaseException] = []

        def run(step: tuple[str, list[str], dict[str, str]]) -> None:
            try:
                self._run_once(*step)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(s,)) for s in steps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _wait_port(self, child: Child, timeout: float = 120.0) -> None:
        assert child.port is not None
        deadline = time.monotonic() + timeout
        while not port_open(child.port):
            if not child.running():
                raise RuntimeError(f"{child.name} exited; see {child.log}")
            if time.monotonic() > deadline or self.stopping.is_set():
                raise RuntimeError(f"{child.name} not listening on {child.port}; see {child.log}")
            time.sleep(0.2)

    # -- chain ----------------------------------------------------------------------------------

    def start_chain(self, external: bool) -> None:
        if external:
            rpc(self.market.rpc_url, "eth_chainId")
            return
        found = hardhat_paths()
        if found is None:
            raise RuntimeError(
                "no Hardhat in node_modules (run `make setup`), or set OPENTRAIN_RPC_URL to a "
                "JSON-RPC chain"
            )
        hardhat, root = found
        port = int(self.market.rpc_url.rsplit(":", 1)[1])
        if port_open(port):
            raise RuntimeError(f"port {port} is taken: pass --rpc-port, or stop what uses it")
        env = {"PATH": f"{hardhat.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        child = self._child(
            "chain",
            [str(hardhat), "node", "--hostname", "127.0.0.1", "--port", str(port)],
            env,
            port=port,
            restart=False,
            cwd=root,  # Hardhat reads hardhat.config.js from its working folder
        )
        child.start()
        self._wait_port(child)
        self.say(f"chain: Hardhat node at {self.market.rpc_url} (log {child.log})")

    def chain_is_ours(self) -> bool:
        """Does the chain still hold the deployment recorded in deployment.json?"""
        m = self.market
        if not m.deployment_file.exists():
            return False
        state = load_state(m.home)
        d = json.loads(m.deployment_file.read_text())
        code = rpc(m.rpc_url, "eth_getCode", [d["TrainToken"], "latest"])
        if code in ("0x", "0x0", None):
            return False
        marker = rpc(m.rpc_url, "eth_getBlockByNumber", [hex(int(d["block"])), False])
        return bool(marker) and marker.get("hash") == state.get("chain_marker")

    def archive_chain_state(self) -> None:
        """The chain is new: keep keys and content, move the old chain's local state aside."""
        m = self.market
        moved = []
        folder = m.home / "archive" / time.strftime("%Y%m%d-%H%M%S")
        candidates = [m.deployment_file, m.home / "api"]
        for r in m.roles():
            candidates += [r.home / "node", r.home / "verifier-state.json"]
        for path in candidates:
            if path.exists():
                target = folder / path.relative_to(m.home)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), str(target))
                moved.append(path.name)
        if moved:
            self.say(f"the chain is new: previous chain's local state moved to {folder}")

    def deploy_and_fund(self, state: dict[str, Any]) -> None:
        """Deploy on a new chain; fund and stake every account this chain has not seen yet
        (all of them after a deployment, the added ones when --nodes or --verifiers grew)."""
        m = self.market
        deployer = m.env()
        if self.chain_is_ours():
            self.say("chain: deployment found, resuming its state")
        else:
            self.archive_chain_state()
            self._run_once("deploy", ["chain", "deploy"], deployer)
            d = json.loads(m.deployment_file.read_text())
            marker = rpc(m.rpc_url, "eth_getBlockByNumber", [hex(int(d["block"])), False])
            state["chain_marker"] = marker["hash"]
            state["funded"] = []
            save_state(m.home, state)
            self.say(f"contracts deployed ({m.deployment_file})")
        new = [r for r in m.roles() if r.name not in state.get("funded", [])]
        if not new:
            return
        addresses = [r.address for r in new]
        self._run_once(
            "fund", ["chain", "fund", *addresses, "--tokens", f"{TOKEN_FUNDING:g}"], deployer
        )
        steps = []
        for r in new:
            if r.name.startswith("node-"):
                steps.append((f"stake-{r.name}", ["node", "stake", f"{STAKE:g}"], m.env(r)))
            elif r.name.startswith("verifier-"):
                steps.append((f"stake-{r.name}", ["verifier", "stake", f"{STAKE:g}"], m.env(r)))
        self._parallel(steps)
        self._parallel(
            [
                (f"register-{r.name}", ["verifier", "register"], m.env(r))
                for r in new
                if r.name.startswith("verifier-")
            ]
        )
        state["funded"] = sorted({*state.get("funded", []), *(r.name for r in new)})
        save_state(m.home, state)
        self.say(
            f"{len(new)} accounts funded with {TOKEN_FUNDING:g} TRAIN and gas; their nodes and "
            f"verifiers staked {STAKE:g}"
        )

    def tick(self) -> None:
        """Mine a block every ``block_time`` seconds (a dev chain mines only on transactions)."""
        while not self.stopping.wait(self.block_time):
            try:
                rpc(self.market.rpc_url, "evm_mine", timeout=5)
            except Exception:  # the chain is restarting or going down: try again next tick
                continue

    # -- services and daemons -------------------------------------------------------------------

    def start_services(self) -> None:
        m = self.market
        ot = opentrain_command()
        base = m.env()
        self._run_once("migrate", ["api", "migrate"], base)
        gateway = self._child(
            "gateway",
            [*ot, "store", "serve", "--port", str(m.gateway_port)],
            base,
            port=m.gateway_port,
        )
        indexer = self._child("indexer", [*ot, "api", "index", "--follow"], base)
        api = self._child(
            "api",
            [*ot, "api", "serve", "--port", str(m.api_port)],
            {**base, "OPENTRAIN_HOME": str((m.home / "api").resolve())},
            port=m.api_port,
        )
        for child in (gateway, indexer, api):
            child.start()
        daemons = []
        for r in m.roles():
            if r.name.startswith("node-"):
                daemons.append(self._child(r.name, [*ot, "node", "run", "--poll", "1"], m.env(r)))
            elif r.name.startswith("verifier-"):
                args = [*ot, "verifier", "run", "--poll", "1"]
                daemons.append(self._child(r.name, args, m.env(r)))
        for d in daemons:
            d.start()
        self._wait_port(gateway)
        self._wait_port(api)

    def watch(self) -> None:
        """Restart a daemon that died (at most 5 times), until asked to stop."""
        while not self.stopping.wait(1.0):
            for child in self.children:
                if child.running() or child.process is None:
                    continue
                code = child.process.returncode
                if not child.restart or child.restarts >= 5:
                    if not getattr(child, "reported", False):
                        self.say(f"{child.name} exited with {code}; see {child.log}")
                        child.reported = True  # type: ignore[attr-defined]
                    continue
                child.restarts += 1
                self.say(f"{child.name} exited with {code}; restarting ({child.restarts}/5)")
                child.stop()
                child.start()
                self.on_restart()

    def stop(self) -> None:
        self.stopping.set()
        for child in reversed(self.children):  # daemons first, the chain last
            child.stop()

    def pids(self) -> dict[str, int]:
        return {c.name: c.process.pid for c in self.children if c.process is not None}


def _banner(market: Market, state: dict[str, Any]) -> list[str]:
    lines = [
        f"market up in {market.home} (supervisor pid {state.get('supervisor')})",
        f"  dashboard   {market.api_url}/   (API docs {market.api_url}/docs)",
        f"  chain       {market.rpc_url}",
        f"  gateway     {market.gateway_url}/ipfs/",
        f"  logs        {market.home / 'logs'}/<process>.log",
    ]
    for name, address in state.get("accounts", {}).items():
        lines.append(f"  {name:<11} {address}")
    lines.append(f'  as the sponsor: eval "$(opentrain market env sponsor --home {market.home})"')
    lines.append(f"  stop: opentrain market down --home {market.home}")
    return lines


def _supervise(market: Market, block_time: float, external: bool, ready_file: Path | None) -> None:
    state = load_state(market.home)
    accounts = {}
    for r in market.roles():
        accounts[r.name] = r.ensure_key()
    state.update(
        {
            "supervisor": os.getpid(),
            "rpc_url": market.rpc_url,
            "api_port": market.api_port,
            "gateway_port": market.gateway_port,
            "nodes": market.nodes,
            "verifiers": market.verifiers,
            "external_chain": external,
            "accounts": accounts,
            "ready": False,
        }
    )
    save_state(market.home, state)
    supervisor = Supervisor(market, block_time)

    supervising = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        supervisor.stopping.set()
        if not supervising.is_set():  # still starting: abandon the step under way
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ticker = threading.Thread(target=supervisor.tick, daemon=True)
    try:
        supervisor.start_chain(external)
        if not external or _is_dev_chain(market.rpc_url):
            ticker.start()
        supervisor.deploy_and_fund(state)
        supervisor.start_services()
        state.update({"ready": True, "pids": supervisor.pids()})
        save_state(market.home, state)

        def record_pids() -> None:
            state["pids"] = supervisor.pids()
            save_state(market.home, state)

        supervisor.on_restart = record_pids
        supervising.set()
        for line in _banner(market, state):
            out.print(line)
        out.print("Ctrl-C stops every process (state stays on disk)")
        supervisor.watch()
    except KeyboardInterrupt:
        out.print("interrupted while starting")
    except Exception as exc:
        state["error"] = " ".join(str(exc).split())
        save_state(market.home, state)
        raise
    finally:
        supervisor.stop()
        state = load_state(market.home)
        state.update({"ready": False, "pids": {}, "supervisor": None})
        save_state(market.home, state)
        out.print("market stopped; state kept in " + str(market.home))


def _is_dev_chain(url: str) -> bool:
    try:
        return int(rpc(url, "eth_chainId"), 16) == 31337
    except Exception:
        return False


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
    market = Market(home, rpc_url, port, gateway_port, nodes, verifiers)
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
