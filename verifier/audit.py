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

from __future__ import annotations

import html
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opentrain.aggregation import aggregate
from opentrain.chain import (
    Chain,
    ChainError,
    ContributionInfo,
    ContributionStatus,
    DisputeKind,
    JobParams,
    Ruling,
    Verdict,
    contribution_info,
    dispute_info,
    job_info,
    verification_info,
)
from opentrain.checkpoint import decode_params, digest
from opentrain.commitments import verify_proof
from opentrain.jobs import JobError, LoadedJob, load_global_model, load_job
from opentrain.manifest import ManifestError, TraceManifest
from opentrain.sampling import sample_indices
from opentrain.spec import JobSpec, SpecError
from opentrain.store import ContentError, ContentStore
from opentrain.training import evaluate_loss
from opentrain.verification import SegmentCheck, check_initial_checkpoint, check_segment

READ_ERRORS = (ContentError, ManifestError, ChainError, JobError, SpecError, ValueError)
# blocks per eth_getLogs call: within what public RPC providers accept in one request
LOG_RANGE = 10_000


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


@dataclass(frozen=True)
class Event:
    """One decoded protocol event."""

    contract: str
    name: str
    args: dict[str, Any]
    block: int
    tx: bytes
    log_index: int


class EventLog:
    """Every event the protocol contracts emitted since deployment, decoded here.

    One ``eth_getLogs`` over the four contract addresses per refresh (per ``LOG_RANGE`` blocks),
    extended incrementally as the chain grows: eth-tester (and many RPC providers) pay per call
    and per block scanned, so one scan decoded locally is far cheaper than one per event type.
    Readers that know the block of an event (the contracts record most) look it up there.
    """

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.events: list[Event] = []
        self._next_block = chain.deployment.block
        contracts = {
            "StakeRegistry": chain.stakes,
            "JobMarket": chain.market,
            "Settlement": chain.settlement,
            "Disputes": chain.disputes,
        }
        self._addresses = [c.address for c in contracts.values()]
        self._decoders: dict[tuple[str, bytes], tuple[str, Any]] = {}
        for name, contract in contracts.items():
            for event_type in contract.all_events():
                event = event_type() if isinstance(event_type, type) else event_type
                topic = bytes.fromhex(str(event.topic).removeprefix("0x"))
                self._decoders[(str(contract.address).lower(), topic)] = (name, event)

    def refresh(self) -> None:
        head = self.chain.block_number()
        if head < self._next_block:
            return
        logs: list[Any] = []
        for first in range(self._next_block, head + 1, LOG_RANGE):
            last = min(first + LOG_RANGE - 1, head)
            logs += self.chain.w3.eth.get_logs(
                {"fromBlock": first, "toBlock": last, "address": self._addresses}
            )
        for log in sorted(logs, key=lambda entry: (entry["blockNumber"], entry["logIndex"])):
            if not log["topics"]:
                continue
            found = self._decoders.get((str(log["address"]).lower(), bytes(log["topics"][0])))
            if found is None:
                continue
            contract, event = found
            data = event.process_log(log)
            self.events.append(
                Event(
                    contract,
                    str(data["event"]),
                    dict(data["args"]),
                    int(log["blockNumber"]),
                    bytes(log["transactionHash"]),
                    int(log["logIndex"]),
                )
            )
        self._next_block = head + 1

    def named(self, contract: str, name: str) -> list[Event]:
        """The events ``contract.name`` in chain order (call :meth:`refresh` first)."""
        return [e for e in self.events if e.contract == contract and e.name == name]


@dataclass
class _Reexecution:
    """The auditor's own re-execution of a contribution's sampled segments."""

    passed: dict[int, bool] = field(default_factory=dict)  # index (-1: checkpoint 0) -> passed
    checks: dict[int, SegmentCheck] = field(default_factory=dict)  # where it could run at all


class Auditor:
    """Audits against one chain and one content store."""

    def __init__(self, chain: Chain, store: ContentStore, reexecute: bool = True) -> None:
        self.chain = chain
        self.store = store
        self.reexecute = reexecute
        self.events = EventLog(chain)

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
            report.add(subject, "manifest fetched and well-formed", False, _line(exc))
            return None
        n = job.spec.training.num_segments
        where = (manifest.job_id, manifest.round, manifest.slot)
        shaped = (
            where == (info.job_id, info.round, info.slot) and len(manifest.checkpoints) == n + 1
        )
        if not report.add(
            subject,
            "manifest is for this job, round and slot and lists n + 1 checkpoints",
            shaped,
            f"job, round, slot {where}, {len(manifest.checkpoints)} checkpoints for {n} segments",
        ):
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
        first_verifier_check = len(report.checks)
        doc = self._verifier_report(report, subject, info.contribution_id, v.attested_at)
        if doc is not None:
            self._compare_reports(report, subject, doc, sampled, manifest, info, v.verdict)
            if ours is not None:
                self._check_laziness(report, subject, doc, sampled, ours, job.spec)
        ruling = self._ruling(info.contribution_id)
        if ours is not None:
            expected = Verdict.PASS if all(ours.passed.values()) else Verdict.FAIL
            detail = f"verdict {v.verdict.name.lower()}, re-execution {expected.name.lower()}"
            if ruling is None:
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

    def _verifier_report(
        self, report: AuditReport, subject: str, contribution_id: int, attested_at: int
    ) -> dict[str, Any] | None:
        """The report whose CID the verdict's Attested event names (looked up in the block
        Settlement records for the attestation)."""
        logs = self.chain.settlement.events.Attested.get_logs(
            from_block=attested_at,
            to_block=attested_at,
            argument_filters={"contributionId": contribution_id},
        )
        if not logs:
            report.add(subject, "attestation event found", False, f"none in block {attested_at}")
            return None
        try:
            doc = json.loads(self.store.get_bytes(logs[-1]["args"]["reportCid"]))
            if not isinstance(doc, dict):
                raise ValueError("the report is not a JSON object")
        except (*READ_ERRORS, UnicodeDecodeError) as exc:
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
        verdict: Verdict,
    ) -> _Reexecution | None:
        """Check checkpoint 0 against G_r and re-run each sampled segment, as a verifier must.

        A node's bad work is a finding only where the chain took it for good: under a fail
        verdict a failing segment (or a checkpoint the node does not serve) is what the verdict
        rests on, recorded as ok with its reason; whether the verdict itself is right is the
        separate "on-chain verdict matches re-execution" check."""
        if not self.reexecute:
            return None
        failed = verdict == Verdict.FAIL
        stands = " (as the fail verdict says)" if failed else ""
        ours = _Reexecution()
        try:
            _, global_params = load_global_model(self.chain, self.store, job, info.round)
        except READ_ERRORS as exc:
            report.add(subject, "G_r available", False, _line(exc))
            global_params = None
        try:
            first = self._checkpoint(manifest, 0)
        except ContentError as exc:
            ours.passed[-1] = False
            report.add(subject, "checkpoint 0 available", failed, _line(exc) + stands)
        else:
            if global_params is not None:
                check = check_initial_checkpoint(
                    job.spec, global_params, first, info.round, info.slot
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
                report.add(subject, name, failed, _line(exc) + stands)
                continue
            began = time.perf_counter()
            check = check_segment(job.spec, start, end, j, info.round, info.slot)
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
        digests = manifest.digests
        bad = [
            str(key) for key, proof in proofs.items() if not _proof_ok(info, digests, key, proof)
        ]
        missing: list[int] = []
        if verdict == Verdict.PASS:
            needed = {0} | set(sampled) | {j + 1 for j in sampled}
            missing = sorted(needed - {k for k in map(_as_int, proofs) if k is not None})
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
            index = _as_int(rec.get("index")) if isinstance(rec, dict) else None
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
        outputs: list[bytes] = []
        for slot in range(job.spec.slots_per_round):
            _, _, status, cid = self.chain.market.functions.slotState(job_id, round_, slot).call()
            if cid == 0:
                report.add(subject, f"slot {slot} has a contribution", False)
                continue
            info = contribution_info(self.chain, int(cid))
            if info.status == ContributionStatus.ACCEPTED:
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

        - ``escrowed()`` equals the sum of every job's open escrow (``jobState(j)[3]``): escrow
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
        report.add(
            subject,
            "vault escrow equals the sum of every job's open escrow",
            held == booked,
            f"vault {held}, {jobs} jobs book {booked}",
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
        stray = _unmatched(self.events.named("StakeRegistry", "EscrowDeposited"), creations, "from")
        report.add(
            subject,
            "every escrow deposit is a JobMarket job creation in the same transaction",
            not stray,
            "; ".join(stray),
        )
        protocol = {
            str(a).lower()
            for a in (
                self.chain.market.address,
                self.chain.settlement.address,
                self.chain.disputes.address,
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


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _proof_ok(info: ContributionInfo, digests: list[bytes], key: Any, proof: Any) -> bool:
    """Whether a report's proof for checkpoint ``key`` verifies against the on-chain root."""
    index = _as_int(key)
    if index is None or not 0 <= index < len(digests) or not isinstance(proof, list):
        return False
    try:
        siblings = [bytes.fromhex(str(p).removeprefix("0x")) for p in proof]
    except ValueError:
        return False
    return verify_proof(info.trace_root, index, digests[index], siblings)


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


def _remedied(checks: list[Check], dispute_id: int) -> None:
    """A verifier whose verdict a committee overturned was slashed for it and its verdict no
    longer decides any payment: what is wrong with its report is recorded, not a finding."""
    for check in checks:
        if not check.ok:
            check.ok = True
            check.detail = (
                f"{check.detail}; remedied: dispute {dispute_id} overturned this verdict "
                "and slashed the verifier"
            ).lstrip("; ")


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
