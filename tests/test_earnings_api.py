"""The API's per-account payouts (``/accounts/{address}/earnings`` and its dashboard page) from
indexed events, and the embedded database migrated on start."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from test_ledger import NODE, VERIFIER, records

from marketplace_api.app import create_app
from marketplace_api.db import make_engine, make_session_factory, migrate_if_embedded
from marketplace_api.models import ChainEvent

T = 10**18


def _client(tmp_path: Path) -> TestClient:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    assert migrate_if_embedded(url) is True  # a fresh SQLite file just works
    factory = make_session_factory(make_engine(url))
    with factory() as session:
        for i, r in enumerate(records()):
            session.add(
                ChainEvent(
                    block_number=r.block,
                    block_hash=f"0x{r.block:064x}",
                    tx_hash=r.tx_hash,
                    tx_index=0,
                    log_index=r.log_index + 100 * i,
                    contract="StakeRegistry",
                    address="0x" + "00" * 20,
                    name=r.name,
                    args=dict(r.args),
                )
            )
        session.commit()
    return TestClient(create_app(session_factory=factory))


def test_postgres_is_left_to_api_migrate() -> None:
    assert migrate_if_embedded("postgresql+psycopg://nobody@127.0.0.1:1/none") is False


def test_earnings_json_lists_every_payout_and_agrees_with_the_chain(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        body = client.get(f"/accounts/{VERIFIER.upper().replace('0X', '0x')}/earnings").json()
        assert body["credited"] == str(50 * T + 2 * T // 10)
        assert body["chain_credits"] == body["unwithdrawn"] == body["credited"]
        assert body["matches_chain"] is True and body["total"] == 3
        assert [e["contribution_id"] for e in body["entries"]] == [1, 2, 2]
        paged = client.get(f"/accounts/{VERIFIER}/earnings", params={"limit": 1, "offset": 2})
        assert [e["cid"] for e in paged.json()["entries"]] == ["r2"]

        node = client.get(f"/accounts/{NODE}/earnings").json()
        assert node["withdrawn"] == str(T) and node["chain_credits"] == "0"
        assert node["matches_chain"] is True
        assert client.get("/accounts/0x12/earnings").status_code == 422


def test_earnings_page_renders_the_ledger(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        page = client.get(f"/ui/accounts/{NODE}/earnings")
        assert page.status_code == 200
        assert "agrees" in page.text and "bafy-output-1" in page.text
        assert "withdrawn to the wallet" in page.text
        assert client.get("/ui/accounts/nope/earnings").status_code == 404
