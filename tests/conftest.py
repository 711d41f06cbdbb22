"""Shared fixtures: a deployed market on the in-process EVM with funded role accounts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from opentrain.chain.account import ChainAccount
from opentrain.chain.client import DEV_PARAMS, Chain, connect
from opentrain.chain.deployment import deploy
from opentrain.chain.types import TOKEN
from opentrain.content.embedded import EmbeddedStore

ETHER = 10**18


@dataclass
class Market:
    chain: Chain
    admin: ChainAccount
    store: EmbeddedStore
    home: Path

    def new_account(self, tokens: int = 1_000 * TOKEN) -> ChainAccount:
        key = Account.create()
        self.chain.fund_eth(key.address, 10 * ETHER)
        self.admin.transfer(key.address, tokens)
        return self.chain.account(key)


def _deploy_market(home: Path) -> Market:
    w3 = connect("inprocess")
    deployer = Account.create()
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": deployer.address, "value": 10**20})
    chain = deploy(w3, deployer, DEV_PARAMS)
    return Market(chain, chain.account(deployer), EmbeddedStore(home / "store"), home)


@pytest.fixture
def market(tmp_path: Path) -> Market:
    """A fresh deployment per test: tests never see each other's chain state."""
    return _deploy_market(tmp_path)


@pytest.fixture(scope="module")
def shared_market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    """One deployment for read-only checks in a module (faster)."""
    return _deploy_market(tmp_path_factory.mktemp("market"))


@pytest.fixture(scope="session")
def hardhat_rpc():  # type: ignore[no-untyped-def]
    """A real Hardhat JSON-RPC node on a free loopback port, for multi-process tests."""
    from marketplace_api.testing import hardhat_executable, hardhat_node

    if hardhat_executable() is None:
        pytest.skip("node_modules absent: run `make setup` to get a Hardhat node")
    with hardhat_node() as url:
        yield url


def deploy_on(url: str, home: Path) -> Market:
    """Deploy a fresh market on an RPC chain (each test gets its own contracts)."""
    w3 = connect(url)
    deployer = Account.create()
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": deployer.address, "value": 10**20})
    chain = deploy(w3, deployer, DEV_PARAMS)
    return Market(chain, chain.account(deployer), EmbeddedStore(home / "store"), home)
