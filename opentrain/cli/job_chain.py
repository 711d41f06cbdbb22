"""What ``job post``, ``job status``, ``job model`` and ``job generate`` read from the chain and the
store: the pre-send checks, a job's snapshot, the global model verified against its digest,
sampling text. No heavy import at module level.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from opentrain.cli.errors import fail

if TYPE_CHECKING:
    from opentrain.chain.client import Chain
    from opentrain.spec import JobSpec
from opentrain.cli.job_spec import TOKEN, minimum_stake

# -- post ----------------------------------------------------------------------------------------


def _role() -> Any:
    from opentrain.context import role_context

    return role_context()


def _with_total_reward(spec: JobSpec, total: float) -> JobSpec:
    """Spread ``total`` TRAIN over every slot, keeping the spec's node/verifier split."""
    from opentrain.spec import RewardSpec

    slots = spec.rounds * spec.slots_per_round
    per_slot = int(round(total * TOKEN)) // slots
    r = spec.reward
    share = r.verifier_fee / (r.reward_per_slot + r.verifier_fee) if r.reward_per_slot else 0.0
    fee = int(per_slot * share)
    reward = RewardSpec(reward_per_slot=per_slot - fee, verifier_fee=fee)
    return spec.model_copy(update={"reward": reward})


def preflight(ctx: Any, spec: JobSpec, cheat_fraction_bps: int) -> list[str]:
    """What ``createJob`` (and the token transfer) would refuse, checked before sending."""
    from opentrain.protocol.economics import cheating_loses, detection_probability
    from opentrain.protocol.jobs import job_params

    chain = ctx.chain
    problems: list[str] = []
    params = job_params(spec, b"\x01" * 32)
    m = chain.market.functions
    if m.paused().call():
        problems.append("the market is paused: createJob would revert")
    limits = (
        ("rounds", params.rounds, int(m.MAX_ROUNDS().call())),
        ("slots_per_round", params.slots_per_round, int(m.MAX_SLOTS_PER_ROUND().call())),
        ("segments (H / c)", params.num_segments, int(m.MAX_SEGMENTS().call())),
        ("verification.samples", params.sample_count, int(m.MAX_SAMPLES().call())),
    )
    for name, value, limit in limits:
        if value > limit:
            problems.append(f"{name} is {value}, the contract allows at most {limit}")
    stake = int(chain.market.functions.nodeStake().call())
    k, reward = spec.verification.samples, spec.reward.reward_per_slot
    if not cheating_loses(cheat_fraction_bps, k, stake, reward):
        p = detection_probability(cheat_fraction_bps, k) / 1e18
        need = minimum_stake(cheat_fraction_bps, k, reward)
        problems.append(
            f"economics guard: cheating would pay (detection {p:.1%} with {k} samples x "
            f"(stake {stake / TOKEN:g} + reward {reward / TOKEN:g}) <= reward): raise "
            f"verification.samples or lower the reward per slot (it needs a stake of "
            f"{need / TOKEN:.4g} TRAIN)"
        )
    balance = ctx.account.balance()
    if balance < params.escrow:
        problems.append(
            f"balance: {ctx.account.address} holds {balance / TOKEN:g} TRAIN, the escrow is "
            f"{params.escrow / TOKEN:g} TRAIN (on a dev chain: opentrain chain fund ADDRESS)"
        )
    if int(chain.w3.eth.get_balance(ctx.account.address)) == 0:
        problems.append(f"gas: {ctx.account.address} has no ether to pay for transactions")
    return problems


# -- status --------------------------------------------------------------------------------------


def _chain() -> Chain:
    from opentrain.context import connect_chain
    from opentrain.settings import Settings

    return connect_chain(Settings())


def job_snapshot(chain: Chain, job_id: int) -> dict[str, Any]:
    """Everything ``job status`` shows, read from the chain."""
    from opentrain.chain.types import AggregateStatus, JobStatus, Verdict
    from opentrain.chain.views import aggregate_info, job_info, verification_info

    info = job_info(chain, job_id)
    p = info.params
    rounds = []
    for r in range(p.rounds):
        agg = aggregate_info(chain, job_id, r)
        rounds.append(
            {
                "round": r,
                "aggregate": agg.status.name.lower(),
                "validation_loss": agg.validation_loss
                if agg.status != AggregateStatus.NONE
                else None,
            }
        )
    slots = []
    current = min(info.current_round, p.rounds - 1)
    names = {0: "open", 1: "claimed", 2: "submitted", 3: "accepted"}
    for s in range(p.slots_per_round):
        node, deadline, status, contribution = chain.market.functions.slotState(
            job_id, current, s
        ).call()
        verdict = ""
        if int(contribution):
            v = verification_info(chain, int(contribution))
            verdict = v.verdict.name.lower() if v.verdict != Verdict.NONE else "pending"
            if v.finalized:
                verdict += " (final)"
        slots.append(
            {
                "slot": s,
                "state": names.get(int(status), str(status)),
                "node": node if int(status) else "",
                "contribution": int(contribution),
                "verdict": verdict,
            }
        )
    done = info.status != JobStatus.OPEN
    return {
        "job": job_id,
        "status": info.status.name.lower(),
        "round": info.current_round,
        "rounds": p.rounds,
        "escrow_left": info.escrow,
        "slots": slots,
        "round_records": rounds,
        "done": done,
    }


def _render(snap: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.table import Table

    head = (
        f"job {snap['job']}: {snap['status']}, round {min(snap['round'], snap['rounds'])} of "
        f"{snap['rounds']}, escrow left {snap['escrow_left'] / TOKEN:g} TRAIN"
    )
    slots = Table(title=f"slots of round {min(snap['round'], snap['rounds'] - 1)}")
    for col in ("slot", "state", "claimed by", "contribution", "verdict"):
        slots.add_column(col)
    for s in snap["slots"]:
        slots.add_row(
            str(s["slot"]),
            s["state"],
            s["node"],
            str(s["contribution"] or ""),
            s["verdict"],
        )
    rounds = Table(title="rounds")
    for col in ("round", "aggregate", "validation loss"):
        rounds.add_column(col)
    for r in snap["round_records"]:
        loss = r["validation_loss"]
        rounds.add_row(str(r["round"]), r["aggregate"], "" if loss is None else f"{loss:.4f}")
    return Group(head, slots, rounds)


def _line(snap: dict[str, Any]) -> str:
    slots = " ".join(
        f"{s['slot']}:{s['state']}{'/' + s['verdict'] if s['verdict'] else ''}"
        for s in snap["slots"]
    )
    losses = ",".join(
        f"{r['validation_loss']:.4f}" for r in snap["round_records"] if r["validation_loss"]
    )
    return (
        f"job {snap['job']} {snap['status']} round {snap['round']}/{snap['rounds']} "
        f"slots [{slots}] losses [{losses}] escrow {snap['escrow_left'] / TOKEN:g}"
    )


def _check_timeout(began: float, timeout: float | None) -> None:
    if timeout is not None and time.monotonic() - began > timeout:
        fail(f"the job did not finish within {timeout:g} s")


# -- model and generate --------------------------------------------------------------------------


def _global_model(round_: int | None, job_id: int) -> tuple[Any, int, bytes]:
    """(job, round, G_round bytes checked against the chain)."""
    from opentrain.chain.types import ChainError
    from opentrain.content.backends import store_from_settings
    from opentrain.protocol.jobs import load_global_model, load_job
    from opentrain.settings import Settings

    settings = Settings()
    from opentrain.context import connect_chain

    chain = connect_chain(settings)
    store = store_from_settings(settings)
    job = load_job(chain, store, job_id)
    final = job.info.params.rounds
    r = final if round_ is None else round_
    if not 0 <= r <= final:
        raise ChainError(f"job {job_id} has models G_0..G_{final}; no G_{r}")
    if r > 0:
        from opentrain.chain.views import aggregate_info

        if aggregate_info(chain, job_id, r - 1).status.name != "FINAL":
            raise ChainError(
                f"job {job_id} has no final model G_{r} yet (it is in round "
                f"{job.info.current_round}): wait, or pass --round {job.info.current_round}"
            )
    raw, _ = load_global_model(chain, store, job, r)
    return job, r, raw


def sample_text(
    spec: JobSpec, params: dict[str, Any], prompt: str, tokens: int, seed: int, temperature: float
) -> str:
    """Sample ``tokens`` bytes after ``prompt`` from a byte-level gpt (seeded, CPU)."""
    import torch

    from opentrain.training.models import build_model

    model = build_model(spec.model, initialize=False)
    model.load_state_dict(params, strict=True)
    model.eval()
    block = spec.model.block_size  # type: ignore[union-attr]
    ids = list(prompt.encode("utf-8")) or [10]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(tokens):
            x = torch.tensor([ids[-block:]], dtype=torch.long)
            logits = model(x)[0, -1] / max(temperature, 1e-6)
            probs = torch.softmax(logits, dim=-1)
            ids.append(int(torch.multinomial(probs, 1, generator=gen)))
    return bytes(ids).decode("utf-8", errors="replace")
