"""The auditor: contributions, rounds and the money of a whole job."""

from __future__ import annotations

from opentrain.chain.views import (
    job_info,
)
from verifier.audit.accounting import AccountingAudit
from verifier.audit.report import AuditReport
from verifier.audit.rounds import RoundAudit


class Auditor(RoundAudit, AccountingAudit):
    """Audits against one chain and one content store."""

    def job(self, job_id: int) -> AuditReport:
        report = AuditReport(f"job {job_id}")
        info = job_info(self.chain, job_id)
        for round_ in range(info.current_round):
            self.round(job_id, round_, report)
        self._check_accounting(report, job_id)
        return report
