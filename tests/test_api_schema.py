"""schemathesis against the app's own OpenAPI schema: generated requests to every operation
(the write side included) never get a server error nor a response the schema does not allow.
Bounded (few examples per operation) so it runs in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account
from web3.types import Wei

from marketplace_api.app import create_app
from marketplace_api.bounties import BountyRelay
from marketplace_api.config import ApiConfig
from marketplace_api.db import make_engine, make_session_factory, migrate
from marketplace_api.indexer import Indexer
from marketplace_api.middleware import RatePolicy
from opentrain.chain.client import DEV_PARAMS, connect
from opentrain.chain.deployment import deploy
from opentrain.chain.types import TOKEN, JobParams
from opentrain.content.embedded import EmbeddedStore

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402 (schemathesis brings it)
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

if TYPE_CHECKING:
    from schemathesis import BaseSchema, Case

PARAMS = DEV_PARAMS


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> BaseSchema:
    """A market with one settled contribution, indexed, served with the write side on."""
    home: Path = tmp_path_factory.mktemp("schema")
    w3 = connect("inprocess")
    deployer = Account.create()
    w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": deployer.address, "value": Wei(10**20)}
    )
    chain = deploy(w3, deployer, PARAMS)
    admin = chain.account(deployer)
    node, verifier = (chain.account(Account.create()) for _ in range(2))
    for account in (node, verifier):
        chain.fund_eth(account.address, 10**19)
        admin.transfer(account.address, PARAMS.min_node_stake + PARAMS.min_verifier_stake)
        account.stake(max(PARAMS.min_node_stake, PARAMS.min_verifier_stake))
    verifier.register_verifier()
    job = admin.create_job(
        JobParams(b"\x01" * 32, b"\x02" * 32, 1, 1, 4, 2, TOKEN, TOKEN // 10), "bafys", "bafyg"
    )
    node.claim_slot(job, 0, 0)
    contribution = node.submit_contribution(job, 0, 0, b"\x03" * 32, b"\x04" * 32, "o", "m")
    chain.mine(1)
    verifier.record_seed(contribution)
    verifier.attest(contribution, True, "bafyreport", b"\x05" * 32)
    url = f"sqlite:///{home / 'market.db'}"
    migrate(url)
    factory = make_session_factory(make_engine(url))
    Indexer(w3, chain.deployment, factory).sync()
    off = RatePolicy(rate=0.0, burst=0)
    app = create_app(
        session_factory=factory,
        relay=BountyRelay(w3, chain.deployment, EmbeddedStore(home / "store")),
        config=ApiConfig(reads=off, writes=off),
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)  # type: ignore[no-any-return]


def test_every_operation_conforms_to_the_schema(api_schema: BaseSchema) -> None:
    """Runs each operation's generated cases through ``call_and_validate`` (schemathesis's
    default checks: no 5xx, status, content type, headers and body as the schema says)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 14
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Case) -> None:
            # A schema-valid bounty is still refused (422) unless its signed transaction
            # commits to its spec: acceptance of valid-looking data is not checked there.
            excluded: list[Any] = [positive_data_acceptance] if case.method == "POST" else []
            case.call_and_validate(excluded_checks=excluded)

        check()
