"""The audit of a round: each slot's contribution, then the aggregate and its validation loss."""

from __future__ import annotations

from opentrain.chain.types import (
    ContributionStatus,
)
from opentrain.chain.views import (
    ContributionInfo,
    contribution_info,
)
from opentrain.protocol.jobs import LoadedJob, load_global_model, load_job
from opentrain.protocol.updates import aggregate_round, round_inputs
from opentrain.training.checkpoint import decode_params, digest
from opentrain.training.train import evaluate_loss
from verifier.audit.contributions import ContributionAudit
from verifier.audit.report import AuditReport


class RoundAudit(ContributionAudit):
    """Checks of a round (its contributions included)."""

    def round(self, job_id: int, round_: int, report: AuditReport | None = None) -> AuditReport:
        """Every contribution submitted for the round (rejected ones too: a verifier failing
        honest work, or passing a cheat that was later overturned, shows there), then the
        aggregate G_{r+1} from the contributions the slots accepted."""
        report = report or AuditReport(f"job {job_id} round {round_}")
        subject = f"job {job_id} round {round_}"
        job = load_job(self.chain, self.store, job_id)
        self.events.refresh()
        submitted = sorted(
            int(e.args["contributionId"])
            for e in self.events.named("JobMarket", "ContributionSubmitted")
            if e.args["jobId"] == job_id and e.args["round"] == round_
        )
        for contribution_id in submitted:
            self.contribution(contribution_id, report)
        accepted: list[ContributionInfo] = []
        for slot in range(job.spec.slots_per_round):
            _, _, status, cid = self.chain.market.functions.slotState(job_id, round_, slot).call()
            if cid == 0:
                report.add(subject, f"slot {slot} has a contribution", False)
                continue
            info = contribution_info(self.chain, int(cid))
            if info.status == ContributionStatus.ACCEPTED:
                accepted.append(info)
        self._check_aggregate(report, subject, job, round_, accepted)
        return report

    def _check_aggregate(
        self,
        report: AuditReport,
        subject: str,
        job: LoadedJob,
        round_: int,
        accepted: list[ContributionInfo],
    ) -> None:
        block = int(self.chain.market.functions.aggregateBlock(job.job_id, round_).call())
        if block == 0:
            report.add(subject, "aggregate posted", False, "round not aggregated yet")
            return
        logs = self.chain.market.events.RoundAggregated.get_logs(
            from_block=block, to_block=block, argument_filters={"jobId": job.job_id}
        )
        posted = next(entry["args"] for entry in logs if int(entry["args"]["round"]) == round_)
        g_r, _ = load_global_model(self.chain, self.store, job, round_)
        if len(accepted) != job.spec.slots_per_round:
            report.add(subject, "every slot accepted before aggregation", False)
            return
        recomputed = aggregate_round(job.spec, g_r, round_inputs(self.store, job.spec, accepted))
        ok = digest(recomputed) == bytes(posted["modelDigest"])
        report.add(subject, "aggregate G_{r+1} recomputes bit for bit", ok)
        loss = evaluate_loss(job.spec, decode_params(job.spec, recomputed))
        posted_loss = int(posted["validationLossMicro"]) / 1e6
        report.add(
            subject,
            "posted validation loss recomputes",
            abs(loss - posted_loss) < 1e-5,
            f"posted {posted_loss:.6f}, recomputed {loss:.6f}",
        )
        if round_ == 0:
            g0 = decode_params(job.spec, g_r)
            report.losses.append(evaluate_loss(job.spec, g0))
        report.losses.append(loss)
