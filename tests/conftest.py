"""Shared fixtures: a deployed market on the in-process EVM with funded role accounts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from opentrain.chain import TOKEN, Chain, ChainAccount, connect, deploy
from opentrain.store import EmbeddedStore

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
    chain = deploy(w3, deployer)
    return Market(chain, chain.account(deployer), EmbeddedStore(home / "store"), home)


@pytest.fixture
def market(tmp_path: Path) -> Market:
    """A fresh deployment per test: tests never see each other's chain state."""
    return _deploy_market(tmp_path)


@pytest.fixture(scope="module")
def shared_market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    """One deployment for read-only checks in a module (faster)."""
    return _deploy_market(tmp_path_factory.mktemp("market"))


ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def hardhat_rpc(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real Hardhat JSON-RPC node on a free loopback port, for multi-process tests."""
    import subprocess
    import time

    import httpx

    hardhat = ROOT / "node_modules" / ".bin" / "hardhat"
    if not hardhat.exists():
        pytest.skip("node_modules absent: run `make setup` to get a Hardhat node")
    port = _free_port()
    log = open(tmp_path_factory.mktemp("hardhat") / "node.log", "w")  # noqa: SIM115
    import os

    # node_modules/.bin first: Hardhat needs the Node 22 that the node@22 package brings
    env = {**os.environ, "PATH": f"{hardhat.parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [str(hardhat), "node", "--hostname", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    for _ in range(300):
        try:
            if httpx.post(url, json=body, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("Hardhat node did not start within 30 s")
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def deploy_on(url: str, home: Path) -> Market:
    """Deploy a fresh market on an RPC chain (each test gets its own contracts)."""
    w3 = connect(url)
    deployer = Account.create()
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": deployer.address, "value": 10**20})
    chain = deploy(w3, deployer)
    return Market(chain, chain.account(deployer), EmbeddedStore(home / "store"), home)
