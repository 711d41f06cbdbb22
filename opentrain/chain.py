"""The chain client: deploys the contracts and wraps every call the roles make.

One class talks to the in-process EVM (web3.py's ``EthereumTesterProvider`` on py-evm, the
embedded default) and to any JSON-RPC endpoint (a Hardhat node locally, an L2 in production).
Transactions are signed locally by the caller's key; a revert is decoded into the contract's
custom error and raised as one clear line.
"""

from __future__ import annotations

import ast
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from eth_tester.exceptions import TransactionFailed
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError
from web3.logs import DISCARD
from web3.types import TxReceipt

from opentrain.settings import IN_PROCESS

CONTRACT_NAMES = ("TrainToken", "StakeRegistry", "JobMarket", "Settlement")
TOKEN = 10**18
IN_PROCESS_GAS = 6_000_000


class ChainError(RuntimeError):
    """A failed chain call, already explained in one line."""


@cache
def artifact(name: str) -> dict[str, Any]:
    """ABI and bytecode of a contract, shipped inside the package (no Node.js needed)."""
    text = resources.files("opentrain.artifacts").joinpath(f"{name}.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    """selector -> (error name, argument types, argument names), over every contract's ABI."""
    table: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for name in CONTRACT_NAMES:
        for item in artifact(name)["abi"]:
            if item["type"] != "error":
                continue
            types = [i["type"] for i in item["inputs"]]
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


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live; written to ``deployment.json`` for the other roles."""

    chain_id: int
    block: int
    TrainToken: str
    StakeRegistry: str
    JobMarket: str
    Settlement: str

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise ChainError(f"no deployment at {path}: run `opentrain chain deploy` first") from None
        except (TypeError, ValueError) as exc:
            raise ChainError(f"deployment file {path} is malformed: {exc}") from None


@dataclass(frozen=True)
class ProtocolParams:
    """Deployment-time parameters (token base units and blocks)."""

    token_supply: int = 1_000_000_000 * TOKEN
    min_node_stake: int = 100 * TOKEN
    min_verifier_stake: int = 100 * TOKEN
    unbonding_delay: int = 100
    attest_window: int = 20
    challenge_window: int = 5
    slash_reward_bps: int = 5_000


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
        provider = self.w3.provider
        tester = getattr(provider, "ethereum_tester", None)
        if tester is not None:
            tester.mine_blocks(blocks)
        else:
            self.w3.provider.make_request("hardhat_mine", [hex(blocks)])  # type: ignore[arg-type]

    def fund_eth(self, address: str, wei: int) -> None:
        """Give gas money from the dev chain's unlocked, prefunded first account."""
        if not self.is_dev_chain:
            raise ChainError("funding with ether only works on a development chain")
        sender = self.w3.eth.accounts[0]
        tx = self.w3.eth.send_transaction({"from": sender, "to": address, "value": wei})
        self.w3.eth.wait_for_transaction_receipt(tx)

    def account(self, key: LocalAccount | str) -> ChainAccount:
        signer = key if isinstance(key, LocalAccount) else Account.from_key(key)
        return ChainAccount(self, signer)


class ChainAccount:
    """One signer's view of the protocol: every write is signed locally, nonces managed here."""

    def __init__(self, chain: Chain, signer: LocalAccount) -> None:
        self.chain = chain
        self.signer = signer
        self.address: str = signer.address
        self._nonce: int | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"ChainAccount({self.address})"

    # -- transactions ---------------------------------------------------------------------

    def send(self, fn: ContractFunction, what: str) -> TxReceipt:
        """Estimate (which surfaces reverts with their reason), sign, send, wait, check."""
        w3 = self.chain.w3
        with self.chain._lock:
            try:
                if isinstance(fn, ContractFunction):  # constructors cannot be called
                    fn.call({"from": self.address}, block_identifier="pending")
                base: dict[str, Any] = {"from": self.address, "nonce": self._next_nonce()}
                if self.chain.in_process:
                    base["gas"] = IN_PROCESS_GAS  # estimation re-executes many times on py-evm
                tx = fn.build_transaction(base)  # type: ignore[arg-type]
            except (ContractCustomError, ContractPanicError, ContractLogicError, TransactionFailed) as exc:
                self._nonce = None
                raise ChainError(f"{what} refused: {_explain(exc)}") from None
            signed = self.signer.sign_transaction(tx)
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            self._nonce = int(tx["nonce"]) + 1
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise ChainError(f"{what} reverted in block {receipt['blockNumber']}")
        return receipt

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = int(self.chain.w3.eth.get_transaction_count(self.address, "pending"))
        return self._nonce

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

    # -- stake ------------------------------------------------------------------------------

    def stake(self, amount: int) -> TxReceipt:
        self.approve(self.chain.stakes.address, amount)
        return self.send(self.chain.stakes.functions.stake(amount), "stake")

    def register_verifier(self) -> TxReceipt:
        return self.send(self.chain.stakes.functions.registerVerifier(), "registerVerifier")

    def stake_of(self, address: str | None = None) -> int:
        return int(self.chain.stakes.functions.stakeOf(address or self.address).call())

    def locked_of(self, address: str | None = None) -> int:
        return int(self.chain.stakes.functions.lockedOf(address or self.address).call())

    # -- jobs and slots -----------------------------------------------------------------------

    def create_job(self, params: JobParams, spec_cid: str, initial_model_cid: str) -> int:
        escrow = params.escrow
        self.approve(self.chain.market.address, escrow)
        fn = self.chain.market.functions.createJob(params.as_tuple(), spec_cid, initial_model_cid)
        receipt = self.send(fn, "createJob")
        event = self.chain.market.events.JobCreated().process_receipt(receipt, errors=DISCARD)[0]
        return int(event["args"]["jobId"])

    def claim_slot(self, job_id: int, round_: int, slot: int) -> TxReceipt:
        fn = self.chain.market.functions.claimSlot(job_id, round_, slot)
        return self.send(fn, f"claimSlot(job {job_id}, round {round_}, slot {slot})")

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
        event = self.chain.market.events.ContributionSubmitted().process_receipt(receipt, errors=DISCARD)[0]
        return int(event["args"]["contributionId"])

    def post_aggregate(
        self, job_id: int, round_: int, model_digest: bytes, model_cid: str, loss: float
    ) -> TxReceipt:
        fn = self.chain.market.functions.postAggregate(
            job_id, round_, model_digest, model_cid, round(loss * 1e6)
        )
        return self.send(fn, f"postAggregate(job {job_id}, round {round_})")

    def refund(self, job_id: int) -> TxReceipt:
        return self.send(self.chain.market.functions.refund(job_id), f"refund(job {job_id})")

    # -- settlement -------------------------------------------------------------------------

    def record_seed(self, contribution_id: int) -> TxReceipt:
        fn = self.chain.settlement.functions.recordSeed(contribution_id)
        return self.send(fn, f"recordSeed({contribution_id})")

    def attest(self, contribution_id: int, passed: bool, report_cid: str) -> TxReceipt:
        fn = self.chain.settlement.functions.attest(contribution_id, passed, report_cid)
        return self.send(fn, f"attest({contribution_id})")

    def finalize(self, contribution_id: int) -> TxReceipt:
        fn = self.chain.settlement.functions.finalize(contribution_id)
        return self.send(fn, f"finalize({contribution_id})")

    def withdraw(self) -> TxReceipt:
        return self.send(self.chain.settlement.functions.withdraw(), "withdraw")

    def credits(self, address: str | None = None) -> int:
        return int(self.chain.settlement.functions.credits(address or self.address).call())


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
    """Mirror of the Solidity ``JobParams`` struct."""

    spec_digest: bytes
    initial_model_digest: bytes
    rounds: int
    slots_per_round: int
    num_segments: int
    sample_count: int
    reward_per_slot: int
    verifier_fee: int
    claim_timeout: int = 1_000

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
        )


def deploy(w3: Web3, deployer: LocalAccount, params: ProtocolParams = ProtocolParams()) -> Chain:
    """Deploy and wire the four contracts; the deployer holds the whole token supply."""
    bootstrap = ChainAccount(_BootstrapChain(w3), deployer)  # type: ignore[arg-type]
    start = int(w3.eth.block_number)
    token = bootstrap.deploy("TrainToken", deployer.address, params.token_supply)
    stakes_addr = bootstrap.deploy(
        "StakeRegistry",
        token,
        deployer.address,
        params.min_node_stake,
        params.min_verifier_stake,
        params.unbonding_delay,
    )
    market_addr = bootstrap.deploy("JobMarket", token, stakes_addr, deployer.address)
    settlement_addr = bootstrap.deploy(
        "Settlement",
        token,
        stakes_addr,
        market_addr,
        deployer.address,
        params.attest_window,
        params.challenge_window,
        params.slash_reward_bps,
    )
    deployment = Deployment(
        chain_id=int(w3.eth.chain_id),
        block=start,
        TrainToken=token,
        StakeRegistry=stakes_addr,
        JobMarket=market_addr,
        Settlement=settlement_addr,
    )
    chain = Chain(w3, deployment)
    _wire_roles(chain.account(deployer), chain)
    return chain


def _wire_roles(admin: ChainAccount, chain: Chain) -> None:
    stakes = chain.stakes.functions
    locker = stakes.LOCKER_ROLE().call()
    slasher = stakes.SLASHER_ROLE().call()
    admin.send(stakes.grantRole(locker, chain.market.address), "grant LOCKER_ROLE to JobMarket")
    admin.send(stakes.grantRole(locker, chain.settlement.address), "grant LOCKER_ROLE")
    admin.send(stakes.grantRole(slasher, chain.settlement.address), "grant SLASHER_ROLE")
    fn = chain.market.functions.setSettlement(chain.settlement.address)
    admin.send(fn, "setSettlement")


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


@dataclass(frozen=True)
class JobInfo:
    """What the chain says about a job: parameters from storage, CIDs from its creation event."""

    job_id: int
    sponsor: str
    params: JobParams
    spec_cid: str
    initial_model_cid: str
    escrow: int
    status: int
    current_round: int
    current_model_digest: bytes


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
    status: int


@dataclass(frozen=True)
class VerificationInfo:
    """``Settlement.verification``: seed, assigned verifier, verdict."""

    seed: bytes
    seed_block: int
    seed_recorded_at: int
    verifier: str
    verdict: int
    attested_at: int
    finalized: bool


def _single_event(event: Any, block: int, **filters: Any) -> Any:
    """The one event matching ``filters`` in ``block`` (the contracts record where to look)."""
    logs = event.get_logs(from_block=block, to_block=block, argument_filters=filters)
    if not logs:
        raise ChainError(f"no {event.event_name} event for {filters}")
    return logs[0]["args"]


def job_info(chain: Chain, job_id: int) -> JobInfo:
    """Read a job from storage and its JobCreated event."""
    sponsor, status, current_round, escrow, model_digest, created_block = (
        chain.market.functions.jobState(job_id).call()
    )
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
    )
    return JobInfo(
        job_id=job_id,
        sponsor=sponsor,
        params=params,
        spec_cid=args["specCid"],
        initial_model_cid=args["initialModelCid"],
        escrow=int(escrow),
        status=int(status),
        current_round=int(current_round),
        current_model_digest=bytes(model_digest),
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
        status=int(status),
    )


def verification_info(chain: Chain, contribution_id: int) -> VerificationInfo:
    v = chain.settlement.functions.verification(contribution_id).call()
    return VerificationInfo(
        seed=bytes(v[0]),
        seed_block=int(v[1]),
        seed_recorded_at=int(v[2]),
        verifier=v[3],
        verdict=int(v[4]),
        attested_at=int(v[5]),
        finalized=bool(v[6]),
    )


def round_model_cid(chain: Chain, job: JobInfo, round_: int) -> tuple[str, bytes]:
    """CID and digest of the global checkpoint G_round (G_0 from the job, later from aggregates)."""
    if round_ == 0:
        return job.initial_model_cid, job.params.initial_model_digest
    block = int(chain.market.functions.aggregateBlock(job.job_id, round_ - 1).call())
    if block == 0:
        raise ChainError(f"job {job.job_id} has no aggregate for round {round_ - 1}")
    logs = chain.market.events.RoundAggregated.get_logs(
        from_block=block, to_block=block, argument_filters={"jobId": job.job_id}
    )
    for log in logs:
        if int(log["args"]["round"]) == round_ - 1:
            return log["args"]["modelCid"], bytes(log["args"]["modelDigest"])
    raise ChainError(f"job {job.job_id} has no aggregate for round {round_ - 1}")
