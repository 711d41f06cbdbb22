"""The indexer against a real Hardhat node: a reorg (snapshot, index, revert, mine a different
branch, index again) leaves the database equal to a fresh index of the new chain; a reorg
deeper than the window halts it; an indexer killed with SIGKILL mid-batch resumes to the same
database with no duplicates. Each on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3
from web3.types import Wei

from marketplace_api.db import make_engine, make_session_factory, migrate
from marketplace_api.indexer import CURSOR, Indexer, ReorgTooDeepError
from marketplace_api.models import ChainEvent, Contribution, IndexerCursor, Job
from marketplace_api.testing import (
    dump,
    hardhat_executable,
    hardhat_node,
    postgres_reachable,
    postgres_schema,
)
from opentrain.chain.account import ChainAccount
from opentrain.chain.client import DEV_PARAMS, Chain, connect
from opentrain.chain.deployment import deploy
from opentrain.chain.types import CONTRACT_NAMES, TOKEN, JobParams

pytestmark = pytest.mark.skipif(
    hardhat_executable() is None, reason="Hardhat is not installed (node_modules): make setup"
)

PARAMS = replace(DEV_PARAMS, challenge_window=2)  # seconds: each Hardhat block adds one
REWARD, FEE = 10 * TOKEN, TOKEN
BACKENDS = ["sqlite", "postgresql"]


def b32(tag: int) -> bytes:
    return bytes([tag % 256]) * 32


@dataclass
class Market:
    chain: Chain
    keys: dict[str, LocalAccount]

    def account(self, role: str) -> ChainAccount:
        """A fresh client object each time: nonces are re-read after a revert."""
        return self.chain.account(self.keys[role])


@pytest.fixture(scope="module")
def market() -> Iterator[Market]:
    with hardhat_node() as url:
        w3 = connect(url)
        deployer = Account.create()
        tx = w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": deployer.address, "value": Wei(10**21)}
        )
        w3.eth.wait_for_transaction_receipt(tx)
        chain = deploy(w3, deployer, PARAMS)
        admin = chain.account(deployer)
        keys = {"admin": deployer}
        for role in ("sponsor", "node-1", "node-2", "verifier"):
            key = Account.create()
            chain.fund_eth(key.address, 10**19)
            admin.transfer(key.address, 10_000 * TOKEN)
            keys[role] = key
        yield Market(chain, keys)


def _post_job(market: Market, tag: int, slots: int = 2) -> int:
    params = JobParams(b32(tag), b32(tag + 1), 1, slots, 4, 2, REWARD, FEE)
    return market.account("sponsor").create_job(params, f"bafyspec{tag}", f"bafyg0{tag}")


def _work(market: Market, job_id: int, slot: int, node: str, passed: bool, tag: int) -> int:
    """Claim, submit, seed, attest and finalize one slot."""
    worker = market.account(node)
    worker.claim_slot(job_id, 0, slot)
    cid = worker.submit_contribution(
        job_id, 0, slot, b32(tag), b32(tag + 1), f"bafyout{tag}", f"bafyman{tag}"
    )
    market.chain.mine(2)  # a Hardhat node simulates calls at the latest block, not the next
    verifier = market.account("verifier")
    verifier.record_seed(cid)
    verifier.attest(cid, passed, f"bafyreport{tag}", b32(tag + 2))
    market.chain.mine(PARAMS.challenge_window + 2)
    verifier.finalize(cid)
    return cid


@pytest.fixture(scope="module")
def staked(market: Market) -> Market:
    """Stakes, a verifier, and a first job with one settled slot."""
    for role in ("node-1", "node-2", "verifier"):
        market.account(role).stake(500 * TOKEN)
    market.account("verifier").register_verifier()
    job = _post_job(market, 1)
    _work(market, job, 0, "node-1", True, 10)
    return market


@contextmanager
def _database(backend: str, folder: Path, name: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / name}"
        return
    reason = postgres_reachable()
    if reason is not None:
        pytest.skip(reason)
    with postgres_schema() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _factory(url: str) -> sessionmaker[Session]:
    migrate(url)
    return make_session_factory(make_engine(url))


def _fresh_dump(market: Market, backend: str, folder: Path, name: str) -> dict[str, object]:
    """What a new indexer writes for the chain as it is now, in a new database."""
    with _database(backend, folder, name) as url:
        factory = _factory(url)
        Indexer(market.chain.w3, market.chain.deployment, factory, batch_size=9).sync()
        try:
            return dump(factory)
        finally:
            factory.kw["bind"].dispose()


def _contributions(session: Session, job_id: int) -> int:
    query = select(func.count()).select_from(Contribution).where(Contribution.job_id == job_id)
    return session.scalar(query) or 0


def _rpc(w3: Web3, method: str, *params: object) -> object:
    response = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response["result"]


def test_reorg_rolls_back_to_the_ancestor_and_equals_a_fresh_index(
    staked: Market, backend: str, tmp_path: Path
) -> None:
    market, w3 = staked, staked.chain.w3
    snapshot = _rpc(w3, "evm_snapshot")
    # Branch A: a second job, two slots worked (one fails), the first job's last slot.
    job_a = _post_job(market, 40)
    _work(market, job_a, 0, "node-2", False, 50)
    _work(market, job_a, 1, "node-1", True, 60)
    with _database(backend, tmp_path, "live.db") as url:
        live = _factory(url)
        indexer = Indexer(w3, market.chain.deployment, live, batch_size=5)
        indexer.sync()
        with live() as session:
            assert _contributions(session, job_a) == 2
            branch_a_head = session.get(IndexerCursor, CURSOR)
        assert branch_a_head is not None

        # Branch B from the snapshot: different transactions, fewer blocks than A had.
        assert _rpc(w3, "evm_revert", snapshot) is True
        job_b = _post_job(market, 70, slots=1)
        _work(market, job_b, 0, "node-2", True, 80)
        assert market.chain.block_number() < branch_a_head.block_number

        indexer.sync()
        assert indexer.stats.reorgs == 1
        depth = indexer.stats.reorg_depths[0]
        assert 0 < depth < indexer.reorg_window
        assert job_b == job_a  # the same id, handed out again on the new branch
        with live() as session:
            job = session.get(Job, job_b)
            assert job is not None and job.spec_cid == "bafyspec70"
            assert _contributions(session, job_b) == 1
        assert dump(live) == _fresh_dump(market, backend, tmp_path, "fresh-1.db")

        # Branch B grows past where A was: following it stays equal to a fresh index.
        _work(market, _post_job(market, 90, slots=1), 0, "node-1", True, 95)
        indexer.sync()
        assert indexer.stats.reorgs == 0
        assert dump(live) == _fresh_dump(market, backend, tmp_path, "fresh-2.db")
        live.kw["bind"].dispose()


def test_reorg_deeper_than_the_window_halts_the_indexer(
    staked: Market, backend: str, tmp_path: Path
) -> None:
    market, w3 = staked, staked.chain.w3
    snapshot = _rpc(w3, "evm_snapshot")
    _post_job(market, 100)
    market.chain.mine(6)
    with _database(backend, tmp_path, "deep.db") as url:
        factory = _factory(url)
        indexer = Indexer(w3, market.chain.deployment, factory, reorg_window=4)
        indexer.sync()
        before = dump(factory)
        assert _rpc(w3, "evm_revert", snapshot) is True
        _post_job(market, 110)
        market.chain.mine(8)
        with pytest.raises(ReorgTooDeepError, match="deeper than the window"):
            indexer.sync()
        with factory() as session:
            cursor = session.get(IndexerCursor, CURSOR)
            assert cursor is not None and cursor.halted is not None
        with pytest.raises(ReorgTooDeepError):  # stays stopped
            indexer.sync()
        after = dump(factory)
        assert after["chain_events"] == before["chain_events"]
        factory.kw["bind"].dispose()


_KILLER = textwrap.dedent(
    """
    import json, os, signal, sys
    from marketplace_api import indexer as module
    from marketplace_api.db import make_engine, make_session_factory
    from opentrain.chain.client import Deployment, connect

    url, rpc, deployment, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    seen = 0
    original = module.apply_event

    def apply_then_maybe_die(session, event):
        global seen
        original(session, event)
        seen += 1
        if seen == kill_at:  # inside a batch's transaction, after some of its events
            os.kill(os.getpid(), signal.SIGKILL)

    module.apply_event = apply_then_maybe_die
    factory = make_session_factory(make_engine(url))
    indexer = module.Indexer(
        connect(rpc), Deployment(**json.loads(deployment)), factory, batch_size=6
    )
    indexer.sync()
    """
)


def test_indexer_killed_mid_batch_resumes_without_duplicates(
    staked: Market, backend: str, tmp_path: Path
) -> None:
    market = staked
    rpc = market.chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    deployment = market.chain.deployment
    with _database(backend, tmp_path, "killed.db") as url:
        factory = _factory(url)
        total_logs = len(
            market.chain.w3.eth.get_logs(
                {
                    "fromBlock": deployment.block,
                    "toBlock": market.chain.block_number(),
                    "address": [getattr(deployment, name) for name in CONTRACT_NAMES],
                }
            )
        )
        kill_at = total_logs // 2
        args = [url, rpc, _json(deployment), str(kill_at)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        done = subprocess.run(
            [sys.executable, "-c", _KILLER, *args], env=env, capture_output=True, timeout=120
        )
        assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
        with factory() as session:
            committed = session.scalar(select(func.count()).select_from(ChainEvent)) or 0
            cursor = session.get(IndexerCursor, CURSOR)
        assert 0 < committed < kill_at  # earlier batches kept, the killed one gone whole
        assert cursor is not None and cursor.block_number < market.chain.block_number()

        restarted = Indexer(market.chain.w3, deployment, factory, batch_size=4)
        assert restarted.sync() == total_logs - committed
        with factory() as session:
            keys = session.execute(select(ChainEvent.block_hash, ChainEvent.log_index)).all()
        assert len(keys) == len(set(keys)) == total_logs
        assert dump(factory) == _fresh_dump(market, backend, tmp_path, "fresh.db")
        factory.kw["bind"].dispose()


def _json(deployment: object) -> str:
    import dataclasses
    import json

    return json.dumps(dataclasses.asdict(deployment))  # type: ignore[call-overload]
