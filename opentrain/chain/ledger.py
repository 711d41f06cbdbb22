"""An account's payout ledger: every credit, slash and withdrawal, with its reason.

Built from the contracts' events alone (the same rows whether they come straight from the
chain or from the marketplace's index): a ``Credited`` is explained by the events of its own
transaction (the contribution finalized, the dispute resolved, the stake slashed), and the
contribution's submission or the verifier's attestation gives its CID. The total credited
equals ``creditsOf`` plus everything withdrawn, which :func:`check_against_chain` confirms.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentrain.chain.client import Chain

__all__ = [
    "LEDGER_EVENTS",
    "Entry",
    "Ledger",
    "LogRecord",
    "build_ledger",
    "fetch_ledger",
    "fetch_records",
]

# (contract, event) pairs the ledger reads.
LEDGER_EVENTS: tuple[tuple[str, str], ...] = (
    ("StakeRegistry", "Credited"),
    ("StakeRegistry", "CreditsWithdrawn"),
    ("StakeRegistry", "StakeSlashed"),
    ("JobMarket", "ContributionSubmitted"),
    ("Settlement", "ContributionFinalized"),
    ("Settlement", "Attested"),
    ("Settlement", "AttestationMissed"),
    ("Settlement", "SeedExpired"),
    ("Settlement", "RevealMissed"),
    ("Disputes", "DisputeOpened"),
    ("Disputes", "DisputeResolved"),
    ("Disputes", "Voted"),
)


@dataclass(frozen=True)
class LogRecord:
    """One decoded event: which, its arguments, where it happened."""

    name: str
    args: Mapping[str, Any]
    block: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class Entry:
    """One line of the ledger. ``amount`` is positive for credits, negative for slashes and
    withdrawals (a withdrawal moves credits to the wallet; it is not a loss)."""

    kind: str  # credit | slash | withdrawal
    amount: int
    reason: str
    block: int
    tx_hash: str
    job_id: int | None = None
    contribution_id: int | None = None
    cid: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "amount": str(self.amount),
            "reason": self.reason,
            "block": self.block,
            "tx_hash": self.tx_hash,
            "job_id": self.job_id,
            "contribution_id": self.contribution_id,
            "cid": self.cid,
        }


@dataclass
class Ledger:
    address: str
    entries: list[Entry] = field(default_factory=list)

    @property
    def credited(self) -> int:
        return sum(e.amount for e in self.entries if e.kind == "credit")

    @property
    def withdrawn(self) -> int:
        return -sum(e.amount for e in self.entries if e.kind == "withdrawal")

    @property
    def slashed(self) -> int:
        return -sum(e.amount for e in self.entries if e.kind == "slash")

    @property
    def unwithdrawn(self) -> int:
        """What the events say ``creditsOf`` must be."""
        return self.credited - self.withdrawn

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "credited": str(self.credited),
            "withdrawn": str(self.withdrawn),
            "unwithdrawn": str(self.unwithdrawn),
            "slashed": str(self.slashed),
            "entries": [e.to_dict() for e in self.entries],
        }


def _same(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.lower() == b.lower()


def _int(value: Any) -> int:
    return int(value)


def build_ledger(address: str, records: Iterable[LogRecord]) -> Ledger:
    """The ledger of ``address`` from the events (any order; sorted by block and log index)."""
    ordered = sorted(records, key=lambda r: (r.block, r.log_index))
    by_tx: dict[str, list[LogRecord]] = defaultdict(list)
    submitted: dict[int, Mapping[str, Any]] = {}
    attested: dict[int, Mapping[str, Any]] = {}
    disputes: dict[int, Mapping[str, Any]] = {}
    votes: dict[tuple[int, str], str] = {}
    for r in ordered:
        by_tx[r.tx_hash].append(r)
        if r.name == "ContributionSubmitted":
            submitted[_int(r.args["contributionId"])] = r.args
        elif r.name == "Attested":
            attested[_int(r.args["contributionId"])] = r.args
        elif r.name == "DisputeOpened":
            disputes[_int(r.args["disputeId"])] = r.args
        elif r.name == "Voted":
            votes[(_int(r.args["disputeId"]), str(r.args["member"]).lower())] = str(
                r.args["reportCid"]
            )
    ledger = Ledger(address)
    for r in ordered:
        if r.name == "Credited" and _same(r.args["account"], address):
            ledger.entries.append(
                _explain_credit(address, r, by_tx[r.tx_hash], submitted, attested, disputes, votes)
            )
        elif r.name == "StakeSlashed" and _same(r.args["account"], address):
            ledger.entries.append(_explain_slash(r, by_tx[r.tx_hash], submitted, disputes))
        elif r.name == "CreditsWithdrawn" and _same(r.args["account"], address):
            amount = _int(r.args["amount"])
            ledger.entries.append(
                Entry("withdrawal", -amount, "withdrawn to the wallet", r.block, r.tx_hash)
            )
    return ledger


def _job_of(contribution_id: int, submitted: Mapping[int, Mapping[str, Any]]) -> int | None:
    sub = submitted.get(contribution_id)
    return _int(sub["jobId"]) if sub else None


def _explain_credit(
    address: str,
    r: LogRecord,
    siblings: list[LogRecord],
    submitted: Mapping[int, Mapping[str, Any]],
    attested: Mapping[int, Mapping[str, Any]],
    disputes: Mapping[int, Mapping[str, Any]],
    votes: Mapping[tuple[int, str], str],
) -> Entry:
    amount = _int(r.args["amount"])

    def credit(
        reason: str, job: int | None = None, contribution: int | None = None, cid: str = ""
    ) -> Entry:
        return Entry("credit", amount, reason, r.block, r.tx_hash, job, contribution, cid)

    for s in siblings:
        if (
            s.name == "StakeSlashed"
            and _same(s.args.get("beneficiary"), address)
            and _int(s.args["reward"]) == amount
        ):
            who = str(s.args["account"])
            cid, job, contribution = _slash_context(s, siblings, submitted, disputes)
            return credit(f"share of {who[:10]}…'s slash", job, contribution, cid)
    for s in siblings:
        if s.name == "ContributionFinalized":
            c = _int(s.args["contributionId"])
            sub = submitted.get(c, {})
            job = _job_of(c, submitted)
            if _same(sub.get("node"), address) and _int(s.args["nodeReward"]) == amount:
                return credit(
                    f"reward: contribution {c} accepted (round {sub.get('round')}, "
                    f"slot {sub.get('slot')})",
                    job,
                    c,
                    str(sub.get("outputCid", "")),
                )
            att = attested.get(c, {})
            if _int(s.args["verifierPayment"]) == amount:
                verdict = "pass" if att.get("pass") else "fail"
                return credit(
                    f"verifier fee: attested {verdict} on contribution {c}",
                    job,
                    c,
                    str(att.get("reportCid", "")),
                )
    for s in siblings:
        if s.name == "DisputeResolved":
            d = _int(s.args["disputeId"])
            opened = disputes.get(d, {})
            disputed = _int(opened["contributionId"]) if opened else None
            vote = votes.get((d, address.lower()), "")
            reason = (
                f"committee reward: voted with the majority in dispute {d}"
                if vote
                else f"dispute {d} resolved in this account's favour (bond and award)"
            )
            return credit(reason, _int(opened["jobId"]) if opened else None, disputed or None, vote)
    return credit("credit")


def _slash_context(
    s: LogRecord,
    siblings: list[LogRecord],
    submitted: Mapping[int, Mapping[str, Any]],
    disputes: Mapping[int, Mapping[str, Any]],
) -> tuple[str, int | None, int | None]:
    for t in siblings:
        if t.name == "ContributionFinalized":
            c = _int(t.args["contributionId"])
            return str(submitted.get(c, {}).get("outputCid", "")), _job_of(c, submitted), c
        if t.name == "DisputeResolved":
            opened = disputes.get(_int(t.args["disputeId"]), {})
            c = _int(opened["contributionId"]) if opened else 0
            job = _int(opened["jobId"]) if opened else None
            return str(submitted.get(c, {}).get("outputCid", "")), job, c or None
        if t.name in ("AttestationMissed", "SeedExpired", "RevealMissed"):
            c = _int(t.args["contributionId"])
            return "", _job_of(c, submitted), c
    return "", None, None


def _explain_slash(
    r: LogRecord,
    siblings: list[LogRecord],
    submitted: Mapping[int, Mapping[str, Any]],
    disputes: Mapping[int, Mapping[str, Any]],
) -> Entry:
    amount = _int(r.args["amount"])
    cid, job, contribution = _slash_context(r, siblings, submitted, disputes)
    names = {s.name for s in siblings}
    if "AttestationMissed" in names:
        why = f"absent verifier: missed the attestation window of contribution {contribution}"
    elif "RevealMissed" in names:
        why = f"sampled checkpoints of contribution {contribution} not revealed in time"
    elif "SeedExpired" in names:
        why = f"seed of contribution {contribution} never recorded (failUnrecorded)"
    elif "DisputeResolved" in names:
        why = f"lost the dispute over contribution {contribution}"
    elif contribution is not None:
        why = f"contribution {contribution} failed verification"
    else:
        why = "slashed"
    burned = _int(r.args.get("burned", 0))
    return Entry(
        "slash",
        -amount,
        f"{why} ({burned / 10**18:g} TRAIN burned)",
        r.block,
        r.tx_hash,
        job,
        contribution,
        cid,
    )


# -- from the chain ------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def fetch_records(chain: Chain, from_block: int | None = None) -> list[LogRecord]:
    """Every event the ledger reads, straight from the chain's logs."""
    start = chain.deployment.block if from_block is None else from_block
    head = chain.block_number()
    contracts = {
        "StakeRegistry": chain.stakes,
        "JobMarket": chain.market,
        "Settlement": chain.settlement,
        "Disputes": chain.disputes,
    }
    records = []
    for contract, name in LEDGER_EVENTS:
        event = getattr(contracts[contract].events, name)
        for log in event.get_logs(from_block=start, to_block=head):
            tx = log["transactionHash"]
            records.append(
                LogRecord(
                    name=name,
                    args=_plain(dict(log["args"])),
                    block=int(log["blockNumber"]),
                    tx_hash=tx.to_0x_hex() if hasattr(tx, "to_0x_hex") else "0x" + tx.hex(),
                    log_index=int(log["logIndex"]),
                )
            )
    return records


def fetch_ledger(chain: Chain, address: str) -> tuple[Ledger, int]:
    """The ledger of ``address`` from the chain and the chain's ``creditsOf`` (equal to
    ``ledger.unwithdrawn`` when the contracts and this code agree)."""
    ledger = build_ledger(address, fetch_records(chain))
    return ledger, int(chain.stakes.functions.creditsOf(address).call())
