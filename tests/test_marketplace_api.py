"""Marketplace service end to end: a real job on the in-process EVM, indexed into a migrated
SQLite database, read back through the HTTP API and compared with what the chain says."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker
from web3.types import Wei

from marketplace_api import indexer as indexer_module
from marketplace_api.app import create_app
from marketplace_api.db import (
    NotMigratedError,
    check_migrated,
    make_engine,
    make_session_factory,
    migrate,
)
from marketplace_api.indexer import Indexer
from marketplace_api.models import (
    Base,
    ChainEvent,
    Contribution,
    IndexerCursor,
    Job,
    RoundRecord,
)
from opentrain.chain import TOKEN, Chain, ChainAccount, JobParams, ProtocolParams, connect, deploy

PARAMS = ProtocolParams()
REWARD, FEE, STAKE = 10 * TOKEN, 1 * TOKEN, PARAMS.min_node_stake


def b32(tag: int) -> bytes:
    return bytes([tag]) * 32


def hx(data: bytes) -> str:
    return "0x" + data.hex()


@dataclass
class Story:
    """What happened on chain, with the ids the chain handed out."""

    chain: Chain
    sponsor: ChainAccount
    nodes: tuple[ChainAccount, ChainAccount]
    verifier: ChainAccount
    job_id: int
    other_job_id: int
    passed: int  # slot 0, node 0, pass
    failed: int  # slot 1, node 1, fail
    redone: int  # slot 1 again, node 0, pass: completes the round and the job


def _actor(chain: Chain, admin: ChainAccount, tokens: int) -> ChainAccount:
    account = chain.account(Account.create())
    chain.fund_eth(account.address, 10**19)
    admin.transfer(account.address, tokens)
    return account


def _submit(node: ChainAccount, job_id: int, slot: int, tag: int) -> int:
    node.claim_slot(job_id, 0, slot)
    return node.submit_contribution(
        job_id, 0, slot, b32(tag), b32(tag + 1), f"bafyout{tag}", f"bafymanifest{tag}"
    )


def _settle(story_chain: Chain, verifier: ChainAccount, cid: int, passed: bool) -> None:
    story_chain.mine(1)  # the seed comes from the block after the submission
    verifier.record_seed(cid)
    verifier.attest(cid, passed, f"bafyreport{cid}")
    story_chain.mine(PARAMS.challenge_window + 1)
    verifier.finalize(cid)


@pytest.fixture(scope="module")
def story() -> Story:
    """One job, one round, two slots: a pass, a fail (slashed, slot reopened), a redo that
    passes; the aggregate completes the job. A second, untouched job tests the filters."""
    w3 = connect("inprocess")
    deployer = Account.create()
    w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": deployer.address, "value": Wei(10**20)}
    )
    chain = deploy(w3, deployer, PARAMS)
    admin = chain.account(deployer)
    sponsor = _actor(chain, admin, 1_000 * TOKEN)
    nodes = (_actor(chain, admin, STAKE), _actor(chain, admin, STAKE))
    verifier = _actor(chain, admin, PARAMS.min_verifier_stake)
    for node in nodes:
        node.stake(STAKE)
    verifier.stake(PARAMS.min_verifier_stake)
    verifier.register_verifier()

    params = JobParams(b32(1), b32(2), 1, 2, 4, 2, REWARD, FEE)
    job_id = sponsor.create_job(params, "bafyspec", "bafyinitial")
    passed = _submit(nodes[0], job_id, 0, 10)
    failed = _submit(nodes[1], job_id, 1, 20)
    _settle(chain, verifier, passed, True)
    _settle(chain, verifier, failed, False)
    redone = _submit(nodes[0], job_id, 1, 30)
    _settle(chain, verifier, redone, True)
    nodes[0].post_aggregate(job_id, 0, b32(40), "bafyglobal1", 2.5)
    nodes[0].withdraw()
    verifier.withdraw()
    other = JobParams(b32(5), b32(6), 2, 1, 4, 1, REWARD, FEE)
    other_job_id = admin.create_job(other, "bafyspec2", "bafyinitial2")
    return Story(chain, sponsor, nodes, verifier, job_id, other_job_id, passed, failed, redone)


def _new_db(path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{path}"
    migrate(url)
    return make_session_factory(make_engine(url))


@pytest.fixture(scope="module")
def indexed(story: Story, tmp_path_factory: pytest.TempPathFactory) -> sessionmaker[Session]:
    """The story indexed in small batches, so batch boundaries fall inside it."""
    factory = _new_db(tmp_path_factory.mktemp("db") / "market.db")
    count = Indexer(story.chain.w3, story.chain.deployment, factory, batch_size=7).sync()
    assert count > 0
    return factory


@pytest.fixture(scope="module")
def client(indexed: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(session_factory=indexed)) as test_client:
        yield test_client


def _get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _counts(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        return {
            model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (ChainEvent, Job, Contribution, RoundRecord)
        }


# -- migrations -----------------------------------------------------------------------------


def test_migration_matches_models(tmp_path: Path) -> None:
    factory = _new_db(tmp_path / "m.db")
    migrate(f"sqlite:///{tmp_path / 'm.db'}")  # again: a no-op at head
    with factory() as session:
        context = MigrationContext.configure(session.connection(), opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_unmigrated_database_is_refused_in_one_line(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'raw.db'}")
    expected = r"database at sqlite:///.*raw\.db is not migrated: run `opentrain api migrate`"
    with pytest.raises(NotMigratedError, match=expected):
        check_migrated(engine)
    with pytest.raises(NotMigratedError, match=expected):
        create_app(session_factory=make_session_factory(engine))


# -- indexer --------------------------------------------------------------------------------


def test_chain_state_is_mirrored(story: Story, indexed: sessionmaker[Session]) -> None:
    market = story.chain.market.functions
    settlement = story.chain.settlement.functions
    with indexed() as session:
        for job_id in (story.job_id, story.other_job_id):
            job = session.get(Job, job_id)
            assert job is not None
            state = market.jobState(job_id).call()
            sponsor, status, current_round, escrow, model = state[:5]
            if len(state) > 5:  # newer JobMarket also returns createdBlock
                assert job.created_block == state[5]
            assert (job.sponsor, job.current_round, job.escrow) == (sponsor, current_round, escrow)
            assert job.current_model_digest == hx(model)
            assert job.status == {1: "open", 2: "completed"}[status]
        for cid in (story.passed, story.failed, story.redone):
            row = session.get(Contribution, cid)
            assert row is not None
            on_chain = market.getContribution(cid).call()
            verification = settlement.verification(cid).call()
            assert row.node == on_chain[0]
            assert row.status == {2: "accepted", 3: "rejected"}[on_chain[6]]
            assert (row.output_digest, row.trace_root) == (hx(on_chain[7]), hx(on_chain[8]))
            assert (row.seed, row.verifier) == (hx(verification[0]), verification[3])
            assert row.verdict == {1: "pass", 2: "fail"}[verification[4]]


def test_sync_is_idempotent(story: Story, indexed: sessionmaker[Session]) -> None:
    before = _counts(indexed)
    indexer = Indexer(story.chain.w3, story.chain.deployment, indexed)
    assert indexer.sync() == 0
    with indexed.begin() as session:  # rewind: the same logs come back and must be skipped
        session.execute(delete(IndexerCursor))
    assert indexer.sync() == 0
    assert _counts(indexed) == before
    with indexed() as session:
        job = session.get(Job, story.job_id)
        assert job is not None and job.escrow == 0


def test_failed_batch_leaves_nothing_behind(
    story: Story, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = _new_db(tmp_path / "crash.db")

    def crash(_session: Session, _event: ChainEvent) -> None:
        raise RuntimeError("crash while applying")

    monkeypatch.setitem(indexer_module.APPLY, "Attested", crash)
    indexer = Indexer(story.chain.w3, story.chain.deployment, factory, batch_size=10_000)
    with pytest.raises(RuntimeError, match="crash while applying"):
        indexer.sync()
    assert set(_counts(factory).values()) == {0}
    with factory() as session:
        assert session.get(IndexerCursor, indexer_module.CURSOR) is None
    monkeypatch.undo()
    assert indexer.sync() == _counts(factory)["ChainEvent"] > 0


# -- API ------------------------------------------------------------------------------------


def test_health_and_docs(story: Story, client: TestClient) -> None:
    health = _get(client, "/health")
    assert health["status"] == "ok" and health["database"] == "ok"
    assert health["indexed_block"] == story.chain.block_number()
    assert client.get("/docs").status_code == 200
    assert "/contributions/{contribution_id}" in _get(client, "/openapi.json")["paths"]


def test_jobs_list_filters_and_pages(story: Story, client: TestClient) -> None:
    page = _get(client, "/jobs")
    assert page["total"] == 2
    assert [j["id"] for j in page["items"]] == [story.other_job_id, story.job_id]
    completed = _get(client, "/jobs", status="completed")
    assert [j["id"] for j in completed["items"]] == [story.job_id]
    mine = _get(client, "/jobs", sponsor=story.sponsor.address.lower())
    assert [j["id"] for j in mine["items"]] == [story.job_id]
    second = _get(client, "/jobs", limit=1, offset=1)
    assert (second["total"], len(second["items"]), second["items"][0]["id"]) == (2, 1, story.job_id)
    assert client.get("/jobs", params={"status": "bogus"}).status_code == 422
    assert client.get("/jobs", params={"sponsor": "0x12"}).status_code == 422
    assert client.get("/jobs", params={"limit": 0}).status_code == 422


def test_job_detail(story: Story, client: TestClient) -> None:
    job = _get(client, f"/jobs/{story.job_id}")
    assert job["status"] == "completed" and job["sponsor"] == story.sponsor.address
    assert (job["spec_cid"], job["initial_model_cid"]) == ("bafyspec", "bafyinitial")
    assert (job["spec_digest"], job["initial_model_digest"]) == (hx(b32(1)), hx(b32(2)))
    assert (job["rounds"], job["slots_per_round"], job["num_segments"]) == (1, 2, 4)
    assert job["reward_per_slot"] == str(REWARD) and job["verifier_fee"] == str(FEE)
    assert job["escrow"] == "0" and job["current_round"] == 1
    assert job["contribution_ids"] == [story.passed, story.failed, story.redone]
    [record] = job["round_records"]
    assert (record["round"], record["model_cid"], record["model_digest"]) == (
        0,
        "bafyglobal1",
        hx(b32(40)),
    )
    assert record["validation_loss"] == 2.5 and record["poster"] == story.nodes[0].address
    other = _get(client, f"/jobs/{story.other_job_id}")
    assert other["status"] == "open" and other["escrow"] == str(2 * (REWARD + FEE))


def test_contribution_proof_bundles(story: Story, client: TestClient) -> None:
    passed = _get(client, f"/contributions/{story.passed}")
    assert passed["status"] == "accepted" and passed["verdict"] == "pass"
    assert (passed["node"], passed["verifier"]) == (story.nodes[0].address, story.verifier.address)
    assert (passed["output_cid"], passed["manifest_cid"]) == ("bafyout10", "bafymanifest10")
    assert (passed["output_digest"], passed["trace_root"]) == (hx(b32(10)), hx(b32(11)))
    assert passed["report_cid"] == f"bafyreport{story.passed}"
    assert (passed["node_reward"], passed["verifier_payment"], passed["slashed"]) == (
        str(REWARD),
        str(FEE),
        "0",
    )
    failed = _get(client, f"/contributions/{story.failed}")
    assert failed["status"] == "rejected" and failed["verdict"] == "fail"
    slash_reward = STAKE * PARAMS.slash_reward_bps // 10_000
    assert (failed["node_reward"], failed["verifier_payment"], failed["slashed"]) == (
        "0",
        str(slash_reward),
        str(STAKE),
    )
    assert story.chain.account(story.nodes[1].signer).stake_of() == 0  # the chain agrees
    w3 = story.chain.w3
    for name, tx in failed["transactions"].items():
        receipt = w3.eth.get_transaction_receipt(tx["tx_hash"])
        assert receipt["blockNumber"] == tx["block_number"], name
    assert failed["seed_block"] == failed["transactions"]["submitted"]["block_number"] + 1


def test_unknown_ids_are_404(client: TestClient) -> None:
    for path, what in (("/jobs/999", "job 999"), ("/contributions/999", "contribution 999")):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": f"{what} not found"}
    assert client.get(f"/jobs/{2**64}").status_code == 422  # out of range, not a 500
