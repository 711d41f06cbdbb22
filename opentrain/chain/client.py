"""The connection: a Web3 on the in-process EVM or on a JSON-RPC endpoint, plus the deployed
contracts."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, Web3
from web3.contract import Contract
from web3.types import Wei

from opentrain.chain.abi import artifact
from opentrain.chain.account import ChainAccount
from opentrain.chain.types import TOKEN, ChainError
from opentrain.settings import IN_PROCESS

# -- deployment --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live; written to ``deployment.json`` for the other roles."""

    chain_id: int
    block: int
    TrainToken: str
    StakeRegistry: str
    JobMarket: str
    Settlement: str
    Disputes: str
    Canaries: str

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise ChainError(
                f"no deployment at {path}: run `opentrain chain deploy` first"
            ) from None
        except (TypeError, ValueError) as exc:
            raise ChainError(f"deployment file {path} is malformed: {exc}") from None


@dataclass(frozen=True)
class ProtocolParams:
    """Deployment-time parameters (token base units, basis points; windows in **seconds** of
    ``block.timestamp``, ``draw_lag`` in blocks).

    The defaults fit a 2 s-block L2 (``ISSUE13_ABI.md``): a 10 min attest window, a 30 min
    challenge window, 20 min per dispute vote round, a one-day unbonding delay and a draw lag of
    900 blocks (30 min). ``Disputes`` refuses to deploy unless ``unbonding_delay`` exceeds
    ``(2 + MAX_TAKEOVERS) * attest_window + challenge_window + 6 * vote_window`` (the longest a
    verdict can stay open). Tests and the demo deploy :data:`DEV_PARAMS`.
    """

    token_supply: int = 1_000_000_000 * TOKEN
    min_node_stake: int = 100 * TOKEN
    min_verifier_stake: int = 100 * TOKEN
    verifier_lock: int = 50 * TOKEN
    dispute_bond: int = 20 * TOKEN
    unbonding_delay: int = 86_400
    attest_window: int = 600
    challenge_window: int = 1_800
    vote_window: int = 1_200
    committee_size: int = 3
    slash_reward_bps: int = 5_000
    committee_reward_bps: int = 2_000
    draw_lag: int = 900
    quorum: int = 2

    def longest_open_verdict(self) -> int:
        """Seconds a verdict can stay open at most; ``unbonding_delay`` must exceed it."""
        # a reveal window (capped at one attest window), then every assignment
        windows = (2 + MAX_TAKEOVERS) * self.attest_window + self.challenge_window
        return windows + 6 * self.vote_window


MAX_TAKEOVERS = 3  # libraries/Limits.sol

# A development deployment (tests, the demo, a local Hardhat node): the in-process EVM's clock
# follows the wall clock (and moves at least a second per block), so its windows must outlast
# real CPU training and re-execution even on a loaded machine (the demo trains several slots
# before it verifies the first): an hour each, passed explicitly with ``Chain.advance``; a draw
# lag of 2 blocks so a verifier registered a few transactions earlier is drawn.
DEV_PARAMS = ProtocolParams(
    unbonding_delay=50_000,
    attest_window=3_600,
    challenge_window=3_600,
    vote_window=3_600,
    draw_lag=2,
)


class _SerializedTesterProvider(EthereumTesterProvider):
    """The in-process EVM with every request (and ``Chain.mine``/``advance``) under one lock:
    py-evm is not thread-safe, and a node daemon reads and writes from its verdict watcher
    thread while it trains."""

    def __init__(self) -> None:
        super().__init__()
        self.request_lock = threading.RLock()

    def make_request(self, method: Any, params: Any) -> Any:
        with self.request_lock:
            return super().make_request(method, params)


def _tester_lock(w3: Web3) -> Any:
    return getattr(w3.provider, "request_lock", None) or contextlib.nullcontext()


def connect(rpc_url: str) -> Web3:
    """A Web3 on the in-process EVM (``inprocess``) or on a JSON-RPC endpoint."""
    if rpc_url == IN_PROCESS:
        return Web3(_SerializedTesterProvider())
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    try:
        w3.eth.chain_id  # noqa: B018 - fail fast with a clear message
    except Exception as exc:
        raise ChainError(f"cannot reach the chain at {rpc_url}: {type(exc).__name__}") from None
    return w3


class Chain:
    """A Web3 connection plus the deployed contracts; shared by every account that uses it."""

    def __init__(self, w3: Web3, deployment: Deployment) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.token = self._contract("TrainToken")
        self.stakes = self._contract("StakeRegistry")
        self.market = self._contract("JobMarket")
        self.settlement = self._contract("Settlement")
        self.disputes = self._contract("Disputes")
        self.canaries = self._contract("Canaries")
        self._lock = threading.Lock()

    def _contract(self, name: str) -> Contract:
        address = Web3.to_checksum_address(getattr(self.deployment, name))
        return self.w3.eth.contract(address=address, abi=artifact(name)["abi"])

    @property
    def in_process(self) -> bool:
        return getattr(self.w3.provider, "ethereum_tester", None) is not None

    @property
    def is_dev_chain(self) -> bool:
        """In-process EVM or a Hardhat node: blocks can be mined on demand, accounts funded."""
        return self.w3.eth.chain_id in (31337, 131277322940537)

    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def timestamp(self) -> int:
        """The latest block's time (unix seconds): every window is measured on this clock."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def now(self) -> int:
        """The time the next block will carry at least (what ``block.timestamp`` will be for a
        transaction sent now): the pending block's time where the node reports one (the
        in-process EVM fixes it when the previous block is mined), else latest + 1. Windows
        are decided on this clock: "still inside" is ``now() <= deadline``."""
        latest = self.timestamp()
        try:
            pending = int(self.w3.eth.get_block("pending")["timestamp"])
        except Exception:  # a node without a pending block: latest + 1 is the floor
            pending = 0
        return max(latest + 1, pending)

    def mine(self, blocks: int) -> None:
        """Advance a development chain by ``blocks`` empty blocks (seed blocks, snapshots)."""
        if blocks <= 0:
            return
        provider = self.w3.provider
        tester = getattr(provider, "ethereum_tester", None)
        if tester is not None:
            with _tester_lock(self.w3):
                tester.mine_blocks(blocks)
        else:
            self.w3.provider.make_request("hardhat_mine", [hex(blocks)])  # type: ignore[arg-type]

    def advance(self, seconds: int) -> None:
        """Move a development chain's clock ``seconds`` past the latest block and mine a block
        there, so windows pass deterministically (in-process: eth-tester's time travel;
        Hardhat: ``evm_increaseTime`` + ``evm_mine``)."""
        if not self.is_dev_chain:
            raise ChainError("only a development chain can be moved forward in time")
        if seconds <= 0:
            self.mine(1)
            return
        tester = getattr(self.w3.provider, "ethereum_tester", None)
        if tester is not None:
            with _tester_lock(self.w3):
                target = self.timestamp() + seconds
                pending = int(tester.get_block_by_number("pending")["timestamp"])
                if target > pending:
                    tester.time_travel(target)
                # eth-tester's travel can land a second short: mine up to the target
                while self.timestamp() < target:
                    tester.mine_blocks(1)
        else:
            target = self.timestamp() + seconds
            self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
            self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            while self.timestamp() < target:
                self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def advance_to(self, timestamp: int) -> None:
        """Until the latest block's time is at least ``timestamp``: advanced on a dev chain,
        waited for on others."""
        missing = timestamp - self.timestamp()
        if missing <= 0:
            return
        if self.is_dev_chain:
            self.advance(missing)
            return
        while self.timestamp() < timestamp:
            time.sleep(min(2.0, max(missing, 0.2)))

    def wait_for_block(self, target: int, poll_seconds: float = 2.0) -> None:
        """Return once block ``target`` exists: mined at once on a dev chain, polled on others."""
        missing = target - self.block_number()
        if missing <= 0:
            return
        if self.is_dev_chain:
            self.mine(missing)
            return
        while self.block_number() < target:
            time.sleep(poll_seconds)

    def fund_eth(self, address: str, wei: int) -> None:
        """Give gas money from the dev chain's unlocked, prefunded first account."""
        if not self.is_dev_chain:
            raise ChainError("funding with ether only works on a development chain")
        sender = self.w3.eth.accounts[0]
        to = Web3.to_checksum_address(address)
        tx = self.w3.eth.send_transaction({"from": sender, "to": to, "value": Wei(wei)})
        self.w3.eth.wait_for_transaction_receipt(tx)

    def account(self, key: LocalAccount | str) -> ChainAccount:
        signer = key if isinstance(key, LocalAccount) else Account.from_key(key)
        return ChainAccount(self, signer)

    def params(self) -> ProtocolParams:
        """The deployed protocol parameters, read back from the contracts."""
        s, st, d = self.stakes.functions, self.settlement.functions, self.disputes.functions
        return ProtocolParams(
            token_supply=int(self.token.functions.totalSupply().call()),
            min_node_stake=int(s.minNodeStake().call()),
            min_verifier_stake=int(s.minVerifierStake().call()),
            verifier_lock=int(s.verifierLock().call()),
            dispute_bond=int(s.disputeBond().call()),
            unbonding_delay=int(s.unbondingDelay().call()),
            attest_window=int(st.attestWindow().call()),
            challenge_window=int(st.challengeWindow().call()),
            vote_window=int(d.voteWindow().call()),
            committee_size=int(d.committeeSize().call()),
            slash_reward_bps=int(s.slashRewardBps().call()),
            committee_reward_bps=int(s.committeeRewardBps().call()),
            draw_lag=int(s.drawLag().call()),
            quorum=int(d.quorum().call()),
        )


def wait_until(predicate: Callable[[], bool], chain: Chain, blocks: int) -> None:
    """On a dev chain, mine until ``predicate`` holds (at most ``blocks`` blocks)."""
    for _ in range(blocks):
        if predicate():
            return
        chain.mine(1)
    if not predicate():
        raise ChainError(f"condition not reached within {blocks} blocks")
