"""The auditor: re-check any contribution, round or job from public data alone (the chain, the
content store and this code), never trusting the API or the verifier.

Each check appends a :class:`Check`; a failed check is a finding. The report is written as
JSON and as a self-contained HTML page (findings table, loss curve as inline SVG).
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opentrain.aggregation import aggregate
from opentrain.chain import (
    Chain,
    ChainError,
    ContributionInfo,
    contribution_info,
    job_info,
    verification_info,
)
from opentrain.checkpoint import decode_params, digest
from opentrain.commitments import verify_proof
from opentrain.jobs import JobError, LoadedJob, load_global_model, load_job
from opentrain.manifest import ManifestError, TraceManifest
from opentrain.sampling import sample_indices
from opentrain.spec import SpecError
from opentrain.store import ContentError, ContentStore
from opentrain.training import evaluate_loss
from opentrain.verification import check_segment

VERDICT_PASS, VERDICT_FAIL = 1, 2
CONTRIBUTION_ACCEPTED = 2
READ_ERRORS = (ContentError, ManifestError, ChainError, JobError, SpecError, ValueError)


@dataclass
class Check:
    subject: str
    name: str
    ok: bool
    detail: str = ""


@dataclass
class AuditReport:
    subject: str
    checks: list[Check] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    verifier_seconds: float = 0.0
    segments_checked: int = 0
    segments_total: int = 0

    @property
    def findings(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, subject: str, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(subject, name, ok, detail))
        return ok

    @property
    def compute_share(self) -> float:
        """Re-executed steps as a share of the training steps they vouch for."""
        return self.segments_checked / self.segments_total if self.segments_total else 0.0

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "subject": self.subject,
            "findings": len(self.findings),
            "checks": [asdict(c) for c in self.checks],
            "losses": self.losses,
            "verifier_compute_share": self.compute_share,
            "segments_checked": self.segments_checked,
            "segments_total": self.segments_total,
            "recompute_seconds": self.verifier_seconds,
        }
        return json.dumps(doc, indent=2)


class Auditor:
    """Audits against one chain and one content store."""

    def __init__(self, chain: Chain, store: ContentStore, reexecute: bool = True) -> None:
        self.chain = chain
        self.store = store
        self.reexecute = reexecute

    # -- contributions ----------------------------------------------------------------------

    def contribution(self, contribution_id: int, report: AuditReport | None = None) -> AuditReport:
        report = report or AuditReport(f"contribution {contribution_id}")
        subject = f"contribution {contribution_id}"
        try:
            info = contribution_info(self.chain, contribution_id)
            job = load_job(self.chain, self.store, info.job_id)
        except READ_ERRORS as exc:
            report.add(subject, "job spec and record readable", False, _line(exc))
            return report
        report.add(subject, "job spec matches its on-chain digest", True)
        manifest = self._manifest(report, subject, info)
        if manifest is None:
            return report
        self._check_output(report, subject, info, manifest)
        self._check_verification(report, subject, job, info, manifest)
        return report

    def _manifest(
        self, report: AuditReport, subject: str, info: ContributionInfo
    ) -> TraceManifest | None:
        try:
            manifest = TraceManifest.from_json(self.store.get_bytes(info.manifest_cid))
        except READ_ERRORS as exc:
            report.add(subject, "manifest fetched and well-formed", False, _line(exc))
            return None
        ok = manifest.trace_root == info.trace_root
        report.add(subject, "manifest digests hash to the on-chain trace root", ok)
        return manifest if ok else None

    def _check_output(
        self, report: AuditReport, subject: str, info: ContributionInfo, manifest: TraceManifest
    ) -> None:
        report.add(
            subject,
            "manifest output equals the on-chain output digest",
            manifest.digests[-1] == info.output_digest,
        )
        try:
            self.store.get_bytes(info.output_cid, expected_sha256=info.output_digest)
            report.add(subject, "output CID holds the committed output", True)
        except ContentError as exc:
            report.add(subject, "output CID holds the committed output", False, _line(exc))

    def _check_verification(
        self,
        report: AuditReport,
        subject: str,
        job: LoadedJob,
        info: ContributionInfo,
        manifest: TraceManifest,
    ) -> None:
        v = verification_info(self.chain, info.contribution_id)
        if v.seed == bytes(32) or v.verdict == 0:
            report.add(
                subject,
                "verified on-chain",
                info.status != CONTRIBUTION_ACCEPTED,
                "no seed or verdict yet",
            )
            return
        n = job.spec.training.num_segments
        sampled = sample_indices(v.seed, n, job.spec.verification.samples)
        on_chain = [
            int(i)
            for i in self.chain.settlement.functions.sampledSegments(info.contribution_id).call()
        ]
        report.add(subject, "sampled segments follow the sampling rule", sampled == on_chain)
        verifier_doc = self._verifier_report(report, subject, info.contribution_id)
        ours = self._reexecute(report, subject, job, info, manifest, sampled)
        if verifier_doc is not None:
            self._compare_reports(report, subject, verifier_doc, sampled, ours, manifest, info)
        if ours is not None:
            expected = VERDICT_PASS if all(ours.values()) else VERDICT_FAIL
            report.add(
                subject,
                "on-chain verdict matches re-execution",
                v.verdict == expected,
                f"verdict {v.verdict}, re-execution {'pass' if expected == 1 else 'fail'}",
            )
        report.segments_checked += len(sampled)
        report.segments_total += n

    def _verifier_report(
        self, report: AuditReport, subject: str, contribution_id: int
    ) -> dict[str, Any] | None:
        logs = self.chain.settlement.events.Attested.get_logs(
            from_block=self.chain.deployment.block,
            argument_filters={"contributionId": contribution_id},
        )
        if not logs:
            report.add(subject, "attestation event found", False)
            return None
        try:
            doc: dict[str, Any] = json.loads(self.store.get_bytes(logs[-1]["args"]["reportCid"]))
        except READ_ERRORS as exc:
            report.add(subject, "verifier report fetched", False, _line(exc))
            return None
        report.add(subject, "verifier report fetched", True)
        return doc

    def _reexecute(
        self,
        report: AuditReport,
        subject: str,
        job: LoadedJob,
        info: ContributionInfo,
        manifest: TraceManifest,
        sampled: list[int],
    ) -> dict[int, bool] | None:
        if not self.reexecute:
            return None
        results: dict[int, bool] = {}
        self.recomputed: dict[int, str] = {}
        for j in sampled:
            try:
                start = self._checkpoint(manifest, j)
                end = self._checkpoint(manifest, j + 1)
            except ContentError as exc:
                results[j] = False
                report.add(subject, f"segment {j} checkpoints available", False, _line(exc))
                continue
            began = time.perf_counter()
            check = check_segment(job.spec, start, end, j, info.round, info.slot)
            report.verifier_seconds += time.perf_counter() - began
            results[j] = check.passed
            self.recomputed[j] = check.recomputed_sha256
            report.add(
                subject, f"segment {j} re-executes to its checkpoint", check.passed, check.reason
            )
        return results

    def _checkpoint(self, manifest: TraceManifest, index: int) -> bytes:
        ref = manifest.checkpoints[index]
        return self.store.get_bytes(ref.cid, expected_sha256=ref.sha256)

    def _compare_reports(
        self,
        report: AuditReport,
        subject: str,
        doc: dict[str, Any],
        sampled: list[int],
        ours: dict[int, bool] | None,
        manifest: TraceManifest,
        info: ContributionInfo,
    ) -> None:
        report.add(
            subject,
            "verifier report names the sampled segments",
            [int(i) for i in doc.get("sampled_segments", [])] == sampled,
        )
        proofs_ok = all(
            verify_proof(
                info.trace_root,
                int(i),
                manifest.digests[int(i)],
                [bytes.fromhex(p[2:]) for p in proof],
            )
            for i, proof in doc.get("proofs", {}).items()
        )
        report.add(subject, "Merkle proofs in the verifier report verify", proofs_ok)
        if ours is None:
            return
        checks = {int(c["index"]): c for c in doc.get("checks", []) if int(c["index"]) >= 0}
        lazy = [
            j
            for j in sampled
            if checks.get(j, {}).get("recomputed_sha256") != self.recomputed.get(j)
        ]
        report.add(
            subject,
            "verifier report holds what re-execution computes (not lazy)",
            not lazy,
            f"segments {lazy} differ" if lazy else "",
        )

    # -- rounds and jobs --------------------------------------------------------------------

    def round(self, job_id: int, round_: int, report: AuditReport | None = None) -> AuditReport:
        report = report or AuditReport(f"job {job_id} round {round_}")
        subject = f"job {job_id} round {round_}"
        job = load_job(self.chain, self.store, job_id)
        outputs: list[bytes] = []
        for slot in range(job.spec.slots_per_round):
            _, _, status, cid = self.chain.market.functions.slotState(job_id, round_, slot).call()
            if cid == 0:
                report.add(subject, f"slot {slot} has a contribution", False)
                continue
            self.contribution(int(cid), report)
            info = contribution_info(self.chain, int(cid))
            if info.status == CONTRIBUTION_ACCEPTED:
                outputs.append(self.store.get_bytes(info.output_cid, info.output_digest))
        self._check_aggregate(report, subject, job, round_, outputs)
        return report

    def _check_aggregate(
        self, report: AuditReport, subject: str, job: LoadedJob, round_: int, outputs: list[bytes]
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
        if len(outputs) != job.spec.slots_per_round:
            report.add(subject, "every slot accepted before aggregation", False)
            return
        recomputed = aggregate(job.spec, g_r, outputs)
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

    def job(self, job_id: int) -> AuditReport:
        report = AuditReport(f"job {job_id}")
        info = job_info(self.chain, job_id)
        for round_ in range(info.current_round):
            self.round(job_id, round_, report)
        self._check_accounting(report, job_id)
        return report

    def _check_accounting(self, report: AuditReport, job_id: int) -> None:
        """Escrow = payouts + refunds + what is still escrowed, from events alone."""
        subject = f"job {job_id}"
        info = job_info(self.chain, job_id)
        market = self.chain.market.events
        start = self.chain.deployment.block
        created = market.JobCreated.get_logs(from_block=start, argument_filters={"jobId": job_id})
        escrow = int(created[0]["args"]["escrow"])
        ids = {
            int(e["args"]["contributionId"])
            for e in market.ContributionSubmitted.get_logs(
                from_block=start, argument_filters={"jobId": job_id}
            )
        }
        paid = sum(
            int(e["args"]["reward"]) + int(e["args"]["fee"])
            for e in market.ContributionSettled.get_logs(from_block=start)
            if int(e["args"]["contributionId"]) in ids
        )
        refunded = sum(
            int(e["args"]["amount"])
            for e in market.EscrowRefunded.get_logs(
                from_block=start, argument_filters={"jobId": job_id}
            )
        )
        ok = paid + refunded + info.escrow == escrow
        report.add(
            subject,
            "payouts + refunds + open escrow = escrow",
            ok,
            f"{paid} + {refunded} + {info.escrow} vs {escrow}",
        )


def _line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def write_report(report: AuditReport, folder: Path) -> tuple[Path, Path]:
    """Write ``audit.json`` and ``audit.html`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "audit.json", folder / "audit.html"
    json_path.write_text(report.to_json())
    html_path.write_text(render_html(report))
    return json_path, html_path


def loss_curve_svg(losses: list[float], width: int = 480, height: int = 200) -> str:
    if len(losses) < 2:
        return "<p>no loss curve yet</p>"
    lo, hi = min(losses), max(losses)
    span = (hi - lo) or 1.0
    pad = 30
    points = " ".join(
        f"{pad + i * (width - 2 * pad) / (len(losses) - 1):.1f},"
        f"{height - pad - (x - lo) / span * (height - 2 * pad):.1f}"
        for i, x in enumerate(losses)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="validation loss by round">'
        f'<rect width="100%" height="100%" fill="white" stroke="#ccc"/>'
        f'<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{points}"/>'
        f'<text x="{pad}" y="18" font-size="12">loss {hi:.4f} → {losses[-1]:.4f} '
        f"over {len(losses) - 1} rounds</text></svg>"
    )


def render_html(report: AuditReport) -> str:
    rows = "".join(
        f"<tr class={'ok' if c.ok else 'finding'}><td>{html.escape(c.subject)}</td>"
        f"<td>{html.escape(c.name)}</td><td>{'ok' if c.ok else 'FINDING'}</td>"
        f"<td>{html.escape(c.detail)}</td></tr>"
        for c in report.checks
    )
    verdict = "no findings" if not report.findings else f"{len(report.findings)} finding(s)"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>OpenTrain audit: {html.escape(report.subject)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 8px}"
        ".finding{background:#fdd}.ok{background:#efe}</style></head><body>"
        f"<h1>Audit of {html.escape(report.subject)}: {verdict}</h1>"
        f"<p>Re-executed {report.segments_checked} of {report.segments_total} segments "
        f"({report.compute_share:.1%} of the training compute they vouch for), "
        f"{report.verifier_seconds:.2f} s.</p>"
        f"{loss_curve_svg(report.losses)}"
        "<table><tr><th>subject</th><th>check</th><th>result</th><th>detail</th></tr>"
        f"{rows}</table></body></html>"
    )
