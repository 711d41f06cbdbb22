"""The fault harness: hosts in network namespaces, link impairments, processes run inside them,
and the invariants checked after each scenario from public data only.

Topology (``Topology``): a hub namespace holds the chain (a Hardhat node listening on every
address of the hub) and a veth link to each host namespace; link ``k`` is ``10.231.k.1`` on the
hub and ``10.231.k.2`` on the host, so a host reaches the chain at ``http://10.231.k.1:PORT``
over its own link and a fault on that link touches nobody else; with
``route_between_hosts`` the hub forwards, so hosts reach each other (their gateways) through it,
as over the internet. Link 0 ends in the test process's own namespace (the test deploys, posts
bounties and reads the chain through it).
Only namespaces, links and addresses created here are touched, and all are removed on exit.

Impairments: ``tc netem`` on the host end of a link where the kernel has it
(``netem_unavailable`` says why not otherwise); a partition is the link set down, which any
kernel allows. Where netem is missing, ``ImpairedProxy`` gives the same host a lossy, slow path
to the chain in user space instead (see ``impair.py``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from marketplace_api.testing import dump
from opentrain.chain.client import Chain
from opentrain.chain.views import job_info
from opentrain.content.store import ContentStore
from verifier.audit.auditor import Auditor

HERE = Path(__file__).resolve().parent
SUBNET = "10.231"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def netns_unavailable() -> str | None:
    """None when this process may create network namespaces and veth links, else why not."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) on this machine"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
    probe = f"otprobe{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here: {made.stderr.strip()}"
    try:
        link = _ip(
            "-n", probe, "link", "add", "pa", "type", "veth", "peer", "name", "pb", check=False
        )
        if link.returncode != 0:
            return f"veth links are not permitted here: {link.stderr.strip()}"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


def netem_unavailable() -> str | None:
    """None when ``tc netem`` works in a namespace, else why not (e.g. a kernel without
    sch_netem, as on Firecracker guests: "Specified qdisc kind is unknown")."""
    if shutil.which("tc") is None:
        return "no `tc` command"
    probe = f"otnetem{os.getpid()}"
    if _ip("netns", "add", probe, check=False).returncode != 0:
        return "`ip netns add` is not permitted"
    try:
        done = subprocess.run(
            ["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
             "delay", "1ms"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return None if done.returncode == 0 else f"tc netem: {done.stderr.strip()}"
    finally:
        _ip("netns", "del", probe, check=False)


@dataclass
class Host:
    """One namespace with one link to the hub."""

    name: str  # namespace name
    index: int  # link number k
    device: str  # the host end of the link
    routed: bool = False  # reaches the other hosts through the hub

    @property
    def address(self) -> str:
        return f"{SUBNET}.{self.index}.2"

    @property
    def hub_address(self) -> str:
        return f"{SUBNET}.{self.index}.1"

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def netem(self, spec: str) -> None:
        """``tc qdisc replace ... netem SPEC`` on this host's end of its link."""
        subprocess.run(
            self.command(["tc", "qdisc", "replace", "dev", self.device, "root", "netem",
                          *spec.split()]),
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip

    def clear(self) -> None:
        subprocess.run(
            self.command(["tc", "qdisc", "del", "dev", self.device, "root"]),
            capture_output=True,
            timeout=30,
        )

    def partition(self, down: bool) -> None:
        """Cut (or restore) this host's only link: it reaches nobody, nobody reaches it. The
        kernel drops a link's routes when it goes down: restoring it restores the route to
        the other hosts too."""
        _ip("-n", self.name, "link", "set", self.device, "down" if down else "up")
        if not down and self.routed:
            self.route_to_hosts()

    def route_to_hosts(self) -> None:
        """Reach every host of the subnet through the hub (which forwards)."""
        _ip("-n", self.name, "route", "replace", f"{SUBNET}.0.0/16", "via", self.hub_address)
        self.routed = True


@dataclass
class Topology:
    """A hub namespace and host namespaces linked to it; ``close`` removes all of them."""

    tag: str = field(default_factory=lambda: f"ot{os.getpid() % 100000}")
    hub: str = ""
    hosts: dict[str, Host] = field(default_factory=dict)
    local: Host | None = None  # link 0: this process's namespace

    def __post_init__(self) -> None:
        self.hub = f"{self.tag}-hub"
        _ip("netns", "add", self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")

    def _link(self, k: int, namespace: str | None) -> str:
        hub_end, host_end = f"{self.tag}h{k}", f"{self.tag}v{k}"
        _ip("link", "add", hub_end, "type", "veth", "peer", "name", host_end)
        _ip("link", "set", hub_end, "netns", self.hub)
        _ip("-n", self.hub, "addr", "add", f"{SUBNET}.{k}.1/24", "dev", hub_end)
        _ip("-n", self.hub, "link", "set", hub_end, "up")
        where = [] if namespace is None else ["-n", namespace]
        if namespace is not None:
            _ip("link", "set", host_end, "netns", namespace)
        _ip(*where, "addr", "add", f"{SUBNET}.{k}.2/24", "dev", host_end)
        _ip(*where, "link", "set", host_end, "up")
        return host_end

    def add_local(self) -> Host:
        """Link 0, from this process's namespace (the veth pair is ours; nothing else is
        touched: a /24 of our own on our own device)."""
        self.local = Host("", 0, self._link(0, None))
        return self.local

    def add_host(self, role: str) -> Host:
        k = len(self.hosts) + 1
        name = f"{self.tag}-{role}"
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")
        host = Host(name, k, self._link(k, name))
        self.hosts[role] = host
        return host

    def route_between_hosts(self) -> None:
        """Let hosts reach each other through the hub (as over the internet): the hub forwards
        and each host routes the whole subnet over its one link. A host whose link is down is
        still cut off from everybody."""
        subprocess.run(
            self.hub_command(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]),
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        for host in self.hosts.values():
            host.route_to_hosts()

    def hub_command(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.hub, *argv]

    def close(self) -> None:
        for host in self.hosts.values():
            _ip("netns", "del", host.name, check=False)
        _ip("netns", "del", self.hub, check=False)  # takes the links' hub ends with it
        if self.local is not None:
            _ip("link", "del", self.local.device, check=False)


@contextmanager
def topology() -> Iterator[Topology]:
    net = Topology()
    try:
        yield net
    finally:
        net.close()


def wait_port(address: str, port: int, timeout: float, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"nothing listens on {address}:{port} after {timeout} s"
                ) from None
            time.sleep(0.3)


def spawn(
    argv: Sequence[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """A process in its own session (so a kill reaches its children), output to ``log``."""
    with open(log, "ab") as out:  # the child has its own copy of the descriptor
        return subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill9(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the process and everything in its session, and reap it."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def stop(process: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        kill9(process)


class ImpairedProxy:
    """``impair.py`` run inside ``host``: a TCP relay on the host's loopback to ``target``
    that adds ``delay_ms`` to every chunk from the host and stalls 5 % of them as a lost
    segment would (a retransmission timeout); ends by itself after ``lifetime`` s."""

    def __init__(
        self,
        host: Host,
        target: tuple[str, int],
        delay_ms: int,
        loss: float,
        lifetime: float,
        log: Path,
        seed: int,
    ) -> None:
        self.port = 18545
        argv = host.command(
            [sys.executable, str(HERE / "impair.py"), "--listen", f"127.0.0.1:{self.port}",
             "--target", f"{target[0]}:{target[1]}", "--delay-ms", str(delay_ms),
             "--loss", str(loss), "--lifetime", str(lifetime), "--seed", str(seed)]
        )  # fmt: skip
        self.process = spawn(argv, dict(os.environ), log)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while b"listening" not in log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"impairment proxy did not start: {log.read_text()[-500:]}")
            time.sleep(0.1)

    def close(self) -> None:
        stop(self.process)


# -- invariants -------------------------------------------------------------------------------


@dataclass
class Violations:
    """What an invariant check found; empty is the only acceptable outcome."""

    items: list[str] = field(default_factory=list)
    checks: int = 0

    def expect(self, ok: bool, what: str) -> None:
        self.checks += 1
        if not ok:
            self.items.append(what)


def check_invariants(
    chain: Chain,
    store: ContentStore,
    job_ids: Sequence[int],
    *,
    honest: set[str],
    senders: set[str] = frozenset(),  # type: ignore[assignment]
    journals: Sequence[Path] = (),
    indexer_db: sessionmaker[Session] | None = None,
    fresh_db: sessionmaker[Session] | None = None,
) -> Violations:
    """From the chain's events and the content store only:

    - the auditor's accounting of each job has no findings (every token accounted for);
    - no contribution settled twice and none lost (each submitted one is finalized once);
    - every contribution of an ``honest`` node accepted and paid the job's reward;
    - each node submitted each slot at most once per claim; no party in ``honest`` (or
      ``senders``) sent the same call twice (same target and calldata: a re-signed duplicate
      of a transaction it believed lost); no transaction hash or nonce appears twice in any
      journal in ``journals``;
    - the indexer's database equals a fresh index of the same blocks (``fresh_db``).
    """
    found = Violations()
    auditor = Auditor(chain, store, reexecute=False)
    for job_id in job_ids:
        report = auditor.accounting(job_id)
        for check in report.findings:
            found.expect(False, f"job {job_id} accounting: {check.name}: {check.detail}")
        found.checks += len(report.checks)
    start = chain.deployment.block
    market, settlement = chain.market.events, chain.settlement.events
    submitted = [e["args"] for e in market.ContributionSubmitted.get_logs(from_block=start)]
    finalized = [e["args"] for e in settlement.ContributionFinalized.get_logs(from_block=start)]
    params = {j: job_info(chain, j).params.reward_per_slot for j in job_ids}
    ours = [s for s in submitted if int(s["jobId"]) in params]
    times = Counter(int(f["contributionId"]) for f in finalized)
    for s in ours:
        cid = int(s["contributionId"])
        found.expect(times[cid] == 1, f"contribution {cid} finalized {times[cid]} times")
    by_id = {int(f["contributionId"]): f for f in finalized}
    for s in ours:
        cid, f = int(s["contributionId"]), by_id.get(int(s["contributionId"]))
        if s["node"] in honest and f is not None:
            reward = params[int(s["jobId"])]
            found.expect(
                bool(f["accepted"]) and int(f["nodeReward"]) == reward,
                f"honest contribution {cid} not paid: accepted={f['accepted']} "
                f"reward={f['nodeReward']} (terms {reward})",
            )
    per_slot = Counter((int(s["jobId"]), int(s["round"]), int(s["slot"]), s["node"]) for s in ours)
    expired = Counter(
        (int(e["args"]["jobId"]), int(e["args"]["round"]), int(e["args"]["slot"]))
        for e in market.ClaimExpired.get_logs(from_block=start)
    )
    for (job, round_, slot, node), n in per_slot.items():
        allowed = 1 + expired[(job, round_, slot)]
        found.expect(n <= allowed, f"{node} submitted job {job} r{round_} s{slot} {n} times")
    watched = {a.lower() for a in honest | set(senders)}
    calls: Counter[tuple[str, str, str]] = Counter()
    for number in range(start, chain.block_number() + 1):
        for tx in chain.w3.eth.get_block(number, full_transactions=True)["transactions"]:
            sender = str(tx["from"]).lower()  # type: ignore[index]
            if sender in watched:
                data = tx["input"]  # type: ignore[index]
                calls[(sender, str(tx["to"]), bytes(data).hex())] += 1  # type: ignore[index]
    for (sender, to, data), n in calls.items():
        found.expect(n == 1, f"{sender} sent the same call to {to} {n} times ({data[:10]})")
    for journal in journals:
        entries = [line for line in journal.read_text().splitlines() if line.strip()]
        hashes = Counter(_field(line, "tx_hash") for line in entries)
        nonces = Counter(_field(line, "nonce") for line in entries)
        dupes = [h for h, n in hashes.items() if n > 1] + [
            str(k) for k, n in nonces.items() if n > 1
        ]
        found.expect(not dupes, f"journal {journal}: duplicates {dupes[:3]}")
    if indexer_db is not None and fresh_db is not None:
        found.expect(
            comparable(indexer_db) == comparable(fresh_db),
            "indexer database differs from a fresh re-index",
        )
    return found


def _field(line: str, name: str) -> Any:
    import json

    return json.loads(line).get(name)


def comparable(factory: sessionmaker[Session]) -> dict[str, Any]:
    """Raw events and projections: what a fresh index of the same blocks must reproduce
    (the kept hashes and the undo journal depend on the head at indexing time)."""
    tables = dump(factory, journal=False)
    for volatile in ("indexed_blocks", "indexer_cursor"):
        tables.pop(volatile, None)
    return tables
