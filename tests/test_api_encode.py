"""The hottest reads' JSON bodies, written straight from rows (``marketplace_api.encode``,
``proof.proof_bundle_json``), are byte-equal to their response models' own serialization and
valid against them, on SQLite and PostgreSQL: edge values (amounts past 2^64, nulls before a
seed or a verdict, a spec name outside ASCII, dispute events, a page past the end) included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from marketplace_api import encode, queries
from marketplace_api.db import make_engine, make_session_factory, migrate
from marketplace_api.models import (
    ChainEvent,
    Contribution,
    Job,
    JobSpecRecord,
    JobStatus,
    RoundRecord,
)
from marketplace_api.proof import proof_bundle, proof_bundle_json
from marketplace_api.schemas import JobPage, JobSummary, ProofBundle
from marketplace_api.testing import postgres_reachable, postgres_schema

BIG = 2**200 + 12345  # an amount no float or int64 holds


def _h(i: int) -> str:
    return "0x" + i.to_bytes(32, "big").hex()


def _addr(i: int) -> str:
    return "0x" + "Ab" * 19 + f"{i:02x}"


def _job(j: int, *, open_: bool) -> dict[str, object]:
    return dict(
        id=j,
        sponsor=_addr(j),
        spec_digest=_h(100 + j),
        initial_model_digest=_h(200 + j),
        spec_cid=f"bafyspec{j}",
        initial_model_cid=f"bafyinit{j}",
        rounds=2,
        slots_per_round=2,
        num_segments=8,
        sample_count=3,
        reward_per_slot=BIG if j == 1 else 10**18,
        verifier_fee=10**17,
        claim_timeout=600,
        escrow=BIG * 4 if open_ else 0,
        status="open" if open_ else "completed",
        current_round=1,
        current_model_digest=_h(300 + j),
        created_block=j,
        created_tx=_h(400 + j),
    )


def _contribution(c: int, job: int, round_: int, *, settled: bool) -> dict[str, object]:
    settled_fields: dict[str, object] = dict(
        seed=_h(500 + c),
        seed_block=20 + c,
        verifier=_addr(90),
        seed_recorded_block=20 + c,
        seed_tx=_h(600 + c),
        verdict="fail",
        report_cid=f"bafyreport{c}",
        attest_block=30 + c,
        attest_tx=_h(700 + c),
        node_reward=0,
        verifier_payment=BIG,
        slashed=BIG,
        finalize_block=40 + c,
        finalize_tx=_h(800 + c),
    )
    return dict(
        id=c,
        job_id=job,
        round=round_,
        slot=0,
        node=_addr(50 + c),
        output_digest=_h(900 + c),
        trace_root=_h(1000 + c),
        output_cid=f"bafyout{c}",
        manifest_cid=f"bafyman{c}",
        status="rejected" if settled else "submitted",
        submit_block=10 + c,
        submit_tx=_h(1100 + c),
        **(settled_fields if settled else dict.fromkeys(settled_fields)),
    )


def _event(n: int, name: str, contribution: int, block: int, **args: object) -> dict[str, object]:
    return dict(
        block_number=block,
        block_hash=_h(2000 + block),
        tx_hash=_h(3000 + n),
        tx_index=n % 2,
        log_index=n,
        contract="Settlement",
        address=_addr(99),
        name=name,
        args={"contributionId": contribution, **args},
        job_id=None,
        contribution_id=contribution,
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgresql":
        if (reason := postgres_reachable()) is not None:
            pytest.skip(reason)
        with postgres_schema() as url:
            yield _fill(url)
    else:
        yield _fill(f"sqlite:///{Path(tmp_path_factory.mktemp('db')) / 'encode.db'}")


def _fill(url: str) -> sessionmaker[Session]:
    migrate(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(insert(Job), [_job(j, open_=j != 2) for j in (1, 2, 3)])
        connection.execute(
            insert(JobSpecRecord),
            [dict(spec_digest=_h(101), spec_cid="bafyspec1", name="tiny – gpt ü", model="gpt",
                  body="{}")],
        )  # fmt: skip
        connection.execute(
            insert(RoundRecord),
            [dict(job_id=1, round=0, model_digest=_h(77), model_cid="bafyg1",
                  validation_loss_micro=2_500_000, validation_loss=2.5, poster=_addr(1),
                  block_number=50, tx_hash=_h(78))],
        )  # fmt: skip
        connection.execute(
            insert(Contribution),
            [
                _contribution(1, 1, 0, settled=True),
                _contribution(2, 1, 1, settled=False),
                _contribution(3, 3, 1, settled=False),  # round 1, no aggregate for round 0
            ],
        )
        connection.execute(
            insert(ChainEvent),
            [
                _event(4, "Attested", 1, 31, **{"pass": False, "verifier": _addr(90)}),
                _event(1, "ContributionSubmitted", 1, 11, amount=BIG),
                _event(6, "DisputeOpened", 1, 35, bond=BIG),
                _event(5, "CommitteeVoted", 1, 35, vote=True),
                _event(2, "ContributionSubmitted", 2, 12),
            ],
        )
    return make_session_factory(engine)


@pytest.mark.parametrize(
    ("status", "limit", "offset"),
    [(None, 20, 0), (JobStatus.OPEN, 1, 0), (JobStatus.OPEN, 1, 1), (JobStatus.OPEN, 5, 9)],
)
def test_job_page_body_equals_the_model(
    factory: sessionmaker[Session], status: JobStatus | None, limit: int, offset: int
) -> None:
    with factory() as session:
        total, rows = queries.job_summaries(session, limit=limit, offset=offset, status=status)
    body = encode.job_page(total, limit, offset, rows)
    items = [JobSummary.from_mapping(row) for row in rows]
    model = JobPage(total=total, limit=limit, offset=offset, items=items)
    assert body == model.model_dump_json().encode()
    assert JobPage.model_validate_json(body).model_dump_json().encode() == body
    assert total == (3 if status is None else 2)
    assert len(rows) == max(0, min(limit, total - offset))


@pytest.mark.parametrize("contribution_id", [1, 2, 3])
def test_proof_bundle_body_equals_the_model(
    factory: sessionmaker[Session], contribution_id: int
) -> None:
    with factory() as session:
        body = proof_bundle_json(session, contribution_id)
        model = proof_bundle(session, contribution_id)
    assert body is not None and model is not None
    assert body == model.model_dump_json().encode()
    validated = ProofBundle.model_validate_json(body)
    assert validated.model_dump_json().encode() == body
    if contribution_id == 1:
        # chain order: block, then transaction (6 is in tx 0 of block 35, 5 in tx 1), then log
        assert [e.log_index for e in validated.events] == [1, 4, 6, 5]
        assert [e.name for e in validated.disputes] == ["DisputeOpened", "CommitteeVoted"]
        assert validated.slashed == BIG and validated.events[0].args["amount"] == BIG
        assert validated.round_model_digest == _h(201)  # round 0: the initial model
    if contribution_id == 2:
        assert validated.round_model_digest == _h(77) and validated.sampled_segments is None
    if contribution_id == 3:
        assert validated.events == [] and validated.round_model_digest is None


def test_missing_contribution(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        assert proof_bundle_json(session, 999) is None and proof_bundle(session, 999) is None
