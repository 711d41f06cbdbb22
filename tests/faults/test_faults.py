"""A market across hosts under faults (issue 19): the chain and the indexer in one network
namespace, each node daemon and each of two verifiers in its own, every party a separate
process talking JSON-RPC over its own veth link. Each scenario runs a small job end to end
while a fault is injected, then checks the invariants from public data only
(``faultkit.check_invariants``).

Short by default (``make test``: one job per scenario); ``make soak`` sets
``OPENTRAIN_SOAK_SECONDS`` and ``test_soak`` loops jobs with random faults for that long, then
prints a summary. Skipped, with the reason, where namespaces cannot be created or no Hardhat is
installed. The seed of every random choice is printed (``OPENTRAIN_FAULT_SEED`` replays it).
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from faultkit import (
    SUBNET,
    Host,
    ImpairedProxy,
    Topology,
    check_invariants,
    kill9,
    netem_unavailable,
    netns_unavailable,
    spawn,
    stop,
    topology,
    wait_port,
)
from sqlalchemy.orm import Session, sessionmaker

from marketplace_api.db import make_engine, make_session_factory, migrate
from marketplace_api.indexer import CURSOR, Indexer
from marketplace_api.models import IndexerCursor
from marketplace_api.testing import REPO, hardhat_executable
from opentrain.chain.account import ChainAccount
from opentrain.chain.client import DEV_PARAMS, Chain, connect
from opentrain.chain.deployment import deploy
from opentrain.chain.types import TOKEN, JobStatus
from opentrain.chain.views import job_info, stake_info, verification_info
from opentrain.cli.demo import post_bounty
from opentrain.content.embedded import EmbeddedStore
from opentrain.protocol.presets import mlp_demo_spec
from opentrain.spec import JobSpec

pytestmark = pytest.mark.faults

OPENTRAIN = str(Path(sys.executable).parent / "opentrain")
PORT = 8545
BLOCK_SECONDS = 1  # Hardhat interval mining: windows pass with time, in blocks or seconds
# a bound, not a target: a small job takes about a minute on 2 idle cores, several on a busy host
JOB_TIMEOUT = float(os.environ.get("OPENTRAIN_FAULT_JOB_TIMEOUT", "480"))
SEED = int(os.environ.get("OPENTRAIN_FAULT_SEED", str(int(time.time()) % 100_000)))
# Windows in seconds of interval-mined blocks: short enough that a job settles in a minute or
# two and a partitioned verifier's assignment expires within a scenario, long enough to outlast
# a re-execution on a loaded host; a draw lag of 2 blocks so the verifiers staked at setup are
# drawn at once (the default 900 would queue every contribution for 15 minutes).
ATTEST_WINDOW = 60
VERIFIERS = ("verifier", "verifier2")
ROLES = ("node1", "node2", *VERIFIERS)
GATEWAY_PORT = 8080
FAULT_PARAMS = replace(
    DEV_PARAMS,
    attest_window=ATTEST_WINDOW,
    challenge_window=20,
    vote_window=60,
    unbonding_delay=2_000,
    draw_lag=2,
)


@dataclass
class World:
    net: Topology
    root: Path
    chain: Chain
    store: EmbeddedStore
    sponsor: ChainAccount
    keys: dict[str, str]  # role -> private key
    addresses: dict[str, str]
    processes: dict[str, Any] = field(default_factory=dict)
    rpc_override: dict[str, str] = field(default_factory=dict)
    database: str = ""
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    faults: Counter[str] = field(default_factory=Counter)
    jobs: list[int] = field(default_factory=list)
    gateway_processes: list[Any] = field(default_factory=list)

    def env(self, role: str, rpc: str) -> dict[str, str]:
        home = self.root / role
        home.mkdir(exist_ok=True)
        self.chain.deployment.save(home / "deployment.json")
        env = {
            **os.environ,
            "OPENTRAIN_RPC_URL": rpc,
            "OPENTRAIN_HOME": str(home),
            # each host its own content store; what it lacks it fetches (verified by CID)
            # from the others' gateways: the sponsor's in the hub, then each host's
            "OPENTRAIN_STORE_DIR": str(self.store_of(role)),
            "OPENTRAIN_GATEWAYS": ",".join(self.gateways(but=role)),
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        if role in self.keys:
            env["OPENTRAIN_PRIVATE_KEY"] = self.keys[role]
        return env

    def store_of(self, role: str) -> Path:
        """The content store of ``role``'s host (the sponsor's, in the hub, is ``self.store``)."""
        return self.root / "store" if role == "indexer" else self.root / role / "store"

    def gateways(self, but: str = "") -> list[str]:
        """Every host's trustless gateway but ``but``'s: the sponsor's first (specs, data,
        models), then the nodes' (their checkpoints), then the verifiers'."""
        urls = [f"http://{SUBNET}.0.1:{GATEWAY_PORT}"]  # the hub end of link 0, never cut
        urls += [f"http://{self.host(r).address}:{GATEWAY_PORT}" for r in ROLES if r != but]
        return urls

    def serve_stores(self) -> None:
        """A gateway (``opentrain store serve``) for the sponsor's store in the hub and for
        each host's store in its namespace; they stay up through every fault."""
        serve = [OPENTRAIN, "store", "serve", "--host", "0.0.0.0", "--port", str(GATEWAY_PORT)]
        hub_env = {**os.environ, "OPENTRAIN_STORE_DIR": str(self.store_of("indexer"))}
        self.gateway_processes.append(
            spawn(self.net.hub_command(serve), hub_env, self.root / "gateway-hub.log")
        )
        for role in ROLES:
            env = {**os.environ, "OPENTRAIN_STORE_DIR": str(self.store_of(role))}
            command = self.host(role).command(serve)
            log = self.root / f"gateway-{role}.log"
            self.gateway_processes.append(spawn(command, env, log))
        for process, url in zip(self.gateway_processes, self.gateways(), strict=True):
            host, port = url.removeprefix("http://").split(":")
            wait_port(host, int(port), 60, process)

    def host(self, role: str) -> Host:
        return self.net.hosts[role]

    def start(self, role: str) -> None:
        """(Re)start a role's daemon in its namespace."""
        if role == "indexer":
            argv = self.net.hub_command(
                [OPENTRAIN, "api", "index", "--follow", "--database", self.database]
            )
            env = self.env(role, f"http://127.0.0.1:{PORT}")
        else:
            host = self.host(role)
            rpc = self.rpc_override.get(role, f"http://{host.hub_address}:{PORT}")
            kind = "verifier" if role.startswith("verifier") else "node"
            argv = host.command([OPENTRAIN, kind, "run", "--poll", "1"])
            env = self.env(role, rpc)
        self.processes[role] = spawn(argv, env, self.root / f"{role}.log")

    def stop(self, role: str) -> None:
        process = self.processes.pop(role, None)
        if process is not None:
            stop(process)

    def kill9(self, role: str) -> None:
        kill9(self.processes.pop(role))
        self.faults[f"kill -9 {role}"] += 1

    def post_job(self, inner_steps: int = 40) -> int:
        """A one-slot job; ``inner_steps`` (10 per segment) sets how long its slot trains."""
        base = mlp_demo_spec(rounds=1, slots_per_round=1).model_dump()
        base["training"]["inner_steps"] = inner_steps
        job_id = post_bounty(self.sponsor, self.store, JobSpec.model_validate(base))
        self.jobs.append(job_id)
        return job_id

    def wait_completed(self, job_id: int, during: Callable[[], None] = lambda: None) -> None:
        started = time.monotonic()
        deadline = started + JOB_TIMEOUT
        while job_info(self.chain, job_id).status != JobStatus.COMPLETED:
            for role, process in self.processes.items():
                assert process.poll() is None, f"{role} exited: {self.tail(role)}"
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {r}\n{self.tail(r)}" for r in self.processes)
                pytest.fail(f"job {job_id} not completed after {JOB_TIMEOUT} s\n{logs}")
            during()
            time.sleep(0.5)
        print(f"job {job_id} completed in {time.monotonic() - started:.0f} s")

    def tail(self, role: str, chars: int = 1500) -> str:
        log = self.root / f"{role}.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    def check(self, job_ids: list[int]) -> list[str]:
        """The invariants over ``job_ids``, the indexer included: stopped (so its database
        holds still), compared with a fresh index of the same blocks, restarted. It must
        first have caught up with the chain as it stands now (every job's settlement in it)."""
        indexed = make_session_factory(make_engine(self.database))
        head = self.chain.block_number()
        deadline = time.monotonic() + 120
        while (block := _cursor_block(indexed)) < head:
            assert self.processes["indexer"].poll() is None, self.tail("indexer")
            assert time.monotonic() < deadline, f"indexer at {block}, chain at {head}"
            time.sleep(0.5)
        self.stop("indexer")
        block = _cursor_block(indexed)
        fresh = _fresh_index(self, block)
        found = check_invariants(
            self.chain,
            self.store,
            job_ids,
            honest={a for r, a in self.addresses.items() if r.startswith("node")},
            senders={self.addresses[v] for v in VERIFIERS},
            journals=sorted(self.root.glob("*/**/*journal*.jsonl")),
            indexer_db=indexed,
            fresh_db=fresh,
        )
        last = max(job_info(self.chain, j).current_round for j in job_ids)
        print(f"invariants: {found.checks} checks, {len(found.items)} violations (block {block})")
        assert last >= 1
        self.start("indexer")
        return found.items


def _cursor_block(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        cursor = session.get(IndexerCursor, CURSOR)
        return -1 if cursor is None else cursor.block_number


def _fresh_index(world: World, block: int) -> sessionmaker[Session]:
    url = f"sqlite:///{world.root / f'fresh-{block}.db'}"
    migrate(url)
    factory = make_session_factory(make_engine(url))
    Indexer(world.chain.w3, world.chain.deployment, factory).sync(to_block=block)
    return factory


def _account(chain: Chain, admin: ChainAccount, role: str) -> tuple[ChainAccount, str]:
    key = Account.create()
    chain.fund_eth(key.address, 10 * 10**18)
    admin.transfer(key.address, 1_000 * TOKEN)
    return chain.account(key), "0x" + key.key.hex()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if (reason := netns_unavailable()) is not None:
        pytest.skip(f"fault tests need network namespaces: {reason}")
    hardhat = hardhat_executable()
    if hardhat is None:
        pytest.skip("node_modules absent: run `make setup` to get a Hardhat node")
    print(f"fault seed {SEED} (OPENTRAIN_FAULT_SEED={SEED} replays it)")
    root = tmp_path_factory.mktemp("faults")
    with topology() as net:
        local = net.add_local()
        for role in ROLES:
            net.add_host(role)
        env = {**os.environ, "PATH": f"{hardhat.parent}{os.pathsep}{os.environ['PATH']}"}
        chain_argv = [str(hardhat), "node", "--hostname", "0.0.0.0", "--port", str(PORT)]
        # cwd: Hardhat reads its config from the working directory
        hardhat_process = spawn(net.hub_command(chain_argv), env, root / "hardhat.log", REPO)
        world: World | None = None
        try:
            wait_port(local.hub_address, PORT, 90, hardhat_process)
            w3 = connect(f"http://{local.hub_address}:{PORT}")
            deployer = Account.create()
            w3.eth.send_transaction(
                {"from": w3.eth.accounts[0], "to": deployer.address, "value": 10**20}
            )
            chain = deploy(w3, deployer, FAULT_PARAMS)
            w3.provider.make_request("evm_setIntervalMining", [BLOCK_SECONDS * 1000])  # type: ignore[arg-type]
            admin = chain.account(deployer)
            store = EmbeddedStore(root / "store")
            sponsor, _ = _account(chain, admin, "sponsor")
            keys, addresses = {}, {}
            for role in ROLES:
                account, keys[role] = _account(chain, admin, role)
                addresses[role] = account.address
                account.stake(200 * TOKEN)
                if role.startswith("verifier"):
                    account.register_verifier()
            world = World(net, root, chain, store, sponsor, keys, addresses)
            net.route_between_hosts()
            world.serve_stores()
            world.database = f"sqlite:///{root / 'index.db'}"
            migrate(world.database)
            for role in ("indexer", *VERIFIERS, "node1"):
                world.start(role)
            yield world
            print(f"faults injected: {dict(world.faults)}; jobs: {len(world.jobs)}")
        finally:
            for role in list(world.processes if world is not None else []):
                assert world is not None
                world.stop(role)
            for process in world.gateway_processes if world is not None else []:
                stop(process)
            stop(hardhat_process)


def test_latency_and_loss_on_a_node_link(world: World) -> None:
    """200 ms latency and 5 % loss on node1's link while it trains and submits a job's slot:
    the job completes and pays, nothing is lost or sent twice. Through ``tc netem`` on the
    link where the kernel has it, else through a user-space relay with the same latency and
    loss-driven stalls on node1's only path to the chain."""
    host = world.host("node1")
    proxy = None
    why = netem_unavailable()
    if why is None:
        host.netem("delay 200ms loss 5%")
        print("impairment: tc netem delay 200ms loss 5% on node1's link")
    else:
        world.stop("node1")
        proxy = ImpairedProxy(
            host,
            (host.hub_address, PORT),
            delay_ms=200,
            loss=0.05,
            lifetime=JOB_TIMEOUT + 60,
            log=world.root / "impair.log",
            seed=world.rng.randrange(2**31),
        )
        world.rpc_override["node1"] = proxy.url
        world.start("node1")
        print(f"impairment: user-space relay, 200 ms + 5 % loss stalls ({why})")
    world.faults["200ms+5% loss on a node link"] += 1
    try:
        job_id = world.post_job()
        world.wait_completed(job_id)
    finally:
        if proxy is not None:
            world.stop("node1")
            proxy.close()
            world.rpc_override.pop("node1", None)
            world.start("node1")
        else:
            host.clear()
    assert world.check([job_id]) == []


PARTITION_SECONDS = float(os.environ.get("OPENTRAIN_FAULT_PARTITION_SECONDS", "60"))


def test_a_node_partitioned_from_the_chain_mid_slot(world: World) -> None:
    """node1's only link goes down for 60 s once it has trained its first segment (it keeps
    training, offline), then comes back: its submission waits for the chain rather than being
    lost or sent twice, and the job completes and pays. The slot trains 40 segments, so the
    partition surely falls before the submission (a toy slot of 4 is done within a second)."""
    job_id = world.post_job(inner_steps=400)
    first = (
        world.root
        / "node1"
        / "node"
        / f"job-{job_id}"
        / "round-0"
        / "slot-0"
        / "ckpt-1.safetensors"
    )
    deadline = time.monotonic() + JOB_TIMEOUT
    while not first.exists():
        assert time.monotonic() < deadline, (
            f"node1 never trained job {job_id}: {world.tail('node1')}"
        )
        time.sleep(0.1)
    host = world.host("node1")
    host.partition(True)
    submitted = world.chain.market.events.ContributionSubmitted.get_logs(
        from_block=0, argument_filters={"jobId": job_id}
    )
    assert not submitted, "node1 submitted before the partition: the slot trains too fast"
    world.faults["node partitioned from the chain"] += 1
    print(f"node1 partitioned for {PARTITION_SECONDS:g} s mid-slot")
    try:
        time.sleep(PARTITION_SECONDS)
    finally:
        host.partition(False)
    world.wait_completed(job_id)
    assert world.check([job_id]) == []


def test_kill_9_of_a_node_daemon_at_a_random_point(world: World) -> None:
    """node1 is SIGKILLed at a random moment of a job (claiming, training, submitting or
    waiting), then restarted: the job completes, the slot is submitted once and paid."""
    job_id = world.post_job()
    delay = world.rng.uniform(0.5, 12.0)
    print(f"kill -9 node1 {delay:.1f} s after the bounty")
    time.sleep(delay)
    world.kill9("node1")
    world.start("node1")
    world.wait_completed(job_id)
    assert world.check([job_id]) == []


def test_kill_9_of_the_indexer_at_a_random_point(world: World) -> None:
    """The indexer is SIGKILLed at a random moment while a job runs (maybe mid-batch), then
    restarted: its database ends equal to a fresh index of the same blocks."""
    job_id = world.post_job()
    delay = world.rng.uniform(0.5, 12.0)
    print(f"kill -9 indexer {delay:.1f} s after the bounty")
    time.sleep(delay)
    world.kill9("indexer")
    world.start("indexer")
    world.wait_completed(job_id)
    assert world.check([job_id]) == []  # after the restarted indexer caught up


def test_a_verifier_partitioned_across_its_attestation_window(world: World) -> None:
    """Both verifiers are cut off while a job's contribution is drawn; the drawn one stays cut
    off past its attestation window while the other comes back: the other requests the
    takeover, is drawn, attests, and the job completes and pays. The missing verifier loses its
    lock (burned), as the takeover rule says; nothing else moves."""
    for v in VERIFIERS:
        world.host(v).partition(True)
    try:
        job_id = world.post_job()
        contribution, drawn = _assigned(world, job_id)
        other = next(v for v in VERIFIERS if v != drawn)
        world.host(other).partition(False)
        world.faults["verifier partitioned across its attest window"] += 1
        print(f"{drawn} drawn for contribution {contribution} and kept partitioned; {other} back")
        staked = stake_info(world.chain, world.addresses[drawn]).staked
        missed = world.chain.settlement.events.AttestationMissed
        deadline = time.monotonic() + JOB_TIMEOUT
        while not [
            e for e in missed.get_logs(from_block=0) if e["args"]["contributionId"] == contribution
        ]:
            assert time.monotonic() < deadline, f"no takeover: {world.tail(other)}"
            time.sleep(1)
    finally:
        for v in VERIFIERS:
            world.host(v).partition(False)
    world.wait_completed(job_id)
    v = verification_info(world.chain, contribution)
    assert v.verifier.lower() == world.addresses[other].lower()
    lock = FAULT_PARAMS.verifier_lock
    assert stake_info(world.chain, world.addresses[drawn]).staked == staked - lock
    assert world.check([job_id]) == []


def test_kill_9_of_a_verifier_at_a_random_point(world: World) -> None:
    """The verifier drawn for a job's contribution is SIGKILLed at a random moment (maybe
    mid re-execution, maybe mid-attestation) and restarted: it attests once, the job completes
    and pays, and no transaction is sent twice."""
    job_id = world.post_job()
    _, drawn = _assigned(world, job_id)
    delay = world.rng.uniform(0.0, 6.0)
    print(f"kill -9 {drawn} {delay:.1f} s after its draw")
    time.sleep(delay)
    world.kill9(drawn)
    world.start(drawn)
    world.wait_completed(job_id)
    assert world.check([job_id]) == []


def _assigned(world: World, job_id: int) -> tuple[int, str]:
    """(contribution id, verifier role) once the job's first contribution has a verifier."""
    deadline = time.monotonic() + JOB_TIMEOUT
    submitted = world.chain.market.events.ContributionSubmitted
    by_address = {world.addresses[v].lower(): v for v in VERIFIERS}
    while True:
        found = [e for e in submitted.get_logs(from_block=0) if e["args"]["jobId"] == job_id]
        if found:
            contribution = int(found[0]["args"]["contributionId"])
            verifier = verification_info(world.chain, contribution).verifier.lower()
            if verifier in by_address:
                return contribution, by_address[verifier]
        assert time.monotonic() < deadline, f"job {job_id} never drawn: {world.tail('node1')}"
        time.sleep(0.5)


REORG_WINDOW = 128  # `opentrain api index`'s default


def test_a_chain_restart_from_an_old_snapshot_halts_the_indexer_until_a_reindex(
    world: World,
) -> None:
    """The chain restarts from a snapshot older than the indexer's reorg window (Hardhat
    ``evm_snapshot`` / ``evm_revert``) and grows a different, longer branch. The following
    indexer halts loudly (it exits naming the too-deep reorg and marks its cursor halted rather
    than serving blocks the chain no longer has); a re-index into a new database recovers, and
    the invariants (that index equal to a fresh one) hold. No job is in flight across the
    revert, so only empty blocks are lost."""
    w3 = world.chain.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    forked_at = world.chain.block_number()
    w3.provider.make_request("hardhat_mine", [hex(REORG_WINDOW + 40)])  # type: ignore[arg-type]
    indexed = make_session_factory(make_engine(world.database))
    deadline = time.monotonic() + 120
    while _cursor_block(indexed) < forked_at + REORG_WINDOW + 20:
        assert time.monotonic() < deadline, f"indexer stuck: {world.tail('indexer')}"
        time.sleep(0.5)
    assert w3.provider.make_request("evm_revert", [snapshot])["result"]  # type: ignore[arg-type]
    w3.provider.make_request("hardhat_mine", [hex(2 * REORG_WINDOW + 80)])  # type: ignore[arg-type]
    world.faults["chain restarted from a snapshot (reorg deeper than the window)"] += 1
    indexer = world.processes["indexer"]
    deadline = time.monotonic() + 120
    while indexer.poll() is None:
        assert time.monotonic() < deadline, f"indexer did not halt: {world.tail('indexer')}"
        time.sleep(0.5)
    world.processes.pop("indexer")
    assert indexer.returncode != 0
    assert "reorg deeper than" in world.tail("indexer", 4000)
    with indexed() as session:
        cursor = session.get(IndexerCursor, CURSOR)
        assert cursor is not None and cursor.halted
    # the recovery the error names: a new database, indexed from the deployment block
    world.database = f"sqlite:///{world.root / f'index-after-reorg-{forked_at}.db'}"
    migrate(world.database)
    world.start("indexer")
    job_id = world.post_job()  # the market goes on on the new branch
    world.wait_completed(job_id)
    assert world.check(world.jobs) == []


SOAK_SECONDS = float(os.environ.get("OPENTRAIN_SOAK_SECONDS", "0"))


@pytest.mark.skipif(SOAK_SECONDS <= 0, reason="soak run only: make soak")
def test_soak(world: World) -> None:
    """Jobs back to back for OPENTRAIN_SOAK_SECONDS, each with a random fault at a random
    moment: a node, a verifier or the indexer killed and restarted, a node or a verifier cut
    off for 5-30 s (maybe right after a submission, maybe while drawn), or none; then the
    invariants over every job."""
    world.start("node2")
    deadline = time.monotonic() + SOAK_SECONDS
    jobs: list[int] = []
    violations: list[str] = []
    kills = ["node1", "node2", "indexer", *VERIFIERS]
    cuts = [f"cut {role}" for role in ROLES]
    while time.monotonic() < deadline:
        job_id = world.post_job()
        jobs.append(job_id)
        fault = world.rng.choice([*kills, *cuts, None])
        if fault is not None:
            time.sleep(world.rng.uniform(0.5, 12.0))
        if fault in kills:
            world.kill9(fault)
            world.start(fault)
        elif fault is not None:
            _cut_off(world, fault.removeprefix("cut "), world.rng.uniform(5.0, 30.0))
        world.wait_completed(job_id)
        if len(jobs) % 5 == 0:
            violations += world.check(jobs[-5:])
    violations += world.check(jobs)
    settled = len(world.chain.settlement.events.ContributionFinalized.get_logs(from_block=0))
    print(
        f"soak summary: {SOAK_SECONDS / 60:.1f} min, jobs {len(jobs)}, faults injected "
        f"{sum(world.faults.values())} {dict(world.faults)}, settled contributions {settled}, "
        f"violations {len(violations)}"
    )
    assert violations == []


def _cut_off(world: World, role: str, seconds: float) -> None:
    """Partition ``role``'s host for ``seconds``, then restore its link."""
    host = world.host(role)
    host.partition(True)
    world.faults[f"{role} cut off 5-30 s"] += 1
    print(f"{role} cut off for {seconds:.0f} s")
    try:
        time.sleep(seconds)
    finally:
        host.partition(False)
