"""The auditor: re-check any contribution, round or job from public data alone (the chain, the
content store and this code), never trusting the API or the verifier.

Each check appends a :class:`Check`; a failed check is a finding. The report is written as
JSON and as a self-contained HTML page (findings table, loss curve as inline SVG).

What is checked:

- a contribution: its job spec against the on-chain digest; its manifest (for this job, round
  and slot, n + 1 checkpoints, hashing to the on-chain trace root, ending in the on-chain
  output digest) and output CID; the seed's sampled segments; checkpoint 0 against G_r and
  each sampled segment by re-execution; the on-chain verdict against that re-execution; the
  verifier's report (the sampled segments, its verdict, its Merkle proofs, and that it holds
  what re-execution computes: :meth:`Auditor._check_laziness`);
- a round: each slot's contribution, and the aggregate G_{r+1} and its validation loss;
- a job: every round, then the money (:meth:`Auditor._check_accounting`): the job's escrow,
  payouts, refunds and settlement terms, and the vault that holds every job's escrow
  (:meth:`Auditor._check_vault`).
"""

from verifier.audit.accounting import settlement_problem
from verifier.audit.auditor import Auditor
from verifier.audit.report import AuditReport, Check, render_html, write_report

__all__ = ["AuditReport", "Auditor", "Check", "render_html", "settlement_problem", "write_report"]
