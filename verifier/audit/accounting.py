"""The audit of the money: a job's escrow, payouts, refunds and settlement terms, and the vault."""

from __future__ import annotations

from collections import Counter
from typing import Any

from opentrain.chain.types import (
    DisputeKind,
    JobParams,
    Ruling,
)
from opentrain.chain.views import (
    dispute_info,
    job_info,
)
from verifier.audit.base import AuditorBase
from verifier.audit.events import Event
from verifier.audit.report import AuditReport


class AccountingAudit(AuditorBase):
    """Checks of a job's books and the vault's."""

    def accounting(self, job_id: int, report: AuditReport | None = None) -> AuditReport:
        """Only the money checks of a job (no re-execution): its books and the vault's."""
        report = report or AuditReport(f"job {job_id} accounting")
        self._check_accounting(report, job_id)
        return report

    # -- money ------------------------------------------------------------------------------

    def _check_accounting(self, report: AuditReport, job_id: int) -> None:
        """The job's money, from its events and the contracts' public state, then the vault's.

        For the job: its escrow is what its terms require and entered the vault in the same
        transaction; payouts + refunds + what is still escrowed = the escrow; each settlement
        pays exactly the terms (:func:`settlement_problem`). JobMarket books each job's share
        of the vault, but the tokens of every job sit together in StakeRegistry, and anyone
        holding its TREASURER_ROLE can move them without JobMarket knowing, so a job whose own
        books balance can still be unbacked. Hence :meth:`_check_vault`.
        """
        self.events.refresh()
        subject = f"job {job_id}"
        info = job_info(self.chain, job_id)
        created = [
            e for e in self.events.named("JobMarket", "JobCreated") if e.args["jobId"] == job_id
        ]
        if len(created) != 1:
            report.add(subject, "one JobCreated event", False, f"{len(created)} found")
            return
        escrow = int(created[0].args["escrow"])
        deposited = [
            e
            for e in self.events.named("StakeRegistry", "EscrowDeposited")
            if e.tx == created[0].tx and int(e.args["amount"]) == escrow
        ]
        report.add(
            subject,
            "escrow is the job's terms and entered the vault with the job",
            escrow == info.params.escrow and len(deposited) >= 1,
            f"escrow {escrow}, terms {info.params.escrow}, deposits in that transaction "
            f"{len(deposited)}",
        )
        ids = {
            int(e.args["contributionId"])
            for e in self.events.named("JobMarket", "ContributionSubmitted")
            if e.args["jobId"] == job_id
        }
        settled = [
            e
            for e in self.events.named("JobMarket", "ContributionSettled")
            if int(e.args["contributionId"]) in ids
        ]
        paid = sum(int(e.args["reward"]) + int(e.args["fee"]) for e in settled)
        refunded = sum(
            int(e.args["amount"])
            for e in self.events.named("JobMarket", "EscrowRefunded")
            if e.args["jobId"] == job_id
        )
        report.add(
            subject,
            "payouts + refunds + open escrow = escrow",
            paid + refunded + info.escrow == escrow,
            f"{paid} + {refunded} + {info.escrow} vs {escrow}",
        )
        problems = []
        for e in settled:
            cid, reward, fee = (int(e.args[k]) for k in ("contributionId", "reward", "fee"))
            accepted = bool(e.args["accepted"])
            withheld = accepted and fee == 0 and self._fee_withheld(cid, e.tx)
            problem = settlement_problem(accepted, reward, fee, info.params, withheld)
            if problem:
                problems.append(f"contribution {cid}: {problem}")
        report.add(
            subject, "each settlement pays the job's terms", not problems, "; ".join(problems)
        )
        self._check_vault(report)

    def _fee_withheld(self, contribution_id: int, tx: bytes) -> bool:
        """Whether the transaction that settled the contribution resolved the node's contest of
        a fail as valid: the one case where Disputes accepts the work but withholds the fee."""
        for e in self.events.named("Disputes", "DisputeResolved"):
            if e.tx != tx:
                continue
            d = dispute_info(self.chain, int(e.args["disputeId"]))
            if (d.kind, d.ruling, d.contribution_id) == (
                DisputeKind.CONTEST,
                Ruling.VALID,
                contribution_id,
            ):
                return True
        return False

    def _check_vault(self, report: AuditReport) -> None:
        """The StakeRegistry vault against JobMarket's books, for all jobs together.

        - ``escrowed()`` equals the sum of every job's open escrow (``jobState(j)[3]``) plus the
          canary pool (``Canaries.pool``): escrow
          moved by anyone but JobMarket and Settlement breaks it (a rogue ``releaseEscrow`` or
          ``payout`` lowers the vault, not the books);
        - every EscrowReleased is a JobMarket refund (EscrowRefunded, same transaction, same
          sponsor and amount), every EscrowDeposited a job creation (JobCreated, same
          transaction, same sponsor and amount);
        - the vault's treasurer, locker and slasher roles are held by protocol contracts only
          (replayed from RoleGranted and RoleRevoked).
        """
        subject = "vault (StakeRegistry)"
        market = self.chain.market.functions
        held = int(self.chain.stakes.functions.escrowed().call())
        jobs = int(market.jobCount().call())
        booked = sum(int(market.jobState(j).call()[3]) for j in range(1, jobs + 1))
        pool = int(self.chain.canaries.functions.pool().call())
        report.add(
            subject,
            "vault escrow equals the sum of every job's open escrow plus the canary pool",
            held == booked + pool,
            f"vault {held}, {jobs} jobs book {booked}, canary pool {pool}",
        )
        refunds = Counter(
            (e.tx, e.args["sponsor"], int(e.args["amount"]))
            for e in self.events.named("JobMarket", "EscrowRefunded")
        )
        stray = _unmatched(self.events.named("StakeRegistry", "EscrowReleased"), refunds, "to")
        report.add(
            subject,
            "every escrow release is a JobMarket refund in the same transaction",
            not stray,
            "; ".join(stray),
        )
        creations = Counter(
            (e.tx, e.args["sponsor"], int(e.args["escrow"]))
            for e in self.events.named("JobMarket", "JobCreated")
        )
        creations.update(
            (e.tx, e.args["from"], int(e.args["amount"]))
            for e in self.events.named("Canaries", "CanaryPoolFunded")
        )
        stray = _unmatched(self.events.named("StakeRegistry", "EscrowDeposited"), creations, "from")
        report.add(
            subject,
            "every escrow deposit is a JobMarket job creation or a canary pool funding in the "
            "same transaction",
            not stray,
            "; ".join(stray),
        )
        protocol = {
            str(a).lower()
            for a in (
                self.chain.market.address,
                self.chain.settlement.address,
                self.chain.disputes.address,
                self.chain.canaries.address,
            )
        }
        outsiders = [
            f"{role} held by {account}"
            for role, holders in self._vault_roles().items()
            for account in sorted(holders)
            if account.lower() not in protocol
        ]
        report.add(
            subject,
            "only protocol contracts hold the vault's treasurer, locker and slasher roles",
            not outsiders,
            "; ".join(outsiders),
        )

    def _vault_roles(self) -> dict[str, set[str]]:
        """Current holders of the vault's money-moving roles, replayed from its role events."""
        s = self.chain.stakes.functions
        names = {
            bytes(s.TREASURER_ROLE().call()): "TREASURER_ROLE",
            bytes(s.LOCKER_ROLE().call()): "LOCKER_ROLE",
            bytes(s.SLASHER_ROLE().call()): "SLASHER_ROLE",
        }
        holders: dict[str, set[str]] = {name: set() for name in names.values()}
        for e in self.events.events:
            if e.contract != "StakeRegistry" or e.name not in ("RoleGranted", "RoleRevoked"):
                continue
            name = names.get(bytes(e.args["role"]))
            if name is None:
                continue
            if e.name == "RoleGranted":
                holders[name].add(str(e.args["account"]))
            else:
                holders[name].discard(str(e.args["account"]))
        return holders


def settlement_problem(
    accepted: bool, reward: int, fee: int, terms: JobParams, fee_withheld: bool
) -> str:
    """'' when one ContributionSettled pays what the job's terms say, else what is wrong.

    Accepted: the node gets ``rewardPerSlot`` and the verifier ``verifierFee``, or no fee when
    the node's contest of the verifier's fail was ruled valid (``fee_withheld``: the verifier
    lost the dispute). Rejected: nothing to anyone (the slot reopens)."""
    if not accepted:
        return "" if reward == fee == 0 else f"rejected yet paid reward {reward} and fee {fee}"
    if reward != terms.reward_per_slot:
        return f"reward {reward}, terms say {terms.reward_per_slot}"
    if fee == terms.verifier_fee or (fee == 0 and fee_withheld):
        return ""
    if fee == 0:
        return "fee withheld without a contest ruled valid"
    return f"fee {fee}, terms say {terms.verifier_fee}"


def _unmatched(
    moves: list[Event], expected: Counter[tuple[bytes, Any, int]], party: str
) -> list[str]:
    """Vault escrow events with no JobMarket counterpart (same transaction, party, amount)."""
    stray = []
    for e in moves:
        key = (e.tx, e.args[party], int(e.args["amount"]))
        if expected[key] > 0:
            expected[key] -= 1
        else:
            stray.append(f"{int(e.args['amount'])} {party} {e.args[party]} in block {e.block}")
    return stray


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
