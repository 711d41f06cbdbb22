"""The write side: a sponsor's own signed createJob transaction plus its spec, checked, stored
and relayed; request size limit and rate limit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from web3.types import Wei

from marketplace_api.app import create_app
from marketplace_api.bounties import BountyRelay
from marketplace_api.config import ApiConfig
from marketplace_api.db import make_engine, make_session_factory, migrate
from marketplace_api.indexer import Indexer
from marketplace_api.middleware import RatePolicy
from opentrain.chain.client import DEV_PARAMS, Chain, connect
from opentrain.chain.deployment import deploy
from opentrain.chain.types import TOKEN, JobParams
from opentrain.content.builder import compute_cid
from opentrain.content.embedded import EmbeddedStore
from opentrain.protocol.jobs import job_params
from opentrain.protocol.presets import default_demo_spec
from opentrain.spec import JobSpec, canonical_json


@dataclass
class Setup:
    chain: Chain
    sponsor: LocalAccount
    store: EmbeddedStore
    factory: sessionmaker[Session]
    client: TestClient


def _spec() -> JobSpec:
    return default_demo_spec(name="bounty-from-api", rounds=1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    home = tmp_path_factory.mktemp("bounties")
    w3 = connect("inprocess")
    deployer = Account.create()
    w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": deployer.address, "value": Wei(10**20)}
    )
    chain = deploy(w3, deployer, DEV_PARAMS)
    admin = chain.account(deployer)
    sponsor = Account.create()
    chain.fund_eth(sponsor.address, 10**19)
    admin.transfer(sponsor.address, 1_000 * TOKEN)
    for spender in (chain.market.address, chain.stakes.address):  # whichever pulls the escrow
        chain.account(sponsor).approve(spender, 1_000 * TOKEN)
    url = f"sqlite:///{home / 'market.db'}"
    migrate(url)
    factory = make_session_factory(make_engine(url))
    store = EmbeddedStore(home / "store")
    config = ApiConfig(writes=RatePolicy(rate=100.0, burst=100), max_body_bytes=64 * 1024)
    relay = BountyRelay(w3, chain.deployment, store)
    app = create_app(session_factory=factory, relay=relay, config=config)
    with TestClient(app) as client:
        yield Setup(chain, sponsor, store, factory, client)


def _signed(
    s: Setup,
    spec: JobSpec,
    *,
    params: JobParams | None = None,
    spec_cid: str | None = None,
    to: str | None = None,
    chain_id: int | None = None,
    signer: LocalAccount | None = None,
) -> str:
    signer = signer or s.sponsor
    fn = s.chain.market.functions.createJob(
        (params or job_params(spec, b"\x07" * 32)).as_tuple(),
        spec_cid or compute_cid(canonical_json(spec)),
        "bafyinitialmodel",
    )
    tx: dict[str, Any] = dict(
        fn.build_transaction(
            {
                "from": signer.address,
                "nonce": s.chain.w3.eth.get_transaction_count(signer.address),
                "gas": 3_000_000,
                "maxFeePerGas": 10**10,
                "maxPriorityFeePerGas": 10**9,
                "chainId": chain_id or s.chain.w3.eth.chain_id,
            }  # type: ignore[arg-type]
        )
    )
    if to is not None:
        tx["to"] = to
    return "0x" + signer.sign_transaction(tx).raw_transaction.hex()


def _with_gas_money(s: Setup) -> LocalAccount:
    account: LocalAccount = Account.create()
    s.chain.fund_eth(account.address, 10**19)
    return account


def _post(s: Setup, raw: str, spec: JobSpec | dict[str, Any]) -> Any:
    doc = spec.model_dump(mode="json") if isinstance(spec, JobSpec) else spec
    return s.client.post("/bounties", json={"raw_transaction": raw, "spec": doc})


def test_bounty_is_checked_stored_relayed_and_indexed(setup: Setup) -> None:
    spec = _spec()
    response = _post(setup, _signed(setup, spec), spec)
    assert response.status_code == 202, response.text
    body = response.json()
    cid = compute_cid(canonical_json(spec))
    assert body["spec_cid"] == cid and body["sponsor"] == setup.sponsor.address
    assert setup.store.get_bytes(cid) == canonical_json(spec)  # nodes can fetch it
    receipt = setup.chain.w3.eth.get_transaction_receipt(body["tx_hash"])
    assert receipt["status"] == 1
    Indexer(setup.chain.w3, setup.chain.deployment, setup.factory).sync()
    [job] = setup.client.get("/jobs", params={"model": spec.model.name}).json()["items"]
    assert (job["sponsor"], job["spec_cid"], job["name"]) == (
        setup.sponsor.address,
        cid,
        "bounty-from-api",
    )
    assert job["spec_digest"] == body["spec_digest"]
    detail = setup.client.get(f"/jobs/{job['id']}").json()
    assert detail["spec"]["name"] == "bounty-from-api"
    assert setup.client.get("/jobs", params={"model": "none-such"}).json()["total"] == 0


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("digest", "spec digest mismatch"),
        ("cid", "spec CID mismatch"),
        ("contract", "not sent to the JobMarket"),
        ("chain", "transaction is for chain 1,"),
        ("unfunded", "cannot pay for the transaction"),
        ("unapproved", "createJob would revert: ERC20InsufficientAllowance"),
        ("garbage", "not a signed transaction"),
        ("spec", "job spec:"),
    ],
)
def test_inconsistent_bounties_are_refused(setup: Setup, case: str, message: str) -> None:
    spec = _spec()
    other = default_demo_spec(name="another", rounds=1)
    raw = {
        "digest": lambda: _signed(setup, other),
        "cid": lambda: _signed(setup, spec, spec_cid="bafkreiwrongcid"),
        "contract": lambda: _signed(setup, spec, to=setup.chain.settlement.address),
        "chain": lambda: _signed(setup, spec, chain_id=1),
        "unfunded": lambda: _signed(setup, spec, signer=Account.create()),
        "unapproved": lambda: _signed(setup, spec, signer=_with_gas_money(setup)),
        "garbage": lambda: "0x02deadbeef",
        "spec": lambda: _signed(setup, spec),
    }[case]()
    doc: dict[str, Any] = spec.model_dump(mode="json")
    if case == "spec":
        doc["rounds"] = "two"
    before = setup.chain.block_number()
    response = _post(setup, raw, doc)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert setup.chain.block_number() == before  # nothing relayed


def test_body_size_limit(setup: Setup) -> None:
    spec = _spec()
    doc = spec.model_dump(mode="json")
    doc["padding"] = "x" * (70 * 1024)
    response = _post(setup, _signed(setup, spec), doc)
    assert response.status_code == 413
    assert "limit 65536 bytes" in response.json()["detail"]
    chunked = setup.client.post(
        "/bounties",
        content=iter([b'{"raw_transaction": "0x', b"00" * 40_000, b'"}']),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413


def test_rate_limit_and_disabled_writes(setup: Setup) -> None:
    config = ApiConfig(reads=RatePolicy(rate=1.0, burst=3), writes=RatePolicy(rate=0.01, burst=1))
    app = create_app(session_factory=setup.factory, config=config)
    with TestClient(app) as client:
        assert [client.get("/health").status_code for _ in range(4)] == [200, 200, 200, 429]
        limited = client.get("/health")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        first = client.post("/bounties", json={"raw_transaction": "0x00", "spec": {}})
        assert first.status_code == 503  # no chain: this instance relays nothing
        assert client.post("/bounties", json={}).status_code == 429
