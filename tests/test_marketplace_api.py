"""Marketplace service end to end: a real job on the in-process EVM, indexed into a migrated
database (SQLite and PostgreSQL), read back through the HTTP API and compared with what the
chain says."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker
from web3.types import Wei

from marketplace_api import indexer as indexer_module
from marketplace_api.app import create_app
from marketplace_api.config import ApiConfig
from marketplace_api.db import (
    NotMigratedError,
    alembic_config,
    check_migrated,
    make_engine,
    make_session_factory,
    migrate,
)
from marketplace_api.events import jsonable
from marketplace_api.indexer import Indexer
from marketplace_api.models import (
    Base,
    ChainEvent,
    Contribution,
    IndexerCursor,
    Job,
    Participant,
    RoundRecord,
    Slot,
)
from marketplace_api.testing import dump, postgres_reachable, postgres_schema
from opentrain.chain.abi import artifact
from opentrain.chain.account import ChainAccount
from opentrain.chain.client import DEV_PARAMS, Chain, connect
from opentrain.chain.deployment import deploy
from opentrain.chain.types import CONTRACT_NAMES, TOKEN, JobParams
from opentrain.protocol.sampling import sample_indices

PARAMS = DEV_PARAMS
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
    verifier.attest(cid, passed, f"bafyreport{cid}", b32(cid + 100))
    story_chain.advance(PARAMS.challenge_window + 1)
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


BACKENDS = ["sqlite", "postgresql"]


@contextmanager
def _database(backend: str, folder: Path) -> Iterator[str]:
    """An empty database of ``backend``: a SQLite file, or a fresh PostgreSQL schema
    (skipped, with the reason, when no server answers)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'market.db'}"
        return
    reason = postgres_reachable()
    if reason is not None:
        pytest.skip(reason)
    with postgres_schema() as url:
        yield url


def _new_db(url: str) -> sessionmaker[Session]:
    migrate(url)
    return make_session_factory(make_engine(url))


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with _database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def indexed(
    request: pytest.FixtureRequest, story: Story, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    """The story indexed in small batches, so batch boundaries fall inside it."""
    with _database(request.param, tmp_path_factory.mktemp("db")) as url:
        factory = _new_db(url)
        count = Indexer(story.chain.w3, story.chain.deployment, factory, batch_size=7).sync()
        assert count > 0
        yield factory
        factory.kw["bind"].dispose()


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


def test_migration_matches_models(empty_url: str) -> None:
    factory = _new_db(empty_url)
    migrate(empty_url)  # again: a no-op at head
    with factory() as session:
        context = MigrationContext.configure(session.connection(), opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    factory.kw["bind"].dispose()


def test_upgrade_from_0001_backfills_and_replays(story: Story, empty_url: str) -> None:
    """A database indexed under 0001 keeps its events; 0002 tags them with their job and
    contribution ids, and the next sync replays them into the new projections."""
    engine = make_engine(empty_url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            sa.text(
                "INSERT INTO chain_events (block_number, block_hash, tx_hash, tx_index, "
                "log_index, contract, address, name, args) VALUES (1, :h, :h, 0, 0, 'JobMarket', "
                ":a, 'JobCompleted', :args)"
            ),
            {"h": "0x" + "ab" * 32, "a": story.sponsor.address, "args": '{"jobId": 7}'},
        )
    migrate(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        event = session.scalars(select(ChainEvent)).one()
        assert (event.job_id, event.contribution_id) == (7, None)
    with factory.begin() as session:
        session.execute(delete(ChainEvent))
    indexer = Indexer(story.chain.w3, story.chain.deployment, factory)
    indexer.sync()
    before = dump(factory)
    with factory.begin() as session:  # as if indexed by the projections of 0001
        session.execute(delete(Slot))
        session.execute(delete(Participant))
        cursor = session.get(IndexerCursor, indexer_module.CURSOR)
        assert cursor is not None
        cursor.projection_version = 1
    indexer.sync()
    assert indexer.stats.replayed == len(before["chain_events"])
    assert dump(factory) == before
    engine.dispose()


def test_unmigrated_database_is_refused_in_one_line(tmp_path: Path) -> None:
    """The app and the indexer say which command to run instead of failing mid-request."""
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
    story: Story, empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = _new_db(empty_url)

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
    factory.kw["bind"].dispose()


def test_replay_rebuilds_the_same_projections(story: Story, indexed: sessionmaker[Session]) -> None:
    before = dump(indexed)
    indexer = Indexer(story.chain.w3, story.chain.deployment, indexed)
    assert indexer.replay() == len(before["chain_events"])
    assert dump(indexed) == before


def test_projections_agree_with_contract_views(
    story: Story, indexed: sessionmaker[Session]
) -> None:
    stakes, settlement = story.chain.stakes.functions, story.chain.settlement.functions
    with indexed() as session:
        for account in (*story.nodes, story.verifier):
            row = session.get(Participant, account.address)
            assert row is not None
            assert row.staked == stakes.stakeOf(account.address).call()
            assert row.locked == stakes.lockedOf(account.address).call()
            assert row.is_verifier == stakes.isVerifier(account.address).call()
            earned = row.node_earnings + row.verifier_earnings
            assert earned - row.withdrawn == settlement.credits(account.address).call()
        for slot in range(2):
            slot_row = session.get(Slot, (story.job_id, 0, slot))
            assert slot_row is not None
            node = story.chain.market.functions.slotState(story.job_id, 0, slot).call()[0]
            assert slot_row.status == "accepted" and slot_row.node == node


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
    # an undisputed fail pays the verifier exactly its fee out of the slash; the rest burns
    assert (failed["node_reward"], failed["verifier_payment"], failed["slashed"]) == (
        "0",
        str(FEE),
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


def test_job_rounds_and_slots(story: Story, client: TestClient) -> None:
    [round0] = _get(client, f"/jobs/{story.job_id}/rounds")
    assert round0["status"] == "aggregated" and round0["validation_loss"] == 2.5
    assert (round0["submitted"], round0["accepted"], round0["rejected"]) == (3, 2, 1)
    assert round0["aggregate"]["model_cid"] == "bafyglobal1"
    other = _get(client, f"/jobs/{story.other_job_id}/rounds")
    assert [r["status"] for r in other] == ["open", "pending"]
    slots = _get(client, f"/jobs/{story.job_id}/slots")
    assert slots["total"] == 2
    by_slot = {s["slot"]: s for s in slots["items"]}
    assert by_slot[0]["contribution_id"] == story.passed and by_slot[0]["claims"] == 1
    assert by_slot[1]["contribution_id"] == story.redone and by_slot[1]["claims"] == 2
    assert {s["status"] for s in slots["items"]} == {"accepted"}
    assert _get(client, f"/jobs/{story.job_id}/slots", round=1)["total"] == 0
    assert client.get("/jobs/999/rounds").status_code == 404


def test_contribution_list_filters(story: Story, client: TestClient) -> None:
    everything = _get(client, "/contributions")
    assert [c["id"] for c in everything["items"]] == [story.redone, story.failed, story.passed]
    rejected = _get(client, "/contributions", status="rejected")
    assert [c["id"] for c in rejected["items"]] == [story.failed]
    by_node = _get(client, "/contributions", node=story.nodes[0].address.lower())
    assert {c["id"] for c in by_node["items"]} == {story.passed, story.redone}
    by_verifier = _get(client, "/contributions", verifier=story.verifier.address, limit=1)
    assert by_verifier["total"] == 3 and len(by_verifier["items"]) == 1
    assert _get(client, "/contributions", job_id=story.other_job_id)["total"] == 0


def test_contribution_list_pages_by_key(story: Story, client: TestClient) -> None:
    """``before`` = the previous page's ``next_before`` walks the list newest first, each row
    once, and the last page says so (null); ``total`` stays the whole filtered set."""
    seen: list[int] = []
    page = _get(client, "/contributions", limit=1)
    while True:
        assert page["total"] == 3 and len(page["items"]) == 1
        seen.append(page["items"][0]["id"])
        if page["next_before"] is None:
            break
        assert page["next_before"] == seen[-1]
        page = _get(client, "/contributions", limit=1, before=page["next_before"])
    assert seen == [story.redone, story.failed, story.passed]
    two = _get(client, "/contributions", limit=2)
    assert [c["id"] for c in two["items"]] == seen[:2] and two["next_before"] == seen[1]
    assert _get(client, "/contributions", limit=3)["next_before"] is None  # exactly full
    assert _get(client, "/contributions", before=story.passed)["items"] == []
    assert client.get("/contributions", params={"before": 0}).status_code == 422


def test_proof_bundle_has_samples_events_and_audit_command(
    story: Story, client: TestClient
) -> None:
    bundle = _get(client, f"/contributions/{story.failed}")
    seed = bytes.fromhex(bundle["seed"][2:])
    assert bundle["sampled_segments"] == sample_indices(seed, 4, 2)
    assert (bundle["num_segments"], bundle["sample_count"]) == (4, 2)
    assert bundle["audit_command"] == f"opentrain audit contribution {story.failed}"
    assert bundle["spec_digest"] == hx(b32(1)) and bundle["round_model_digest"] == hx(b32(2))
    names = [e["name"] for e in bundle["events"]]
    assert names[0] == "ContributionSubmitted" and "ContributionFinalized" in names
    [attestation] = bundle["attestations"]
    assert attestation["args"]["pass"] is False
    assert attestation["args"]["verifier"] == story.verifier.address
    receipt = story.chain.w3.eth.get_transaction_receipt(attestation["tx_hash"])
    assert receipt["blockNumber"] == attestation["block_number"]
    assert bundle["disputes"] == []


def test_nodes_verifiers_leaderboard_and_stats(story: Story, client: TestClient) -> None:
    node0, node1 = (n.address for n in story.nodes)
    nodes = _get(client, "/nodes")
    assert [n["address"] for n in nodes["items"]] == [node0, node1]  # by earnings
    first = _get(client, f"/nodes/{node0.lower()}")
    assert (first["accepted"], first["rejected"], first["node_earnings"]) == (2, 0, str(2 * REWARD))
    second = _get(client, f"/nodes/{node1}")
    assert (second["rejected"], second["slashed"], second["slash_count"]) == (1, str(STAKE), 1)
    assert second["staked"] == "0"
    verifiers = _get(client, "/verifiers")
    [verifier] = verifiers["items"]
    assert verifier["address"] == story.verifier.address and verifier["is_verifier"] is True
    assert (verifier["attestations"], verifier["failed_attestations"]) == (3, 1)
    assert verifier["verifier_earnings"] == str(3 * FEE)  # a fail earns what a pass does
    assert verifier["withdrawn"] == verifier["verifier_earnings"]
    board = _get(client, "/leaderboard")
    assert [(e["rank"], e["address"]) for e in board["items"]] == [(1, node0), (2, node1)]
    assert board["items"][1]["acceptance_rate"] == 0.0
    stats = _get(client, "/stats")
    assert (stats["jobs"], stats["open_jobs"], stats["completed_jobs"]) == (2, 1, 1)
    assert (stats["contributions"], stats["accepted"], stats["rejected"]) == (3, 2, 1)
    assert stats["open_escrow"] == str(2 * (REWARD + FEE))
    assert stats["paid_to_nodes"] == str(2 * REWARD) and stats["slashed"] == str(STAKE)
    assert client.get("/nodes/0xnope").status_code == 422
    assert client.get(f"/nodes/{story.sponsor.address}").status_code == 404


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    client.get("/jobs")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert "# TYPE opentrain_api_requests_total counter" in text
    assert 'opentrain_api_requests_total{method="GET",route="/jobs",status="200"}' in text
    assert (
        'opentrain_api_request_duration_seconds_bucket{method="GET",route="/jobs",le="+Inf"}'
        in (text)
    )
    assert "opentrain_jobs 2" in text
    for line in text.splitlines():  # every sample line: name{labels} value
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_dashboard_pages_render(story: Story, client: TestClient) -> None:
    home = client.get("/")
    assert home.status_code == 200 and f'href="/ui/jobs/{story.other_job_id}"' in home.text
    job = client.get(f"/ui/jobs/{story.job_id}")
    assert job.status_code == 200
    assert 'data-round="0" data-loss="2.5"' in job.text  # the loss curve's point
    assert f'href="/ui/contributions/{story.failed}"' in job.text
    proof = client.get(f"/ui/contributions/{story.failed}")
    assert f"opentrain audit contribution {story.failed}" in proof.text
    assert hx(b32(21)) in proof.text  # the trace root
    node = client.get(f"/ui/nodes/{story.nodes[1].address}")
    assert node.status_code == 200 and "Slashed" in node.text
    assert story.nodes[0].address in client.get("/ui/leaderboard").text
    missing = client.get("/ui/jobs/999")
    assert missing.status_code == 404 and "not indexed" in missing.text
    assert client.get("/ui/nowhere").status_code == 404
    assert "/ui/jobs/{job_id}" not in _get(client, "/openapi.json")["paths"]


def test_halted_indexer_makes_the_api_refuse(story: Story, indexed: sessionmaker[Session]) -> None:
    with TestClient(create_app(session_factory=indexed)) as fresh:
        with indexed.begin() as session:
            cursor = session.get(IndexerCursor, indexer_module.CURSOR)
            assert cursor is not None
            cursor.halted = "block 9 was replaced"
        try:
            response = fresh.get("/jobs")
            assert response.status_code == 503
            assert response.json()["detail"] == "indexer halted: block 9 was replaced"
            indexer = Indexer(story.chain.w3, story.chain.deployment, indexed)
            with pytest.raises(indexer_module.ReorgTooDeepError, match="block 9 was replaced"):
                indexer.sync()
        finally:
            with indexed.begin() as session:
                cursor = session.get(IndexerCursor, indexer_module.CURSOR)
                assert cursor is not None
                cursor.halted = None


def test_responses_are_cached_until_the_index_moves(
    story: Story, indexed: sessionmaker[Session]
) -> None:
    config = ApiConfig(cache_refresh_seconds=0.0)
    with TestClient(create_app(session_factory=indexed, config=config)) as fresh:
        first = fresh.get(f"/jobs/{story.other_job_id}")
        etag = first.headers["etag"]
        assert fresh.get(f"/jobs/{story.other_job_id}").headers["etag"] == etag
        not_modified = fresh.get(f"/jobs/{story.other_job_id}", headers={"if-none-match": etag})
        assert not_modified.status_code == 304
        with indexed.begin() as session:  # a write the cursor does not see: still cached
            job = session.get(Job, story.other_job_id)
            assert job is not None
            job.current_round = 99
        assert fresh.get(f"/jobs/{story.other_job_id}").json()["current_round"] == 0
        with indexed.begin() as session:  # the indexer commits: its cursor moves
            cursor = session.get(IndexerCursor, indexer_module.CURSOR)
            assert cursor is not None
            saved = cursor.block_hash
            cursor.block_hash = "0x" + "ee" * 32
        try:
            moved = fresh.get(f"/jobs/{story.other_job_id}")
            assert moved.json()["current_round"] == 99 and moved.headers["etag"] != etag
        finally:
            with indexed.begin() as session:
                job = session.get(Job, story.other_job_id)
                cursor = session.get(IndexerCursor, indexer_module.CURSOR)
                assert job is not None and cursor is not None
                job.current_round, cursor.block_hash = 0, saved


def test_own_log_decoding_equals_web3s(story: Story) -> None:
    """The indexer decodes logs with eth-abi directly; web3's decoder must agree on every log
    the story emitted (structs, strings, addresses, bytes, booleans)."""
    chain, deployment = story.chain, story.chain.deployment
    sources = indexer_module._event_sources(deployment)
    addresses = [getattr(deployment, name) for name in CONTRACT_NAMES]
    logs = chain.w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": addresses})
    names = set()
    for entry in logs:
        decoder = sources[(entry["address"], "0x" + bytes(entry["topics"][0]).hex())]
        contract = chain.w3.eth.contract(
            address=entry["address"], abi=artifact(decoder.contract)["abi"]
        )
        expected = contract.events[decoder.name]().process_log(entry)["args"]
        assert decoder.decode(entry["topics"], entry["data"]) == jsonable(dict(expected))
        names.add(decoder.name)
    assert {"JobCreated", "ContributionSubmitted", "Attested", "StakeSlashed"} <= names
