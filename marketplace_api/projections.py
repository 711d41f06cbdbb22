"""Projections: one small function per event name that turns a stored ``ChainEvent`` into rows.

Rules that keep reorg rollback and replay correct:

- a handler reads only the event and the projected tables (never contract storage, never the
  clock), so replaying the stored events rebuilds the same tables;
- it changes rows through the ORM only (``_add``, attribute assignment), never with bulk
  ``update()``/``delete()`` statements: the undo journal (``marketplace_api.journal``)
  records changes from the session's unit of work; it finds rows with ``_get`` (which also
  sees rows created earlier in the batch, not flushed yet: so no relationship navigation,
  which cannot load for those) and would have to forget a row it deletes;
- events without a handler are stored raw and shown in the history of their job or
  contribution; adding a handler later means adding it to ``APPLY`` and bumping
  ``PROJECTION_VERSION`` (the indexer then replays the stored events).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from marketplace_api.models import (
    Base,
    ChainEvent,
    Contribution,
    ContributionStatus,
    Job,
    JobStatus,
    Participant,
    RoundRecord,
    Slot,
    SlotStatus,
    Verdict,
)

# 1: jobs, contributions and rounds (0001). 2: + slots and participants.
PROJECTION_VERSION = 3  # 3: VerifierAssigned, AttestationMissed (issue 13)
LOSS_SCALE = 1_000_000  # RoundAggregated carries validation loss times 1e6

Apply = Callable[[Session, ChainEvent], None]
M = TypeVar("M", bound=Base)


class ProjectionError(RuntimeError):
    """An event refers to something no earlier event created: the stored history is broken."""


_ROWS = "projection_rows"


def _get(session: Session, model: type[M], key: Any) -> M | None:
    """``session.get`` that also finds rows added and not flushed yet, without flushing:
    the rows this session's handlers created are remembered (``_add``), every other pending
    change is to a row already in the identity map. Saves a flush and a SELECT per event."""
    rows: dict[tuple[type[Any], Any], Any] = session.info.setdefault(_ROWS, {})
    row = rows.get((model, key))
    if row is None:
        with session.no_autoflush:
            row = session.get(model, key)
        if row is not None:
            rows[(model, key)] = row
    return cast("M | None", row)


def _add(session: Session, row: Base, key: Any) -> None:
    """Add a new row; columns its constructor left out are set to None explicitly, so a later
    change to them has a known previous value for the undo journal."""
    for attr in inspect(type(row)).column_attrs:
        if attr.key not in row.__dict__:
            setattr(row, attr.key, None)
    session.add(row)
    session.info.setdefault(_ROWS, {})[(type(row), key)] = row


def _job(session: Session, job_id: int) -> Job:
    job = _get(session, Job, job_id)
    if job is None:
        raise ProjectionError(f"event refers to job {job_id}, which was never created")
    return job


def _contribution(session: Session, contribution_id: int) -> Contribution:
    contribution = _get(session, Contribution, contribution_id)
    if contribution is None:
        raise ProjectionError(f"event refers to contribution {contribution_id}, never submitted")
    return contribution


def _participant(session: Session, address: str, block: int) -> Participant:
    """The participant row of ``address``, created (all zero) on its first event."""
    row = _get(session, Participant, address)
    if row is None:
        row = Participant(
            address=address,
            staked=0,
            locked=0,
            unbonding=0,
            is_verifier=False,
            submitted=0,
            accepted=0,
            rejected=0,
            node_earnings=0,
            slashed=0,
            slash_count=0,
            attestations=0,
            failed_attestations=0,
            verifier_earnings=0,
            withdrawn=0,
            first_block=block,
            last_block=block,
        )
        _add(session, row, address)
    row.last_block = block
    return row


def _slot(session: Session, job_id: int, round_: int, slot: int, block: int) -> Slot:
    row = _get(session, Slot, (job_id, round_, slot))
    if row is None:
        row = Slot(
            job_id=job_id,
            round=round_,
            slot=slot,
            status=SlotStatus.OPEN,
            claims=0,
            expired_claims=0,
            updated_block=block,
        )
        _add(session, row, (job_id, round_, slot))
    row.updated_block = block
    return row


# -- JobMarket -----------------------------------------------------------------------------


def _job_created(session: Session, event: ChainEvent) -> None:
    a, p = event.args, event.args["params"]
    job_id = int(a["jobId"])
    _add(
        session,
        Job(
            id=job_id,
            sponsor=a["sponsor"],
            spec_digest=p["specDigest"],
            initial_model_digest=p["initialModelDigest"],
            spec_cid=a["specCid"],
            initial_model_cid=a["initialModelCid"],
            rounds=int(p["rounds"]),
            slots_per_round=int(p["slotsPerRound"]),
            num_segments=int(p["numSegments"]),
            sample_count=int(p["sampleCount"]),
            reward_per_slot=int(p["rewardPerSlot"]),
            verifier_fee=int(p["verifierFee"]),
            claim_timeout=int(p.get("claimTimeout", 0)),
            escrow=int(a["escrow"]),
            status=JobStatus.OPEN,
            current_round=0,
            current_model_digest=p["initialModelDigest"],
            created_block=event.block_number,
            created_tx=event.tx_hash,
        ),
        job_id,
    )


def _slot_claimed(session: Session, event: ChainEvent) -> None:
    a = event.args
    job = _job(session, int(a["jobId"]))
    slot = _slot(session, job.id, int(a["round"]), int(a["slot"]), event.block_number)
    slot.status = SlotStatus.CLAIMED
    slot.node = a["node"]
    slot.deadline = int(a["deadline"])
    slot.claims += 1
    slot.contribution_id = None
    _participant(session, a["node"], event.block_number)


def _claim_expired(session: Session, event: ChainEvent) -> None:
    a = event.args
    slot = _slot(session, int(a["jobId"]), int(a["round"]), int(a["slot"]), event.block_number)
    slot.status = SlotStatus.OPEN
    slot.node = None
    slot.deadline = None
    slot.expired_claims += 1


def _contribution_submitted(session: Session, event: ChainEvent) -> None:
    a = event.args
    job = _job(session, int(a["jobId"]))
    contribution_id = int(a["contributionId"])
    _add(
        session,
        Contribution(
            id=contribution_id,
            job_id=job.id,
            round=int(a["round"]),
            slot=int(a["slot"]),
            node=a["node"],
            output_digest=a["outputDigest"],
            trace_root=a["traceRoot"],
            output_cid=a["outputCid"],
            manifest_cid=a["manifestCid"],
            status=ContributionStatus.SUBMITTED,
            submit_block=event.block_number,
            submit_tx=event.tx_hash,
        ),
        contribution_id,
    )
    slot = _slot(session, job.id, int(a["round"]), int(a["slot"]), event.block_number)
    slot.status = SlotStatus.SUBMITTED
    slot.node = a["node"]
    slot.contribution_id = contribution_id
    _participant(session, a["node"], event.block_number).submitted += 1


def _contribution_settled(session: Session, event: ChainEvent) -> None:
    """JobMarket's side of settlement: the status, the slot, and what leaves the escrow."""
    a = event.args
    contribution = _contribution(session, int(a["contributionId"]))
    accepted = bool(a["accepted"])
    contribution.status = ContributionStatus.ACCEPTED if accepted else ContributionStatus.REJECTED
    _job(session, contribution.job_id).escrow -= int(a["reward"]) + int(a["fee"])
    slot = _slot(
        session, contribution.job_id, contribution.round, contribution.slot, event.block_number
    )
    if accepted:
        slot.status = SlotStatus.ACCEPTED
    else:
        slot.status = SlotStatus.OPEN
        slot.node = None
        slot.deadline = None


def _round_aggregated(session: Session, event: ChainEvent) -> None:
    a = event.args
    job = _job(session, int(a["jobId"]))
    micro = int(a["validationLossMicro"])
    _add(
        session,
        RoundRecord(
            job_id=job.id,
            round=int(a["round"]),
            model_digest=a["modelDigest"],
            model_cid=a["modelCid"],
            validation_loss_micro=micro,
            validation_loss=micro / LOSS_SCALE,
            poster=a["poster"],
            block_number=event.block_number,
            tx_hash=event.tx_hash,
        ),
        (job.id, int(a["round"])),
    )
    job.current_round = int(a["round"]) + 1
    job.current_model_digest = a["modelDigest"]


def _job_completed(session: Session, event: ChainEvent) -> None:
    _job(session, int(event.args["jobId"])).status = JobStatus.COMPLETED


def _escrow_refunded(session: Session, event: ChainEvent) -> None:
    job = _job(session, int(event.args["jobId"]))
    job.escrow -= int(event.args["amount"])


# -- Settlement ----------------------------------------------------------------------------


def _seed_recorded(session: Session, event: ChainEvent) -> None:
    a = event.args
    contribution = _contribution(session, int(a["contributionId"]))
    contribution.seed = a["seed"]
    contribution.seed_block = int(a["seedBlock"])
    contribution.verifier = _verifier_or_none(a["verifier"])  # zero while the draw queues
    contribution.seed_recorded_block = event.block_number
    contribution.seed_tx = event.tx_hash


def _verifier_or_none(address: str) -> str | None:
    return None if int(address, 16) == 0 else address


def _verifier_assigned(session: Session, event: ChainEvent) -> None:
    """Every assignment (first draw, a queue served, a takeover's fresh draw) names the
    verifier now responsible; the fee of a later settlement goes to it."""
    contribution = _contribution(session, int(event.args["contributionId"]))
    contribution.verifier = event.args["verifier"]


def _attestation_missed(session: Session, event: ChainEvent) -> None:
    """The assigned verifier missed its window (slashed via StakeSlashed): nobody is
    responsible until ``VerifierAssigned`` names the next one."""
    contribution = _contribution(session, int(event.args["contributionId"]))
    contribution.verifier = None


def _attested(session: Session, event: ChainEvent) -> None:
    a = event.args
    contribution = _contribution(session, int(a["contributionId"]))
    passed = bool(a["pass"])
    contribution.verdict = Verdict.PASS if passed else Verdict.FAIL
    contribution.report_cid = a["reportCid"]
    contribution.attest_block = event.block_number
    contribution.attest_tx = event.tx_hash
    verifier = _participant(session, a["verifier"], event.block_number)
    verifier.attestations += 1
    if not passed:
        verifier.failed_attestations += 1


def _contribution_finalized(session: Session, event: ChainEvent) -> None:
    """Settlement's side: who was paid what, and how much of the node's stake was slashed."""
    a = event.args
    contribution = _contribution(session, int(a["contributionId"]))
    node_reward, verifier_payment = int(a["nodeReward"]), int(a["verifierPayment"])
    contribution.node_reward = node_reward
    contribution.verifier_payment = verifier_payment
    contribution.slashed = int(a["slashed"])
    contribution.finalize_block = event.block_number
    contribution.finalize_tx = event.tx_hash
    node = _participant(session, contribution.node, event.block_number)
    node.node_earnings += node_reward
    if bool(a["accepted"]):
        node.accepted += 1
    else:
        node.rejected += 1
    if contribution.verifier is not None:
        verifier = _participant(session, contribution.verifier, event.block_number)
        verifier.verifier_earnings += verifier_payment


def _credits_withdrawn(session: Session, event: ChainEvent) -> None:
    a = event.args
    _participant(session, a["account"], event.block_number).withdrawn += int(a["amount"])


# -- StakeRegistry -------------------------------------------------------------------------


def _staked(session: Session, event: ChainEvent) -> None:
    a = event.args
    _participant(session, a["account"], event.block_number).staked = int(a["total"])


def _stake_locked(session: Session, event: ChainEvent) -> None:
    a = event.args
    _participant(session, a["account"], event.block_number).locked = int(a["totalLocked"])


_stake_unlocked = _stake_locked  # same arguments: the new total locked


def _stake_slashed(session: Session, event: ChainEvent) -> None:
    a = event.args
    row = _participant(session, a["account"], event.block_number)
    amount = int(a["amount"])
    row.staked -= amount
    row.locked -= amount
    row.slashed += amount
    row.slash_count += 1


def _unbond_requested(session: Session, event: ChainEvent) -> None:
    a = event.args
    row = _participant(session, a["account"], event.block_number)
    row.staked -= int(a["amount"])
    row.unbonding += int(a["amount"])


def _unbond_withdrawn(session: Session, event: ChainEvent) -> None:
    a = event.args
    row = _participant(session, a["account"], event.block_number)
    row.unbonding -= int(a["amount"])


def _verifier_registered(session: Session, event: ChainEvent) -> None:
    _participant(session, event.args["verifier"], event.block_number).is_verifier = True


def _verifier_deregistered(session: Session, event: ChainEvent) -> None:
    _participant(session, event.args["verifier"], event.block_number).is_verifier = False


APPLY: dict[str, Apply] = {
    # JobMarket
    "JobCreated": _job_created,
    "SlotClaimed": _slot_claimed,
    "ClaimExpired": _claim_expired,
    "ContributionSubmitted": _contribution_submitted,
    "ContributionSettled": _contribution_settled,
    "RoundAggregated": _round_aggregated,
    "JobCompleted": _job_completed,
    "EscrowRefunded": _escrow_refunded,
    # Settlement
    "SeedRecorded": _seed_recorded,
    "VerifierAssigned": _verifier_assigned,
    "AttestationMissed": _attestation_missed,
    "Attested": _attested,
    "ContributionFinalized": _contribution_finalized,
    "CreditsWithdrawn": _credits_withdrawn,
    # StakeRegistry
    "Staked": _staked,
    "StakeLocked": _stake_locked,
    "StakeUnlocked": _stake_unlocked,
    "StakeSlashed": _stake_slashed,
    "UnbondRequested": _unbond_requested,
    "UnbondWithdrawn": _unbond_withdrawn,
    "VerifierRegistered": _verifier_registered,
    "VerifierDeregistered": _verifier_deregistered,
}


def related_ids(args: dict[str, Any]) -> tuple[int | None, int | None]:
    """(job id, contribution id) an event's arguments name, for its raw row's lookup columns."""
    job_id, contribution_id = args.get("jobId"), args.get("contributionId")
    return (
        None if job_id is None else int(job_id),
        None if contribution_id is None else int(contribution_id),
    )
