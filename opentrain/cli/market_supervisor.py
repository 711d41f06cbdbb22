"""The launcher's supervisor: starts every part of a local market as its own OS process (chain,
deployment, gateway, API and indexer, node and verifier daemons), mines blocks on a dev chain,
stops every child on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from opentrain.cli.market_state import (
    STAKE,
    TOKEN_FUNDING,
    Market,
    hardhat_paths,
    load_state,
    opentrain_command,
    port_open,
    rpc,
    save_state,
)

out = Console()


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
            self._run_once("deploy", ["chain", "deploy", *m.deploy_options], deployer)
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
