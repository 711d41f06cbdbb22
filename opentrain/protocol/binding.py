"""Which binding a contribution's checkpoints must carry: the one rule node, verifier, committee
and auditor share.

A slot's work is bound to its claimant (the contribution's submitter on chain), the job id and
the job's spec digest (``training.binding.Binding``). The node writes that binding into every
checkpoint it encodes (checkpoint 0 included, which is G_r with fresh optimizer state plus the
binding) and trains on the batch order it seeds; every checker derives the expected binding
here, from public data, and ``segment.check_initial_checkpoint`` / ``segment.check_segment``
reject a checkpoint bound to anyone else. So a trace lifted from another node, another job or
another spec fails at checkpoint 0 and at every sampled segment.
"""

from __future__ import annotations

from opentrain.chain.views import ContributionInfo
from opentrain.protocol.jobs import LoadedJob
from opentrain.training.binding import Binding

__all__ = ["Binding", "binding_for", "contribution_binding"]


def binding_for(job: LoadedJob, claimant: str) -> Binding:
    """The binding of ``claimant``'s work on ``job`` (what a node writes into its checkpoints).
    The spec digest is the on-chain one, which ``load_job`` checked the spec bytes against."""
    digest = job.info.params.spec_digest
    return Binding(claimant=claimant, job_id=job.job_id, spec_sha256=digest.hex())


def contribution_binding(job: LoadedJob, info: ContributionInfo) -> Binding:
    """The binding a submitted contribution's checkpoints must carry: its submitter's."""
    if info.job_id != job.job_id:
        raise ValueError(f"contribution is for job {info.job_id}, not job {job.job_id}")
    return binding_for(job, info.node)
