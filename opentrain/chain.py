"""The chain client: deploys the contracts and wraps every call the roles make.

One class talks to the in-process EVM (web3.py's ``EthereumTesterProvider`` on py-evm, the
embedded default) and to any JSON-RPC endpoint (a Hardhat node locally, an L2 in production).
Transactions are signed locally by the caller's key; a revert is decoded into the contract's
custom error and raised as one clear line.

Five contracts (see contracts/README.md): ``StakeRegistry`` is the vault (stakes, escrow,
credits), ``JobMarket`` the jobs, slots, contributions and aggregates, ``Settlement`` the seeds,
verdicts and payouts, ``Disputes`` the committees. ``ChainAccount`` has one method per call a
role makes; the module-level ``*_info`` functions read typed snapshots anyone can check.
"""

from __future__ import annotations

import ast
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import IntEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_utils import function_signature_to_4byte_selector
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError
from web3.logs import DISCARD
from web3.types import TxReceipt, Wei

from opentrain.settings import IN_PROCESS
from opentrain.tx import RpcUnavailable, TxSender, with_backoff

CONTRACT_NAMES = ("TrainToken", "StakeRegistry", "JobMarket", "Settlement", "Disputes")
TOKEN = 10**18
IN_PROCESS_GAS = 6_000_000
LOSS_SCALE = 1_000_000  # validation losses travel on-chain as loss * 1e6


class ChainError(RuntimeError):
    """A failed chain call, already explained in one line."""


# -- enums of contracts/interfaces/Types.sol ---------------------------------------------------


class JobStatus(IntEnum):
    NONE = 0
    OPEN = 1
    COMPLETED = 2
    CANCELLED = 3


class SlotStatus(IntEnum):
    OPEN = 0
    CLAIMED = 1
    SUBMITTED = 2
    ACCEPTED = 3


class ContributionStatus(IntEnum):
    NONE = 0
    SUBMITTED = 1
    ACCEPTED = 2
    REJECTED = 3


class Verdict(IntEnum):
    NONE = 0
    PASS = 1
    FAIL = 2


class Phase(IntEnum):
    """Where a contribution stands in Settlement."""

    NONE = 0
    ASSIGNED = 1
    DISPUTED = 2
    ACCEPTED = 3
    REJECTED = 4


class AggregateStatus(IntEnum):
    NONE = 0
    PENDING = 1
    DISPUTED = 2
    FINAL = 3


class DisputeKind(IntEnum):
    NONE = 0
    CONTEST = 1  # the node contests a fail
    CHALLENGE = 2  # a third party challenges a pass
    AGGREGATE = 3  # a third party challenges a round aggregate


class DisputeStatus(IntEnum):
    NONE = 0
    AWAITING_COMMITTEE = 1
    VOTING = 2
    RESOLVED = 3


class Ruling(IntEnum):
    NONE = 0
    VALID = 1
    INVALID = 2
    UNDECIDED = 3


# -- artifacts and revert decoding ---------------------------------------------------------------


@cache
def artifact(name: str) -> dict[str, Any]:
    """ABI and bytecode of a contract, shipped inside the package (no Node.js needed)."""
    text = resources.files("opentrain.artifacts").joinpath(f"{name}.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _abi_type(item: dict[str, Any]) -> str:
    """The canonical ABI type of an input, tuples spelled out (for selectors and decoding)."""
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


@cache
def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    """selector -> (error name, argument types, argument names), over every contract's ABI."""
    table: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for name in CONTRACT_NAMES:
        for item in artifact(name)["abi"]:
            if item["type"] != "error":
                continue
            types = [_abi_type(i) for i in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table[selector] = (item["name"], types, [i["name"] for i in item["inputs"]])
    return table


def decode_revert(data: str | bytes) -> str:
    """Turn revert data into ``ErrorName(arg=value, ...)``; unknown data stays hex."""
    raw = HexBytes(data)
    entry = _error_table().get(bytes(raw[:4]))
    if entry is None:
        return f"revert 0x{raw.hex()}" if raw else "reverted without a reason"
    name, types, names = entry
    values = abi_decode(types, bytes(raw[4:]))
    shown = ", ".join(f"{n}={_show(v)}" for n, v in zip(names, values, strict=True))
    return f"{name}({shown})"


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


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
    """Deployment-time parameters (token base units, blocks, basis points).

    ``unbonding_delay`` must exceed ``attest_window + challenge_window + 256 + vote_window``
    (the longest a verdict can stay open); ``Disputes`` refuses to deploy otherwise.
    """

    token_supply: int = 1_000_000_000 * TOKEN
    min_node_stake: int = 100 * TOKEN
    min_verifier_stake: int = 100 * TOKEN
    verifier_lock: int = 50 * TOKEN
    dispute_bond: int = 20 * TOKEN
    unbonding_delay: int = 400
    attest_window: int = 20
    challenge_window: int = 5
    vote_window: int = 20
    committee_size: int = 3
    slash_reward_bps: int = 5_000
    committee_reward_bps: int = 2_000


def connect(rpc_url: str) -> Web3:
    """A Web3 on the in-process EVM (``inprocess``) or on a JSON-RPC endpoint."""
    if rpc_url == IN_PROCESS:
        from web3 import EthereumTesterProvider

        return Web3(EthereumTesterProvider())
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

    def mine(self, blocks: int) -> None:
        """Advance a development chain by ``blocks`` empty blocks (windows pass in tests/demo)."""
        if blocks <= 0:
            return
        provider = self.w3.provider
        tester = getattr(provider, "ethereum_tester", None)
        if tester is not None:
            tester.mine_blocks(blocks)
        else:
            self.w3.provider.make_request("hardhat_mine", [hex(blocks)])  # type: ignore[arg-type]

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
        )


class ChainAccount:
    """One signer's view of the protocol: every write is signed locally, nonces managed here."""

    def __init__(
        self, chain: Chain, signer: LocalAccount, journal: Path | None = None, attempts: int = 8
    ) -> None:
        self.chain = chain
        self.signer = signer
        self.address: str = signer.address
        # one nonce manager and journal per signer: no transaction lost or sent twice
        self.sender = TxSender(chain.w3, signer, journal, attempts=attempts)
        self._retry = with_backoff(attempts)

    def __repr__(self) -> str:  # never shows the key
        return f"ChainAccount({self.address})"

    # -- transactions ---------------------------------------------------------------------

    def send(self, fn: ContractFunction | ContractConstructor, what: str) -> TxReceipt:
        """Simulate (which surfaces reverts with their reason), sign, journal, send, wait, check.

        An unreachable RPC is retried with backoff; the signed bytes are journaled before they
        are broadcast, so a retry or a restart re-sends the same transaction, never a new one."""
        with self.chain._lock:
            try:
                tx = self._retry(self._build)(fn)
            except (
                ContractCustomError,
                ContractPanicError,
                ContractLogicError,
                TransactionFailed,
            ) as exc:
                raise ChainError(f"{what} refused: {_explain(exc)}") from None
            except RpcUnavailable as exc:
                raise ChainError(f"{what}: {exc}") from None
            try:
                receipt = self.sender.sign_and_send(tx, what)
            except RpcUnavailable as exc:
                raise ChainError(f"{what}: {exc}") from None
        if receipt["status"] != 1:
            raise ChainError(f"{what} reverted in block {receipt['blockNumber']}")
        return receipt

    def _build(self, fn: ContractFunction | ContractConstructor) -> dict[str, Any]:
        if isinstance(fn, ContractFunction):  # constructors cannot be called
            fn.call({"from": self.address}, block_identifier="pending")
        base: dict[str, Any] = {"from": self.address, "nonce": self.sender.next_nonce()}
        if self.chain.in_process:
            base["gas"] = IN_PROCESS_GAS  # estimation re-executes many times on py-evm
        return dict(fn.build_transaction(base))  # type: ignore[arg-type]

    def deploy(self, name: str, *args: Any) -> str:
        data = artifact(name)
        factory = self.chain.w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
        receipt = self.send(factory.constructor(*args), f"deploy {name}")
        return str(receipt["contractAddress"])

    # -- token ------------------------------------------------------------------------------

    def balance(self, address: str | None = None) -> int:
        return int(self.chain.token.functions.balanceOf(address or self.address).call())

    def transfer(self, to: str, amount: int) -> TxReceipt:
        return self.send(self.chain.token.functions.transfer(to, amount), "transfer")

    def approve(self, spender: str, amount: int) -> TxReceipt:
        return self.send(self.chain.token.functions.approve(spender, amount), "approve")

    # -- stake (StakeRegistry: the vault) -------------------------------------------------

    def stake(self, amount: int) -> TxReceipt:
        self.approve(self.chain.stakes.address, amount)
        return self.send(self.chain.stakes.functions.stake(amount), "stake")

    def request_unbond(self, amount: int) -> TxReceipt:
        """Move ``amount`` of free stake to unbonding (withdrawable after the delay)."""
        return self.send(self.chain.stakes.functions.requestUnbond(amount), "requestUnbond")

    def withdraw_unbonded(self) -> TxReceipt:
        """Withdraw all unbonding stake once its ready block is reached."""
        return self.send(self.chain.stakes.functions.withdrawUnbonded(), "withdrawUnbonded")

    def register_verifier(self) -> TxReceipt:
        return self.send(self.chain.stakes.functions.registerVerifier(), "registerVerifier")

    def deregister_verifier(self) -> TxReceipt:
        return self.send(self.chain.stakes.functions.deregisterVerifier(), "deregisterVerifier")

    def stake_of(self, address: str | None = None) -> int:
        return int(self.chain.stakes.functions.stakeOf(address or self.address).call())

    def locked_of(self, address: str | None = None) -> int:
        return int(self.chain.stakes.functions.lockedOf(address or self.address).call())

    def free_stake_of(self, address: str | None = None) -> int:
        return int(self.chain.stakes.functions.freeStakeOf(address or self.address).call())

    def unbonding_of(self, address: str | None = None) -> tuple[int, int]:
        """(amount unbonding, block from which it can be withdrawn)."""
        amount, ready = self.chain.stakes.functions.unbondingOf(address or self.address).call()
        return int(amount), int(ready)

    def withdraw(self) -> TxReceipt:
        """Withdraw every credited token (rewards, fees, slash shares) from the vault."""
        return self.send(self.chain.stakes.functions.withdraw(), "withdraw")

    def credits(self, address: str | None = None) -> int:
        return int(self.chain.stakes.functions.creditsOf(address or self.address).call())

    # -- jobs and slots (JobMarket) -----------------------------------------------------------

    def create_job(self, params: JobParams, spec_cid: str, initial_model_cid: str) -> int:
        """Approve the escrow to JobMarket (it moves it into the StakeRegistry vault), create."""
        self.approve(self.chain.market.address, params.escrow)
        fn = self.chain.market.functions.createJob(params.as_tuple(), spec_cid, initial_model_cid)
        receipt = self.send(fn, "createJob")
        event = self.chain.market.events.JobCreated().process_receipt(receipt, errors=DISCARD)[0]
        return int(event["args"]["jobId"])

    def cancel_job(self, job_id: int) -> TxReceipt:
        """Stop new claims on the sponsor's job; in-flight work still settles."""
        return self.send(self.chain.market.functions.cancelJob(job_id), f"cancelJob({job_id})")

    def refund(self, job_id: int) -> TxReceipt:
        """Take back every escrowed token of a finished or cancelled job nothing can still earn."""
        return self.send(self.chain.market.functions.refund(job_id), f"refund(job {job_id})")

    def refundable(self, job_id: int) -> int:
        return int(self.chain.market.functions.refundable(job_id).call())

    def claim_slot(self, job_id: int, round_: int, slot: int) -> TxReceipt:
        fn = self.chain.market.functions.claimSlot(job_id, round_, slot)
        return self.send(fn, f"claimSlot(job {job_id}, round {round_}, slot {slot})")

    def expire_claim(self, job_id: int, round_: int, slot: int) -> TxReceipt:
        """Release a claim past its deadline (reopens the slot, unlocks the node's stake)."""
        fn = self.chain.market.functions.expireClaim(job_id, round_, slot)
        return self.send(fn, f"expireClaim(job {job_id}, round {round_}, slot {slot})")

    def submit_contribution(
        self,
        job_id: int,
        round_: int,
        slot: int,
        output_digest: bytes,
        trace_root: bytes,
        output_cid: str,
        manifest_cid: str,
    ) -> int:
        fn = self.chain.market.functions.submitContribution(
            job_id, round_, slot, output_digest, trace_root, output_cid, manifest_cid
        )
        receipt = self.send(fn, f"submitContribution(job {job_id}, slot {slot})")
        event = self.chain.market.events.ContributionSubmitted().process_receipt(
            receipt, errors=DISCARD
        )[0]
        return int(event["args"]["contributionId"])

    # -- aggregates ---------------------------------------------------------------------------

    def post_aggregate(
        self,
        job_id: int,
        round_: int,
        model_digest: bytes,
        model_cid: str,
        loss: float,
        *,
        wait_final: bool | None = None,
    ) -> TxReceipt:
        """Propose G_{round+1} (locks the dispute bond); returns the posting's receipt.

        The aggregate becomes the next round's model only after its challenge window. With
        ``wait_final`` (the default on a development chain, where nothing else mines blocks)
        this call sees it through: it waits out the window (mining on a dev chain, polling
        elsewhere) and finalizes it; a dispute opened meanwhile raises ``ChainError``. Pass
        ``wait_final=False`` to return right after posting and call ``finalize_aggregate``
        later.
        """
        fn = self.chain.market.functions.postAggregate(
            job_id, round_, model_digest, model_cid, round(loss * LOSS_SCALE)
        )
        receipt = self.send(fn, f"postAggregate(job {job_id}, round {round_})")
        if self.chain.is_dev_chain if wait_final is None else wait_final:
            window = int(self.chain.market.functions.challengeWindow().call())
            self.chain.wait_for_block(int(receipt["blockNumber"]) + window)
            self.finalize_aggregate(job_id, round_)
        return receipt

    def finalize_aggregate(self, job_id: int, round_: int) -> TxReceipt:
        """Make a pending aggregate final after its window: the job moves to the next round."""
        fn = self.chain.market.functions.finalizeAggregate(job_id, round_)
        return self.send(fn, f"finalizeAggregate(job {job_id}, round {round_})")

    # -- settlement ---------------------------------------------------------------------------

    def record_seed(self, contribution_id: int) -> TxReceipt:
        fn = self.chain.settlement.functions.recordSeed(contribution_id)
        return self.send(fn, f"recordSeed({contribution_id})")

    def attest(self, contribution_id: int, passed: bool, report_cid: str) -> TxReceipt:
        fn = self.chain.settlement.functions.attest(contribution_id, passed, report_cid)
        return self.send(fn, f"attest({contribution_id})")

    def claim_attestation(self, contribution_id: int) -> TxReceipt:
        """Take over an assignment whose verifier missed its attest window (it gets slashed)."""
        fn = self.chain.settlement.functions.claimAttestation(contribution_id)
        return self.send(fn, f"claimAttestation({contribution_id})")

    def finalize(self, contribution_id: int) -> TxReceipt:
        fn = self.chain.settlement.functions.finalize(contribution_id)
        return self.send(fn, f"finalize({contribution_id})")

    # -- disputes -------------------------------------------------------------------------------

    def _opened(self, receipt: TxReceipt) -> int:
        events = self.chain.disputes.events.DisputeOpened().process_receipt(receipt, errors=DISCARD)
        return int(events[0]["args"]["disputeId"])

    def contest(self, contribution_id: int) -> int:
        """As the node, contest a fail with a bond; returns the dispute id."""
        fn = self.chain.disputes.functions.disputeContribution(contribution_id)
        return self._opened(self.send(fn, f"contest({contribution_id})"))

    def challenge(self, contribution_id: int) -> int:
        """As a third party, challenge a pass with a bond; returns the dispute id."""
        fn = self.chain.disputes.functions.disputeContribution(contribution_id)
        return self._opened(self.send(fn, f"challenge({contribution_id})"))

    def challenge_aggregate(
        self, job_id: int, round_: int, model_digest: bytes, model_cid: str, loss: float
    ) -> int:
        """Challenge a pending aggregate, naming the right one; returns the dispute id."""
        fn = self.chain.disputes.functions.challengeAggregate(
            job_id, round_, model_digest, model_cid, round(loss * LOSS_SCALE)
        )
        return self._opened(self.send(fn, f"challengeAggregate(job {job_id}, round {round_})"))

    def draw_committee(self, dispute_id: int) -> list[str]:
        """Draw a dispute's committee (anyone may); returns the members (empty on a reset)."""
        fn = self.chain.disputes.functions.drawCommittee(dispute_id)
        receipt = self.send(fn, f"drawCommittee({dispute_id})")
        events = self.chain.disputes.events.CommitteeDrawn().process_receipt(
            receipt, errors=DISCARD
        )
        return [str(m) for m in events[0]["args"]["members"]] if events else []

    def vote(self, dispute_id: int, valid: bool, report_cid: str) -> TxReceipt:
        """As a committee member: ``valid`` means the work (or the aggregate) is right."""
        fn = self.chain.disputes.functions.vote(dispute_id, valid, report_cid)
        return self.send(fn, f"vote({dispute_id})")

    def resolve_dispute(self, dispute_id: int) -> Ruling:
        """Settle a dispute after its vote window (anyone may); returns the ruling."""
        fn = self.chain.disputes.functions.resolve(dispute_id)
        receipt = self.send(fn, f"resolve({dispute_id})")
        event = self.chain.disputes.events.DisputeResolved().process_receipt(
            receipt, errors=DISCARD
        )[0]
        return Ruling(int(event["args"]["ruling"]))

    # -- guardian -----------------------------------------------------------------------------

    def pause_market(self) -> TxReceipt:
        return self.send(self.chain.market.functions.pause(), "pause")

    def unpause_market(self) -> TxReceipt:
        return self.send(self.chain.market.functions.unpause(), "unpause")


def _tester_revert_data(arg: object) -> bytes:
    """eth-tester reports revert data as bytes or as the text ``execution reverted: b'...'``."""
    if isinstance(arg, bytes):
        return arg
    text = str(arg)
    prefix = "execution reverted: "
    if text.startswith(prefix + "b'") or text.startswith(prefix + 'b"'):
        value = ast.literal_eval(text[len(prefix) :])
        if isinstance(value, bytes):
            return value
    return b""


def _explain(exc: Exception) -> str:
    data = getattr(exc, "data", None)
    if isinstance(exc, ContractCustomError) and isinstance(data, str | bytes):
        return decode_revert(data)
    if isinstance(exc, TransactionFailed) and exc.args:
        return decode_revert(_tester_revert_data(exc.args[0]))
    message = getattr(exc, "message", None) or str(exc)
    return str(message).splitlines()[0]


@dataclass(frozen=True)
class JobParams:
    """Mirror of the Solidity ``JobParams`` struct.

    ``cheat_fraction_bps`` is the fraction f of segments the sponsor assumes a cheat fakes
    (basis points): ``createJob`` refuses the job unless ``p * (min_node_stake + reward) >
    reward`` for the detection probability ``p = 1 - (1 - f)^sample_count``
    (see ``detection_probability``).
    """

    spec_digest: bytes
    initial_model_digest: bytes
    rounds: int
    slots_per_round: int
    num_segments: int
    sample_count: int
    reward_per_slot: int
    verifier_fee: int
    claim_timeout: int = 1_000
    cheat_fraction_bps: int = 1_000

    @property
    def escrow(self) -> int:
        return self.rounds * self.slots_per_round * (self.reward_per_slot + self.verifier_fee)

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.spec_digest,
            self.initial_model_digest,
            self.rounds,
            self.slots_per_round,
            self.num_segments,
            self.sample_count,
            self.reward_per_slot,
            self.verifier_fee,
            self.claim_timeout,
            self.cheat_fraction_bps,
        )


WAD = 10**18


def _mul_up(a: int, b: int) -> int:
    return (a * b + WAD - 1) // WAD


def detection_probability(cheat_fraction_bps: int, samples: int) -> int:
    """``p = 1 - (1 - f)^k`` in WAD (1e18), exactly as ``contracts/libraries/Economics.sol``
    computes it: (1 - f)^k by square-and-multiply with every product rounded up, so p is
    rounded down (the acceptance check errs on the side of refusing)."""
    base = (10_000 - cheat_fraction_bps) * (WAD // 10_000)
    qk = WAD
    k = samples
    while k > 0:
        if k & 1:
            qk = _mul_up(qk, base)
        base = _mul_up(base, base)
        k >>= 1
    return WAD - qk


def cheating_loses(cheat_fraction_bps: int, samples: int, stake: int, reward: int) -> bool:
    """The ``createJob`` acceptance rule: ``p * (stake + reward) > reward`` in WAD."""
    return detection_probability(cheat_fraction_bps, samples) * (stake + reward) > reward * WAD


def deploy(w3: Web3, deployer: LocalAccount, params: ProtocolParams = ProtocolParams()) -> Chain:
    """Deploy and wire the five contracts; the deployer holds the whole token supply."""
    bootstrap = ChainAccount(_BootstrapChain(w3), deployer)  # type: ignore[arg-type]
    start = int(w3.eth.block_number)
    token = bootstrap.deploy("TrainToken", deployer.address, params.token_supply)
    stakes_addr = bootstrap.deploy(
        "StakeRegistry",
        token,
        deployer.address,
        params.min_node_stake,
        params.min_verifier_stake,
        params.verifier_lock,
        params.dispute_bond,
        params.unbonding_delay,
        params.slash_reward_bps,
        params.committee_reward_bps,
    )
    market_addr = bootstrap.deploy(
        "JobMarket", stakes_addr, deployer.address, params.challenge_window
    )
    settlement_addr = bootstrap.deploy(
        "Settlement", stakes_addr, market_addr, deployer.address, params.attest_window
    )
    disputes_addr = bootstrap.deploy(
        "Disputes",
        stakes_addr,
        market_addr,
        settlement_addr,
        deployer.address,
        params.committee_size,
        params.vote_window,
    )
    deployment = Deployment(
        chain_id=int(w3.eth.chain_id),
        block=start,
        TrainToken=token,
        StakeRegistry=stakes_addr,
        JobMarket=market_addr,
        Settlement=settlement_addr,
        Disputes=disputes_addr,
    )
    chain = Chain(w3, deployment)
    _wire_roles(chain.account(deployer), chain)
    return chain


def _wire_roles(admin: ChainAccount, chain: Chain) -> None:
    """Grant each contract exactly the roles contracts/README.md lists."""
    stakes, market, settlement = (
        chain.stakes.functions,
        chain.market.functions,
        chain.settlement.functions,
    )
    locker, slasher, treasurer = (
        stakes.LOCKER_ROLE().call(),
        stakes.SLASHER_ROLE().call(),
        stakes.TREASURER_ROLE().call(),
    )
    grants = [
        (stakes, locker, chain.market.address, "LOCKER_ROLE to JobMarket"),
        (stakes, treasurer, chain.market.address, "TREASURER_ROLE to JobMarket"),
        (stakes, locker, chain.settlement.address, "LOCKER_ROLE to Settlement"),
        (stakes, slasher, chain.settlement.address, "SLASHER_ROLE to Settlement"),
        (stakes, treasurer, chain.settlement.address, "TREASURER_ROLE to Settlement"),
        (stakes, locker, chain.disputes.address, "LOCKER_ROLE to Disputes"),
        (stakes, slasher, chain.disputes.address, "SLASHER_ROLE to Disputes"),
        (market, market.SETTLEMENT_ROLE().call(), chain.settlement.address, "SETTLEMENT_ROLE"),
        (market, market.DISPUTES_ROLE().call(), chain.disputes.address, "market DISPUTES_ROLE"),
        (settlement, settlement.DISPUTES_ROLE().call(), chain.disputes.address, "DISPUTES_ROLE"),
    ]
    for functions, role, grantee, what in grants:
        admin.send(functions.grantRole(role, grantee), f"grant {what}")


class _BootstrapChain:
    """Just enough of ``Chain`` to deploy before any address exists."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self._lock = threading.Lock()
        self.in_process = getattr(w3.provider, "ethereum_tester", None) is not None


def wait_until(predicate: Callable[[], bool], chain: Chain, blocks: int) -> None:
    """On a dev chain, mine until ``predicate`` holds (at most ``blocks`` blocks)."""
    for _ in range(blocks):
        if predicate():
            return
        chain.mine(1)
    if not predicate():
        raise ChainError(f"condition not reached within {blocks} blocks")


# -- typed snapshots -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobInfo:
    """What the chain says about a job: parameters from storage, CIDs from its creation event."""

    job_id: int
    sponsor: str
    params: JobParams
    spec_cid: str
    initial_model_cid: str
    escrow: int
    status: JobStatus
    current_round: int
    current_model_digest: bytes
    accepted_in_round: int = 0
    claims_open: int = 0


@dataclass(frozen=True)
class ContributionInfo:
    """A contribution's stored record plus the CIDs of its submission event."""

    contribution_id: int
    job_id: int
    round: int
    slot: int
    node: str
    output_digest: bytes
    trace_root: bytes
    output_cid: str
    manifest_cid: str
    submit_block: int
    stake_locked: int
    status: ContributionStatus


@dataclass(frozen=True)
class VerificationInfo:
    """``Settlement.verification``: seed, assigned verifier, verdict, phase and deadlines."""

    seed: bytes
    seed_block: int
    seed_recorded_at: int
    verifier: str
    verdict: Verdict
    attested_at: int
    finalized: bool
    phase: Phase = Phase.NONE
    attest_deadline: int = 0
    challenge_deadline: int = 0


@dataclass(frozen=True)
class StakeInfo:
    """An account's position in the StakeRegistry vault."""

    address: str
    staked: int
    locked: int
    free: int
    credits: int
    unbonding: int
    unbond_ready_block: int
    is_verifier: bool


@dataclass(frozen=True)
class AggregateInfo:
    """A round's aggregate G_{round+1}: posted, disputed or final."""

    job_id: int
    round: int
    status: AggregateStatus
    poster: str
    posted_block: int
    model_digest: bytes
    validation_loss: float
    model_cid: str
    challenge_deadline: int


@dataclass(frozen=True)
class DisputeInfo:
    """``Disputes.dispute``: parties, committee, tally and ruling."""

    dispute_id: int
    kind: DisputeKind
    status: DisputeStatus
    ruling: Ruling
    contribution_id: int
    job_id: int
    round: int
    disputer: str
    node: str
    defendant: str
    seed_block: int
    seed: bytes
    vote_deadline: int
    members: tuple[str, ...]
    valid_votes: int
    invalid_votes: int


def _single_event(event: Any, block: int, **filters: Any) -> Any:
    """The one event matching ``filters`` in ``block`` (the contracts record where to look)."""
    logs = event.get_logs(from_block=block, to_block=block, argument_filters=filters)
    if not logs:
        raise ChainError(f"no {event.event_name} event for {filters}")
    return logs[0]["args"]


def job_info(chain: Chain, job_id: int) -> JobInfo:
    """Read a job from storage and its JobCreated event."""
    state = chain.market.functions.jobState(job_id).call()
    sponsor, status, current_round, escrow, model_digest, created_block, accepted, open_ = state
    if status == 0:
        raise ChainError(f"job {job_id} does not exist")
    args = _single_event(chain.market.events.JobCreated, created_block, jobId=job_id)
    p = args["params"]
    params = JobParams(
        spec_digest=bytes(p["specDigest"]),
        initial_model_digest=bytes(p["initialModelDigest"]),
        rounds=p["rounds"],
        slots_per_round=p["slotsPerRound"],
        num_segments=p["numSegments"],
        sample_count=p["sampleCount"],
        reward_per_slot=p["rewardPerSlot"],
        verifier_fee=p["verifierFee"],
        claim_timeout=p["claimTimeout"],
        cheat_fraction_bps=p["cheatFractionBps"],
    )
    return JobInfo(
        job_id=job_id,
        sponsor=sponsor,
        params=params,
        spec_cid=args["specCid"],
        initial_model_cid=args["initialModelCid"],
        escrow=int(escrow),
        status=JobStatus(int(status)),
        current_round=int(current_round),
        current_model_digest=bytes(model_digest),
        accepted_in_round=int(accepted),
        claims_open=int(open_),
    )


def contribution_info(chain: Chain, contribution_id: int) -> ContributionInfo:
    """Read a contribution from storage and its ContributionSubmitted event."""
    c = chain.market.functions.getContribution(contribution_id).call()
    node, job_id, round_, slot, submit_block, stake_locked, status, output_digest, trace_root = c
    if status == 0:
        raise ChainError(f"contribution {contribution_id} does not exist")
    args = _single_event(
        chain.market.events.ContributionSubmitted,
        submit_block,
        contributionId=contribution_id,
    )
    return ContributionInfo(
        contribution_id=contribution_id,
        job_id=int(job_id),
        round=int(round_),
        slot=int(slot),
        node=node,
        output_digest=bytes(output_digest),
        trace_root=bytes(trace_root),
        output_cid=args["outputCid"],
        manifest_cid=args["manifestCid"],
        submit_block=int(submit_block),
        stake_locked=int(stake_locked),
        status=ContributionStatus(int(status)),
    )


def verification_info(chain: Chain, contribution_id: int) -> VerificationInfo:
    v = chain.settlement.functions.verification(contribution_id).call()
    return VerificationInfo(
        seed=bytes(v[0]),
        seed_block=int(v[1]),
        seed_recorded_at=int(v[2]),
        verifier=v[3],
        verdict=Verdict(int(v[4])),
        attested_at=int(v[5]),
        finalized=bool(v[6]),
        phase=Phase(int(v[7])),
        attest_deadline=int(v[8]),
        challenge_deadline=int(v[9]),
    )


def stake_info(chain: Chain, address: str) -> StakeInfo:
    """An account's stake, locks, credits and unbonding in the vault."""
    s = chain.stakes.functions
    staked = int(s.stakeOf(address).call())
    locked = int(s.lockedOf(address).call())
    unbonding, ready = s.unbondingOf(address).call()
    return StakeInfo(
        address=address,
        staked=staked,
        locked=locked,
        free=staked - locked,
        credits=int(s.creditsOf(address).call()),
        unbonding=int(unbonding),
        unbond_ready_block=int(ready),
        is_verifier=bool(s.isVerifier(address).call()),
    )


def aggregate_info(chain: Chain, job_id: int, round_: int) -> AggregateInfo:
    """The aggregate posted for round ``round_`` of the job (status NONE when there is none)."""
    status, poster, posted, digest, loss, cid, deadline = chain.market.functions.aggregateState(
        job_id, round_
    ).call()
    return AggregateInfo(
        job_id=job_id,
        round=round_,
        status=AggregateStatus(int(status)),
        poster=poster,
        posted_block=int(posted),
        model_digest=bytes(digest),
        validation_loss=int(loss) / LOSS_SCALE,
        model_cid=cid,
        challenge_deadline=int(deadline),
    )


def dispute_info(chain: Chain, dispute_id: int) -> DisputeInfo:
    """A dispute's parties, committee, votes and ruling."""
    try:
        d = chain.disputes.functions.dispute(dispute_id).call()
    except (ContractCustomError, ContractLogicError, TransactionFailed) as exc:
        raise ChainError(f"dispute {dispute_id}: {_explain(exc)}") from None
    return DisputeInfo(
        dispute_id=dispute_id,
        kind=DisputeKind(int(d[0])),
        status=DisputeStatus(int(d[1])),
        ruling=Ruling(int(d[2])),
        contribution_id=int(d[3]),
        job_id=int(d[4]),
        round=int(d[5]),
        disputer=d[6],
        node=d[7],
        defendant=d[8],
        seed_block=int(d[9]),
        seed=bytes(d[10]),
        vote_deadline=int(d[11]),
        members=tuple(str(m) for m in d[12]),
        valid_votes=int(d[13]),
        invalid_votes=int(d[14]),
    )


def round_model_cid(chain: Chain, job: JobInfo, round_: int) -> tuple[str, bytes]:
    """CID and digest of the global checkpoint G_round: G_0 from the job, later ones from the
    final aggregate of the round before (a pending or disputed aggregate is not G_round yet)."""
    if round_ == 0:
        return job.initial_model_cid, job.params.initial_model_digest
    block = int(chain.market.functions.aggregateBlock(job.job_id, round_ - 1).call())
    if block == 0:
        raise ChainError(f"job {job.job_id} has no final aggregate for round {round_ - 1}")
    logs = chain.market.events.RoundAggregated.get_logs(
        from_block=block, to_block=block, argument_filters={"jobId": job.job_id}
    )
    for log in logs:
        if int(log["args"]["round"]) == round_ - 1:
            return log["args"]["modelCid"], bytes(log["args"]["modelDigest"])
    raise ChainError(f"job {job.job_id} has no final aggregate for round {round_ - 1}")
