"""The verifier's work on one contribution: record the seed if nobody has, and if this verifier
was drawn, fetch the sampled segments' checkpoints, check them against the on-chain trace root,
re-execute each with the shared segment function, publish a report and attest.
"""

from __future__ import annotations

from opentrain.chain.account import ChainAccount
from opentrain.chain.types import ChainError
from opentrain.chain.views import verification_info
from opentrain.content.store import ContentStore
from opentrain.protocol.contribution import ProgressFn, VerificationReport, check_contribution
from opentrain.protocol.jobs import LoadedJob, load_global_model, load_job
from opentrain.protocol.updates import accepted_contribution, aggregate_round, round_inputs
from opentrain.training.checkpoint import decode_params, digest
from opentrain.training.train import evaluate_loss

__all__ = ["RoundAggregator", "VerificationReport", "VerifierWorker"]


class VerifierWorker:
    """A verifier's account and store."""

    def __init__(self, account: ChainAccount, store: ContentStore) -> None:
        self.account = account
        self.store = store

    def ensure_seed(self, contribution_id: int) -> bool:
        """Record the seed (and draw the verifier) if nobody has yet; False while its block is
        not mined. A busy draw queues: ``opentrain.protocol.assignment`` serves the queue."""
        chain = self.account.chain
        if verification_info(chain, contribution_id).seed != bytes(32):
            return True
        try:
            self.account.record_seed(contribution_id)
        except ChainError as exc:
            if "SettlementSeedNotReady" in str(exc):
                return False
            raise
        return verification_info(chain, contribution_id).seed != bytes(32)

    def is_assigned(self, contribution_id: int) -> bool:
        info = verification_info(self.account.chain, contribution_id)
        return info.verifier.lower() == self.account.address.lower()

    def verify_and_attest(
        self,
        contribution_id: int,
        progress: ProgressFn | None = None,
        fail_unavailable: bool = False,
    ) -> VerificationReport:
        """Verify the contribution, store the report and attest its verdict on-chain with the
        hash of the digests it recomputed (the report lists them; auditors compare). Content
        it cannot obtain raises ``ContentUnavailable`` (nothing attested) unless
        ``fail_unavailable``."""
        report = self.verify(contribution_id, progress, fail_unavailable)
        report_cid = self.store.put_bytes(report.to_json())
        self.account.attest(contribution_id, report.passed, report_cid, report.digests_hash)
        return report

    def verify(
        self,
        contribution_id: int,
        progress: ProgressFn | None = None,
        fail_unavailable: bool = False,
    ) -> VerificationReport:
        """Everything short of attesting: fetch, check commitments, re-execute samples."""
        chain = self.account.chain
        return check_contribution(chain, self.store, contribution_id, progress, fail_unavailable)


class RoundAggregator:
    """Computes G_{r+1} once every slot of round r is accepted, stores it and posts it."""

    def __init__(self, account: ChainAccount, store: ContentStore) -> None:
        self.account = account
        self.store = store

    def accepted_inputs(self, job: LoadedJob, round_: int) -> list[bytes]:
        """What each slot's accepted contribution gives the aggregate, in slot order, checked
        by digest: its output checkpoint, or under error feedback its committed update."""
        chain = self.account.chain
        infos = [
            accepted_contribution(chain, job, round_, slot)
            for slot in range(job.spec.slots_per_round)
        ]
        return round_inputs(self.store, job.spec, infos)

    def model(self, job_id: int, round_: int) -> tuple[LoadedJob, bytes]:
        """G_{r+1} from G_r and the accepted contributions (nothing stored, no loss evaluated)."""
        chain = self.account.chain
        job = load_job(chain, self.store, job_id)
        global_model, _ = load_global_model(chain, self.store, job, round_)
        return job, aggregate_round(job.spec, global_model, self.accepted_inputs(job, round_))

    def publish(self, job: LoadedJob, new_model: bytes) -> tuple[str, float]:
        """Store G_{r+1} and evaluate its validation loss; returns (CID, loss)."""
        cid = self.store.put_bytes(new_model)
        return cid, evaluate_loss(job.spec, decode_params(job.spec, new_model))

    def compute(self, job_id: int, round_: int) -> tuple[bytes, str, float]:
        """G_{r+1}, stored; returns (bytes, CID, loss)."""
        job, new_model = self.model(job_id, round_)
        cid, loss = self.publish(job, new_model)
        return new_model, cid, loss

    def aggregate_and_post(
        self, job_id: int, round_: int, wait_final: bool | None = None
    ) -> tuple[str, float]:
        """Aggregate round ``round_`` of the job and post G_{r+1}; returns its CID and loss."""
        new_model, cid, loss = self.compute(job_id, round_)
        self.account.post_aggregate(
            job_id, round_, digest(new_model), cid, loss, wait_final=wait_final
        )
        return cid, loss
