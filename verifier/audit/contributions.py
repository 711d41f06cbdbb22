"""The audit of one contribution: spec, manifest, output, sampled segments by re-execution, verdict,
the verifier's report (lazy reports caught field by field) and the recomputed-digests hash its
attestation committed to on-chain, and what the settlement paid (a fail pays only the fee).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from opentrain.chain.types import (
    ContributionStatus,
    Ruling,
    Verdict,
)
from opentrain.chain.views import (
    ContributionInfo,
    contribution_info,
    dispute_info,
    verification_info,
)
from opentrain.content.errors import ContentError
from opentrain.protocol.binding import contribution_binding
from opentrain.protocol.codecs import has_residual
from opentrain.protocol.commitments import verify_proof
from opentrain.protocol.contribution import UNAVAILABLE, recomputed_digests
from opentrain.protocol.jobs import LoadedJob, load_global_model, load_job
from opentrain.protocol.manifest import TraceManifest
from opentrain.protocol.sampling import recomputed_digests_hash, sample_indices
from opentrain.protocol.segment import SegmentCheck, check_initial_checkpoint, check_segment
from opentrain.protocol.updates import check_update, residual_in
from opentrain.spec import JobSpec
from verifier.audit.accounting import as_int
from verifier.audit.base import READ_ERRORS, AuditorBase, first_line
from verifier.audit.report import AuditReport, Check


@dataclass
class _Reexecution:
    """The auditor's own re-execution of a contribution's sampled segments."""

    passed: dict[int, bool] = field(default_factory=dict)  # index (-1: checkpoint 0) -> passed
    checks: dict[int, SegmentCheck] = field(default_factory=dict)  # where it could run at all


class ContributionAudit(AuditorBase):
    """Checks of one contribution."""

    # -- contributions ----------------------------------------------------------------------

    def contribution(self, contribution_id: int, report: AuditReport | None = None) -> AuditReport:
        report = report or AuditReport(f"contribution {contribution_id}")
        subject = f"contribution {contribution_id}"
        try:
            info = contribution_info(self.chain, contribution_id)
            job = load_job(self.chain, self.store, info.job_id)
        except READ_ERRORS as exc:
            report.add(subject, "job spec and record readable", False, first_line(exc))
            return report
        report.add(subject, "job spec matches its on-chain digest", True)
        manifest = self._manifest(report, subject, job, info)
        if manifest is None:
            return report
        self._check_output(report, subject, info, manifest)
        self._check_verification(report, subject, job, info, manifest)
        return report

    def _manifest(
        self, report: AuditReport, subject: str, job: LoadedJob, info: ContributionInfo
    ) -> TraceManifest | None:
        try:
            manifest = TraceManifest.from_json(self.store.get_bytes(info.manifest_cid))
        except READ_ERRORS as exc:
            report.add(subject, "manifest fetched and well-formed", False, first_line(exc))
            return None
        n = job.spec.training.num_segments
        where = (manifest.job_id, manifest.round, manifest.slot)
        shaped = (
            where == (info.job_id, info.round, info.slot)
            and len(manifest.checkpoints) == n + 1
            and manifest.spec_digest == job.info.params.spec_digest
        )
        if not report.add(
            subject,
            "manifest is for this job, round and slot and lists n + 1 checkpoints",
            shaped,
            f"job, round, slot {where}, {len(manifest.checkpoints)} checkpoints for {n} segments"
            + ("" if manifest.spec_digest == job.info.params.spec_digest else ", another spec"),
        ):
            return None
        ok = manifest.trace_root == info.trace_root
        report.add(subject, "manifest digests and seal hash to the on-chain trace root", ok)
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
            report.add(subject, "output CID holds the committed output", False, first_line(exc))

    def _check_update(
        self,
        report: AuditReport,
        subject: str,
        job: LoadedJob,
        info: ContributionInfo,
        verdict: Verdict,
    ) -> bool:
        """Under error feedback: do the committed update and residual recompute from the output
        and the residual the slot started from (the rule the verifier applies)? A mismatch is
        a finding only where the verdict took the work for good."""
        name = "committed update and residual recompute from the output"
        failed = verdict == Verdict.FAIL
        try:
            manifest = TraceManifest.from_json(self.store.get_bytes(info.manifest_cid))
            _, global_params = load_global_model(self.chain, self.store, job, info.round)
            residual = residual_in(self.chain, self.store, job, info.round, info.slot)
            output = self.store.get_bytes(info.output_cid, expected_sha256=info.output_digest)
        except READ_ERRORS as exc:
            report.add(subject, name, failed, first_line(exc))
            return False
        check = check_update(job.spec, global_params, output, residual, manifest, self.store)
        stands = "" if check.passed or not failed else " (as the fail verdict says)"
        report.add(subject, name, check.passed or failed, check.reason + stands)
        return check.passed

    def _check_verification(
        self,
        report: AuditReport,
        subject: str,
        job: LoadedJob,
        info: ContributionInfo,
        manifest: TraceManifest,
    ) -> None:
        v = verification_info(self.chain, info.contribution_id)
        if v.seed == bytes(32) or v.verdict == Verdict.NONE:
            report.add(
                subject,
                "verified on-chain",
                info.status != ContributionStatus.ACCEPTED,
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
        ours = self._reexecute(report, subject, job, info, manifest, sampled, v.verdict)
        if has_residual(job.spec):
            update_ok = self._check_update(report, subject, job, info, v.verdict)
            if ours is not None:
                ours.passed[-2] = update_ok  # -2: the committed update (-1: checkpoint 0)
        first_verifier_check = len(report.checks)
        doc = self._verifier_report(report, subject, info.contribution_id)
        if doc is not None:
            self._compare_reports(report, subject, doc, sampled, manifest, info, v.verdict)
            self._check_digests_hash(report, subject, doc, sampled, v.recomputed_digests_hash)
            if ours is not None:
                self._check_laziness(report, subject, doc, sampled, ours, job.spec)
        self._check_fail_payment(report, subject, info.contribution_id)
        ruling = self._ruling(info.contribution_id)
        if ours is not None:
            expected = Verdict.PASS if all(ours.passed.values()) else Verdict.FAIL
            if self._check_canary(report, subject, info.contribution_id, expected, v.verdict):
                _remedied(report.checks[first_verifier_check:], None)
                report.segments_checked += len(sampled)
                return
            detail = f"verdict {v.verdict.name.lower()}, re-execution {expected.name.lower()}"
            if doc is not None and str(doc.get("reason", "")).startswith(UNAVAILABLE):
                detail += (
                    "; failed as withheld (content unavailable to the verifier then; "
                    "whether it was served then, public data cannot tell)"
                )
            if ruling is None:
                undecided = self._undecided(info.contribution_id)
                if undecided is not None:
                    detail += (
                        f"; dispute {undecided} undecided: the slot was redone, nobody slashed"
                    )
                report.add(
                    subject, "on-chain verdict matches re-execution", v.verdict == expected, detail
                )
            else:
                dispute_id, valid = ruling
                final = Verdict.PASS if valid else Verdict.FAIL
                report.add(
                    subject,
                    "outcome after dispute matches re-execution",
                    final == expected,
                    f"{detail}; dispute {dispute_id} ruled the work "
                    f"{'valid' if valid else 'invalid'}",
                )
                if final != v.verdict:
                    _remedied(report.checks[first_verifier_check:], dispute_id)
        report.segments_checked += len(sampled)
        report.segments_total += n

    def _ruling(self, contribution_id: int) -> tuple[int, bool] | None:
        """(dispute id, work valid?) of the dispute that decided the contribution, if any: a
        resolved contest or challenge with a majority (a tie leaves the verdict standing)."""
        self.events.refresh()
        for e in reversed(self.events.named("Disputes", "DisputeOpened")):
            if int(e.args["contributionId"]) != contribution_id:
                continue
            d = dispute_info(self.chain, int(e.args["disputeId"]))
            if d.ruling in (Ruling.VALID, Ruling.INVALID):
                return d.dispute_id, d.ruling is Ruling.VALID
        return None

    def _check_canary(
        self,
        report: AuditReport,
        subject: str,
        contribution_id: int,
        expected: Verdict,
        verdict: Verdict,
    ) -> bool:
        """For a revealed canary (``CanaryRevealed``): whether the reveal's expected verdict is
        what re-execution finds. A reveal that says a clean sample was faulty (or the other way)
        slashed a verifier that was right: the authority lied, and this is where it shows.
        Returns whether the contribution is a canary (its verdict then decides no payment)."""
        self.events.refresh()
        found = [
            e.args
            for e in self.events.named("Canaries", "CanaryRevealed")
            if int(e.args["contributionId"]) == contribution_id
        ]
        if not found:
            return False
        revealed = found[-1]
        said = Verdict.FAIL if revealed["expectedFail"] else Verdict.PASS
        report.add(
            subject,
            "canary reveal's expected verdict matches re-execution",
            said == expected,
            f"reveal expects {said.name.lower()}, re-execution {expected.name.lower()}, "
            f"verdict {verdict.name.lower()}: the verifier was "
            + ("paid" if revealed["verdictRight"] else f"slashed {revealed['slashed']}"),
        )
        return True

    def _undecided(self, contribution_id: int) -> int | None:
        """The id of an Undecided dispute of the contribution (redo without a slash), if any."""
        self.events.refresh()
        for e in reversed(self.events.named("Disputes", "DisputeResolved")):
            d = dispute_info(self.chain, int(e.args["disputeId"]))
            if d.contribution_id == contribution_id and d.ruling is Ruling.UNDECIDED:
                return d.dispute_id
        return None

    def _attested(self, contribution_id: int) -> dict[str, Any] | None:
        """The arguments of the contribution's Attested event (the last, should there be
        several), from the protocol's event log (``attestedAt`` is a time, not a block)."""
        self.events.refresh()
        found = [
            e.args
            for e in self.events.named("Settlement", "Attested")
            if int(e.args["contributionId"]) == contribution_id
        ]
        return found[-1] if found else None

    def _verifier_report(
        self, report: AuditReport, subject: str, contribution_id: int
    ) -> dict[str, Any] | None:
        """The report whose CID the verdict's Attested event names."""
        attested = self._attested(contribution_id)
        if attested is None:
            report.add(subject, "attestation event found", False, "no Attested event")
            return None
        try:
            doc = json.loads(self.store.get_bytes(attested["reportCid"]))
            if not isinstance(doc, dict):
                raise ValueError("the report is not a JSON object")
        except (*READ_ERRORS, UnicodeDecodeError) as exc:
            report.add(subject, "verifier report fetched", False, first_line(exc))
            return None
        report.add(subject, "verifier report fetched", True)
        return doc

    def _check_digests_hash(
        self,
        report: AuditReport,
        subject: str,
        doc: dict[str, Any],
        sampled: list[int],
        on_chain: bytes,
    ) -> None:
        """The attestation's ``recomputedDigestsHash`` is the hash of the digests the report
        says were recomputed (in sample order); a pass recomputed every sampled segment."""
        checks = doc.get("checks")
        try:
            digests = recomputed_digests([c for c in checks or [] if isinstance(c, dict)])
            ours = recomputed_digests_hash(digests)
        except (KeyError, TypeError, ValueError) as exc:
            report.add(subject, "attested digests hash matches the report", False, first_line(exc))
            return
        complete = not doc.get("passed") or (
            len(digests) == len(sampled) and all(d != bytes(32) for d in digests)
        )
        report.add(
            subject,
            "attested digests hash matches the report",
            ours == on_chain and complete,
            f"on-chain 0x{on_chain.hex()[:16]}…, report 0x{ours.hex()[:16]}…, "
            f"{len(digests)} of {len(sampled)} segments recomputed",
        )

    def _check_fail_payment(self, report: AuditReport, subject: str, contribution_id: int) -> None:
        """An undisputed fail pays its verifier exactly the job's fee out of the node's slashed
        lock and burns the rest (a larger share would make failing honest work pay)."""
        self.events.refresh()
        finalized = [
            e
            for e in self.events.named("Settlement", "ContributionFinalized")
            if int(e.args["contributionId"]) == contribution_id
        ]
        disputed = any(
            int(e.args["contributionId"]) == contribution_id
            for e in self.events.named("Settlement", "VerdictDisputed")
        )
        attested = self._attested(contribution_id)
        if not finalized or disputed or attested is None or attested["pass"]:
            return
        e = finalized[-1]
        fee = int(self.chain.market.functions.verifierFeeOf(contribution_id).call())
        paid, slashed = int(e.args["verifierPayment"]), int(e.args["slashed"])
        report.add(
            subject,
            "an undisputed fail pays the verifier only its fee",
            paid == min(fee, slashed),
            f"verifier paid {paid}, fee {fee}, node slashed {slashed}",
        )

    def _reexecute(
        self,
        report: AuditReport,
        subject: str,
        job: LoadedJob,
        info: ContributionInfo,
        manifest: TraceManifest,
        sampled: list[int],
        verdict: Verdict,
    ) -> _Reexecution | None:
        """Check checkpoint 0 against G_r and re-run each sampled segment, as a verifier must.

        A node's bad work is a finding only where the chain took it for good: under a fail
        verdict a failing segment (or a checkpoint the node does not serve) is what the verdict
        rests on, recorded as ok with its reason; whether the verdict itself is right is the
        separate "on-chain verdict matches re-execution" check. The same holds for a
        contribution rejected another way (a canary, a pass overturned): it never counted."""
        if not self.reexecute:
            return None
        rejected = info.status is ContributionStatus.REJECTED
        failed = verdict == Verdict.FAIL or rejected
        stands = (
            " (as the fail verdict says)"
            if verdict == Verdict.FAIL
            else " (rejected: it never counted)"
            if rejected
            else ""
        )
        ours = _Reexecution()
        binding = contribution_binding(job, info)  # the submitter's, as the verifier checks
        try:
            _, global_params = load_global_model(self.chain, self.store, job, info.round)
        except READ_ERRORS as exc:
            report.add(subject, "G_r available", False, first_line(exc))
            global_params = None
        try:
            first = self._checkpoint(manifest, 0)
        except ContentError as exc:
            ours.passed[-1] = False
            report.add(subject, "checkpoint 0 available", failed, first_line(exc) + stands)
        else:
            if global_params is not None:
                check = check_initial_checkpoint(
                    job.spec, global_params, first, info.round, info.slot, binding
                )
                ours.passed[-1], ours.checks[-1] = check.passed, check
                report.add(
                    subject,
                    "checkpoint 0 is G_r with fresh optimizer state",
                    check.passed or failed,
                    check.reason + ("" if check.passed else stands),
                )
        for j in sampled:
            try:
                start = self._checkpoint(manifest, j)
                end = self._checkpoint(manifest, j + 1)
            except ContentError as exc:
                ours.passed[j] = False
                name = f"segment {j} checkpoints available"
                report.add(subject, name, failed, first_line(exc) + stands)
                continue
            began = time.perf_counter()
            check = check_segment(job.spec, start, end, j, info.round, info.slot, binding=binding)
            report.verifier_seconds += time.perf_counter() - began
            ours.passed[j], ours.checks[j] = check.passed, check
            report.add(
                subject,
                f"segment {j} re-executes to its checkpoint",
                check.passed or failed,
                check.reason + ("" if check.passed else stands),
            )
        return ours

    def _checkpoint(self, manifest: TraceManifest, index: int) -> bytes:
        ref = manifest.checkpoints[index]
        return self.store.get_bytes(ref.cid, expected_sha256=ref.sha256)

    def _compare_reports(
        self,
        report: AuditReport,
        subject: str,
        doc: dict[str, Any],
        sampled: list[int],
        manifest: TraceManifest,
        info: ContributionInfo,
        verdict: Verdict,
    ) -> None:
        """What the report says, against the chain and the manifest (no re-execution needed).

        A pass vouches for checkpoint 0 and both ends of every sampled segment, so it must carry
        a proof that each of them belongs to the committed trace; every proof it carries must
        verify against the on-chain root (a fail may stop before fetching, so only the proofs it
        has are checked)."""
        named = doc.get("sampled_segments")
        report.add(
            subject,
            "verifier report names the sampled segments",
            isinstance(named, list) and named == sampled,
        )
        report.add(
            subject,
            "verifier report's verdict is the one attested",
            doc.get("passed") is (verdict == Verdict.PASS),
            f"report {'pass' if doc.get('passed') else 'fail'}, attested {verdict.name.lower()}",
        )
        proofs = doc.get("proofs")
        proofs = proofs if isinstance(proofs, dict) else {}
        digests, seal = manifest.digests, manifest.seal
        bad = [
            str(key)
            for key, proof in proofs.items()
            if not _proof_ok(info, digests, seal, key, proof)
        ]
        missing: list[int] = []
        if verdict == Verdict.PASS:
            needed = {0} | set(sampled) | {j + 1 for j in sampled}
            missing = sorted(needed - {k for k in map(as_int, proofs) if k is not None})
        detail = "; ".join(
            part
            for part in (
                f"checkpoints {bad} do not verify" if bad else "",
                f"no proof for checkpoints {missing}" if missing else "",
            )
            if part
        )
        report.add(
            subject, "Merkle proofs in the verifier report verify", not bad and not missing, detail
        )

    def _check_laziness(
        self,
        report: AuditReport,
        subject: str,
        doc: dict[str, Any],
        sampled: list[int],
        ours: _Reexecution,
        spec: JobSpec,
    ) -> None:
        """Does the report hold what re-executing the sampled segments produces?

        A lazy verifier attests without re-executing. What it can publish without the work is
        what the node committed to (the claimed digests) and whatever it chooses to make up. So
        for checkpoint 0 and every sampled segment the auditor requires the report's record to
        agree, field by field, with its own re-execution:

        - a record exists, about the committed checkpoint (``claimed_sha256``);
        - ``recomputed_sha256`` is what re-execution produced: equal to the auditor's in exact
          mode (bit-exact determinism is the mode's premise) and for checkpoint 0 (no training);
          in tolerance mode another machine may legitimately land elsewhere, and then the
          record must still compare every tensor of the training state (``distances`` with
          the same keys as the auditor's);
        - when the recomputed digests agree, so must the per-tensor ``distances`` (same bits on
          both sides give the same distances): a record that echoes the committed digest as
          "recomputed" without the comparison re-execution produces is not a recomputation;
        - the training loss of every step of the segment (``step_losses``) matches the
          auditor's: no checkpoint and nothing the node publishes holds it, so it is the one
          field a verifier cannot forge from the commitment without running the segment (all
          its forward passes, at least). Without it, in exact mode and for an honest node,
          every other field equals something derivable from the commitment (its digest, zero
          distances over the state's tensor names), and a verifier that skipped the work but
          forged those exactly would look like one that did it;
        - its per-segment pass/fail agrees with the auditor's.
        """
        records: dict[int, dict[str, Any]] = {}
        for rec in doc.get("checks") or []:
            index = as_int(rec.get("index")) if isinstance(rec, dict) else None
            if index is not None:
                records[index] = rec
        problems: list[str] = []
        for index in [-1, *sampled]:
            mine = ours.checks.get(index)
            if mine is None:  # the auditor could not recompute it either
                continue
            label = "checkpoint 0" if index < 0 else f"segment {index}"
            rec = records.get(index)
            if rec is None:
                problems.append(f"{label}: no record")
                continue
            wrong = _record_problem(rec, mine, exact=spec.verification.mode == "exact" or index < 0)
            if wrong:
                problems.append(f"{label}: {wrong}")
        report.add(
            subject,
            "verifier report holds what re-execution computes (not lazy)",
            not problems,
            "; ".join(problems),
        )

    # -- rounds and jobs --------------------------------------------------------------------


def _proof_ok(
    info: ContributionInfo, digests: list[bytes], seal: bytes, key: Any, proof: Any
) -> bool:
    """Whether a report's proof for checkpoint ``key`` verifies against the on-chain root."""
    index = as_int(key)
    if index is None or not 0 <= index < len(digests) or not isinstance(proof, list):
        return False
    try:
        siblings = [bytes.fromhex(str(p).removeprefix("0x")) for p in proof]
    except ValueError:
        return False
    return verify_proof(info.trace_root, index, digests[index], siblings, seal)


def _record_problem(rec: dict[str, Any], mine: SegmentCheck, exact: bool) -> str:
    """How a report's record of one check differs from the auditor's re-execution ('' if not)."""
    if rec.get("claimed_sha256") != mine.claimed_sha256:
        return "not about the committed checkpoint"
    theirs = rec.get("recomputed_sha256")
    distances = rec.get("distances")
    if theirs == mine.recomputed_sha256:
        if not _same_distances(distances, mine.distances):
            return "recomputed digest without the per-tensor comparison re-execution produces"
    elif not theirs:
        return "nothing recomputed"
    elif exact:
        return "recomputed digest differs from re-execution"
    elif not isinstance(distances, dict) or set(distances) != set(mine.distances):
        return "no comparison of every tensor of the training state"
    if not _same_losses(rec.get("step_losses"), mine.step_losses, exact):
        return "per-step losses missing or not what re-execution yields"
    if bool(rec.get("passed")) != mine.passed:
        return f"says {'pass' if rec.get('passed') else 'fail'}, re-execution says otherwise"
    return ""


def _remedied(checks: list[Check], dispute_id: int | None) -> None:
    """A verifier whose verdict a committee overturned (``dispute_id``) or a canary reveal
    judged (None) answered for it and its verdict no longer decides any payment: what is wrong
    with its report is recorded, not a finding. The canary check itself stays as it is."""
    by = (
        f"dispute {dispute_id} overturned this verdict and slashed the verifier"
        if dispute_id is not None
        else "a canary: its reveal judged this verdict, no escrow moved"
    )
    for check in checks:
        if not check.ok and not check.name.startswith("canary reveal"):
            check.ok = True
            check.detail = f"{check.detail}; remedied: {by}".lstrip("; ")


def _same_losses(theirs: Any, mine: list[float], exact: bool) -> bool:
    """The training loss of every step of the segment: no checkpoint holds it, so a report
    can only carry it by running the segment (at least its forward passes). Bit-equal in
    exact mode; in tolerance mode another machine's rounding moves it by ~1e-6 relative,
    far inside 1e-3, while a guess without running lands nowhere near."""
    if not isinstance(theirs, list) or len(theirs) != len(mine):
        return False
    try:
        if exact:
            return all(float(a) == b for a, b in zip(theirs, mine, strict=True))
        return all(
            math.isclose(float(a), b, rel_tol=1e-3) for a, b in zip(theirs, mine, strict=True)
        )
    except (TypeError, ValueError):
        return False


def _same_distances(theirs: Any, mine: dict[str, float]) -> bool:
    if not isinstance(theirs, dict) or set(theirs) != set(mine):
        return False
    try:
        return all(
            math.isclose(float(theirs[k]), v, rel_tol=1e-6, abs_tol=1e-12) for k, v in mine.items()
        )
    except (TypeError, ValueError):
        return False
