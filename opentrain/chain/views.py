"""Typed snapshots anyone can read and check: jobs, contributions, verdicts, stakes, aggregates,
disputes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_tester.exceptions import TransactionFailed
from web3.exceptions import ContractCustomError, ContractLogicError

from opentrain.chain.abi import explain_revert
from opentrain.chain.client import Chain
from opentrain.chain.types import (
    LOSS_SCALE,
    ZERO_ADDRESS,
    AggregateStatus,
    ChainError,
    ContributionStatus,
    DisputeKind,
    DisputeStatus,
    JobParams,
    JobStatus,
    Phase,
    Ruling,
    Verdict,
)

# -- typed snapshots -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobInfo:
    """What the chain says about a job: parameters from storage, CIDs from its creation event."""

    job_id: int
    sponsor: str
    params: JobParams
    spec_cid: str
    initial_model_cid: str
    escrow: int
    status: JobStatus
    current_round: int
    current_model_digest: bytes
    accepted_in_round: int = 0
    claims_open: int = 0


@dataclass(frozen=True)
class ContributionInfo:
    """A contribution's stored record plus the CIDs of its submission event."""

    contribution_id: int
    job_id: int
    round: int
    slot: int
    node: str
    output_digest: bytes
    trace_root: bytes
    output_cid: str
    manifest_cid: str
    submit_block: int
    stake_locked: int
    status: ContributionStatus


@dataclass(frozen=True)
class VerificationInfo:
    """``Settlement.verification``: seed, assigned verifier, verdict, phase and deadlines.

    Times (``seed_recorded_at``: the start of the current assignment or queue,
    ``attested_at``, ``attest_deadline``, ``challenge_deadline``) are unix seconds; blocks are
    ``seed_block`` and ``snapshot_block``. ``verifier`` is the zero address while queued."""

    seed: bytes
    seed_block: int
    seed_recorded_at: int
    verifier: str
    verdict: Verdict
    attested_at: int
    finalized: bool
    phase: Phase = Phase.NONE
    attest_deadline: int = 0
    challenge_deadline: int = 0
    snapshot_block: int = 0
    draw_counter: int = 0
    takeovers: int = 0
    previous_verifier: str = ZERO_ADDRESS
    draw_seed: bytes = bytes(32)
    recomputed_digests_hash: bytes = bytes(32)
    reveal_deadline: int = 0  # 0: the job reveals nothing (or no seed yet)
    revealed_at: int = 0

    @property
    def queued(self) -> bool:
        return self.phase is Phase.QUEUED

    @property
    def awaits_reveal(self) -> bool:
        """The job reveals on demand and the node has not revealed yet."""
        return self.reveal_deadline != 0 and self.revealed_at == 0


@dataclass(frozen=True)
class StakeInfo:
    """An account's position in the StakeRegistry vault."""

    address: str
    staked: int
    locked: int
    free: int
    credits: int
    unbonding: int
    unbond_ready_at: int  # unix seconds
    is_verifier: bool


@dataclass(frozen=True)
class AggregateInfo:
    """A round's aggregate G_{round+1}: posted, disputed or final."""

    job_id: int
    round: int
    status: AggregateStatus
    poster: str
    posted_at: int  # unix seconds
    model_digest: bytes
    validation_loss: float
    model_cid: str
    challenge_deadline: int


@dataclass(frozen=True)
class DisputeInfo:
    """``Disputes.dispute``: parties, committee, tally and ruling."""

    dispute_id: int
    kind: DisputeKind
    status: DisputeStatus
    ruling: Ruling
    contribution_id: int
    job_id: int
    round: int
    disputer: str
    node: str
    defendant: str
    seed_block: int
    seed: bytes
    vote_deadline: int
    members: tuple[str, ...]
    valid_votes: int
    invalid_votes: int
    escalation: int = 0  # the round: 0, or 1..2 after too few votes


@dataclass(frozen=True)
class VerifierSnapshot:
    """``StakeRegistry.verifierSnapshot``: the append-only verifier list with each weight as
    of ``snapshot_block - drawLag`` (what a draw with that snapshot block sees)."""

    snapshot_block: int
    accounts: tuple[str, ...]
    weights: tuple[int, ...]


def _single_event(event: Any, block: int, **filters: Any) -> Any:
    """The one event matching ``filters`` in ``block`` (the contracts record where to look)."""
    logs = event.get_logs(from_block=block, to_block=block, argument_filters=filters)
    if not logs:
        raise ChainError(f"no {event.event_name} event for {filters}")
    return logs[0]["args"]


def job_info(chain: Chain, job_id: int) -> JobInfo:
    """Read a job from storage and its JobCreated event."""
    state = chain.market.functions.jobState(job_id).call()
    sponsor, status, current_round, escrow, model_digest, created_block, accepted, open_ = state
    if status == 0:
        raise ChainError(f"job {job_id} does not exist")
    args = _single_event(chain.market.events.JobCreated, created_block, jobId=job_id)
    p = args["params"]
    params = JobParams(
        spec_digest=bytes(p["specDigest"]),
        initial_model_digest=bytes(p["initialModelDigest"]),
        rounds=p["rounds"],
        slots_per_round=p["slotsPerRound"],
        num_segments=p["numSegments"],
        sample_count=p["sampleCount"],
        reward_per_slot=p["rewardPerSlot"],
        verifier_fee=p["verifierFee"],
        claim_timeout=p["claimTimeout"],
        cheat_fraction_bps=p["cheatFractionBps"],
        reveal_window=p["revealWindow"],
    )
    return JobInfo(
        job_id=job_id,
        sponsor=sponsor,
        params=params,
        spec_cid=args["specCid"],
        initial_model_cid=args["initialModelCid"],
        escrow=int(escrow),
        status=JobStatus(int(status)),
        current_round=int(current_round),
        current_model_digest=bytes(model_digest),
        accepted_in_round=int(accepted),
        claims_open=int(open_),
    )


def contribution_info(chain: Chain, contribution_id: int) -> ContributionInfo:
    """Read a contribution from storage and its ContributionSubmitted event."""
    c = chain.market.functions.getContribution(contribution_id).call()
    node, job_id, round_, slot, submit_block, stake_locked, status, output_digest, trace_root = c
    if status == 0:
        raise ChainError(f"contribution {contribution_id} does not exist")
    args = _single_event(
        chain.market.events.ContributionSubmitted,
        submit_block,
        contributionId=contribution_id,
    )
    return ContributionInfo(
        contribution_id=contribution_id,
        job_id=int(job_id),
        round=int(round_),
        slot=int(slot),
        node=node,
        output_digest=bytes(output_digest),
        trace_root=bytes(trace_root),
        output_cid=args["outputCid"],
        manifest_cid=args["manifestCid"],
        submit_block=int(submit_block),
        stake_locked=int(stake_locked),
        status=ContributionStatus(int(status)),
    )


def verification_info(chain: Chain, contribution_id: int) -> VerificationInfo:
    v = chain.settlement.functions.verification(contribution_id).call()
    return VerificationInfo(
        seed=bytes(v[0]),
        seed_block=int(v[1]),
        seed_recorded_at=int(v[2]),
        verifier=v[3],
        verdict=Verdict(int(v[4])),
        attested_at=int(v[5]),
        finalized=bool(v[6]),
        phase=Phase(int(v[7])),
        attest_deadline=int(v[8]),
        challenge_deadline=int(v[9]),
        snapshot_block=int(v[10]),
        draw_counter=int(v[11]),
        takeovers=int(v[12]),
        previous_verifier=str(v[13]),
        draw_seed=bytes(v[14]),
        recomputed_digests_hash=bytes(v[15]),
        reveal_deadline=int(v[16]),
        revealed_at=int(v[17]),
    )


def verifier_snapshot(chain: Chain, snapshot_block: int) -> VerifierSnapshot:
    """The verifier list and weights a draw with ``snapshot_block`` reads."""
    accounts, weights = chain.stakes.functions.verifierSnapshot(snapshot_block).call()
    return VerifierSnapshot(
        snapshot_block, tuple(str(a) for a in accounts), tuple(int(w) for w in weights)
    )


def stake_info(chain: Chain, address: str) -> StakeInfo:
    """An account's stake, locks, credits and unbonding in the vault."""
    s = chain.stakes.functions
    staked = int(s.stakeOf(address).call())
    locked = int(s.lockedOf(address).call())
    unbonding, ready = s.unbondingOf(address).call()
    return StakeInfo(
        address=address,
        staked=staked,
        locked=locked,
        free=staked - locked,
        credits=int(s.creditsOf(address).call()),
        unbonding=int(unbonding),
        unbond_ready_at=int(ready),
        is_verifier=bool(s.isVerifier(address).call()),
    )


def aggregate_info(chain: Chain, job_id: int, round_: int) -> AggregateInfo:
    """The aggregate posted for round ``round_`` of the job (status NONE when there is none)."""
    status, poster, posted, digest, loss, cid, deadline = chain.market.functions.aggregateState(
        job_id, round_
    ).call()
    return AggregateInfo(
        job_id=job_id,
        round=round_,
        status=AggregateStatus(int(status)),
        poster=poster,
        posted_at=int(posted),
        model_digest=bytes(digest),
        validation_loss=int(loss) / LOSS_SCALE,
        model_cid=cid,
        challenge_deadline=int(deadline),
    )


def dispute_info(chain: Chain, dispute_id: int) -> DisputeInfo:
    """A dispute's parties, committee, votes and ruling."""
    try:
        d = chain.disputes.functions.dispute(dispute_id).call()
    except (ContractCustomError, ContractLogicError, TransactionFailed) as exc:
        raise ChainError(f"dispute {dispute_id}: {explain_revert(exc)}") from None
    return DisputeInfo(
        dispute_id=dispute_id,
        kind=DisputeKind(int(d[0])),
        status=DisputeStatus(int(d[1])),
        ruling=Ruling(int(d[2])),
        contribution_id=int(d[3]),
        job_id=int(d[4]),
        round=int(d[5]),
        disputer=d[6],
        node=d[7],
        defendant=d[8],
        seed_block=int(d[9]),
        seed=bytes(d[10]),
        vote_deadline=int(d[11]),
        members=tuple(str(m) for m in d[12]),
        valid_votes=int(d[13]),
        invalid_votes=int(d[14]),
        escalation=int(d[15]),
    )


def round_model_cid(chain: Chain, job: JobInfo, round_: int) -> tuple[str, bytes]:
    """CID and digest of the global checkpoint G_round: G_0 from the job, later ones from the
    final aggregate of the round before (a pending or disputed aggregate is not G_round yet)."""
    if round_ == 0:
        return job.initial_model_cid, job.params.initial_model_digest
    block = int(chain.market.functions.aggregateBlock(job.job_id, round_ - 1).call())
    if block == 0:
        raise ChainError(f"job {job.job_id} has no final aggregate for round {round_ - 1}")
    logs = chain.market.events.RoundAggregated.get_logs(
        from_block=block, to_block=block, argument_filters={"jobId": job.job_id}
    )
    for log in logs:
        if int(log["args"]["round"]) == round_ - 1:
            return log["args"]["modelCid"], bytes(log["args"]["modelDigest"])
    raise ChainError(f"job {job.job_id} has no final aggregate for round {round_ - 1}")
