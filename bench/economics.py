"""Does any dishonest strategy pay? A Monte-Carlo market of jobs, nodes and verifiers (issue 18).

    python bench/economics.py [--jobs 20000] [--seed 0] [--cost-ratio 0.8] [--ally-share 0.1]
        [--challenge 0] [--detect 0.5] [--canary-rate BPS] [--canary-bonus TRAIN] [--no-png]

Parameters come from a spec (``default_demo_spec``: n = H/c segments, k samples, reward R and
verifier fee F per slot, R*W contributions per job) and the contract constants
(``ProtocolParams``: node lock S = ``minNodeStake``, verifier lock L = ``verifierLock``,
committee size). What no spec says is an assumption with a flag: a node's compute per slot
C = ``--cost-ratio`` x R (0.8: honest nodes keep 20 %), a verifier's compute V =
``--verify-factor`` x (k/n) x C (it re-runs k of n segments), the chance c that a third party
challenges a pass (``--challenge``, 0: nobody ever does), the colluding share s of verifier stake
(``--ally-share``) and the per-sampled-fake detection q of a tolerance exploit (``--detect``).

Each strategy is a unilateral deviation from an all-honest market (a coalition for collusion and
sybils), simulated contribution by contribution against the same random draws as the honest
baseline; what is printed is the deviant's profit per job minus what it earns honestly, with a 95 %
confidence interval over jobs. Negative = the strategy loses.

- node strategies: fake 1 segment, 10 % or every segment (samples drawn without replacement, each
  sampled fake exposed with probability q); a tolerance exploit (q < 1); faking against verifiers
  that play their best response (lazy when laziness pays); colluding with verifiers that hold a
  share s of the stake (drawn with probability s, pass without looking, caught only if challenged
  and the committee is not theirs); sybils: the same stake split over 16 accounts, with the
  verifier of every contribution drawn by a Python mirror of the issue-13 stake-weighted draw
  (``ticket = keccak256(seed, tag, counter) % totalStake`` located in the cumulative stake list);
- verifier strategies: lazy (passes everything, no compute), partly lazy (re-executes k-1 of the
  k samples), always fails (no compute). A fraction rho of the contributions a verifier meets are
  canaries (``contracts/CANARIES.md``) whose sampled segments each fail with probability 1/k; a
  wrong verdict on a canary forfeits the lock L, a right fail earns F + B.

Printed: a table at the demo's parameters without canaries and with the recommended canary rate and
bonus, the draw frequencies of a split stake under the stake-weighted rule, the region of (stake,
k, canary rate) where every dishonest strategy loses, one JSON line, and
``bench/out/economics_region.png`` (least canary rate per stake and k).
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import accumulate
from pathlib import Path

import numpy as np
from eth_utils import keccak

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentrain.chain.client import ProtocolParams  # noqa: E402
from opentrain.chain.types import TOKEN  # noqa: E402
from opentrain.protocol.economics import (  # noqa: E402
    BPS,
    canary_weight,
    cheating_loses,
    detection_exact,
    minimum_canary_rate,
)
from opentrain.protocol.presets import default_demo_spec  # noqa: E402
from opentrain.spec import JobSpec  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
VERIFIER_TAG = keccak(b"opentrain.verifier")
NICE_RATES_BPS = (5, 10, 20, 50, 100, 200, 500, 1_000)


# -- the stake-weighted draw (mirror of StakeRegistry.drawTicket, issue 13) --------------------


def ticket(seed: bytes, tag: bytes, counter: int, total: int) -> int:
    """``uint256(keccak256(abi.encode(seed, tag, counter))) % total`` (static types: abi.encode
    is the plain concatenation of the three words)."""
    return int.from_bytes(keccak(seed + tag + counter.to_bytes(32, "big")), "big") % total


def pick(cumulative: Sequence[int], t: int) -> int:
    """The list position ticket ``t`` lands on: the first i with ``cumulative[i] > t``."""
    return bisect.bisect_right(cumulative, t)


def draw_one(seed: bytes, tag: bytes, counter: int, weights: Sequence[int]) -> int:
    """The position ``StakeRegistry.drawTicket`` returns for these snapshot weights."""
    cumulative = list(accumulate(weights))
    return pick(cumulative, ticket(seed, tag, counter, cumulative[-1]))


def draw_seeds(first: bytes, count: int) -> list[bytes]:
    """Seed i = keccak256(abi.encode(first, i)), as ``StakeRegistry.drawFrequencies`` derives
    them."""
    return [keccak(first + i.to_bytes(32, "big")) for i in range(count)]


def drawn_positions(seeds: Sequence[bytes], weights: Sequence[int]) -> np.ndarray:
    """Counter-0 draws for every seed (the node is not in the list, so no ticket is skipped)."""
    cumulative = list(accumulate(weights))
    total = cumulative[-1]
    return np.array([pick(cumulative, ticket(s, VERIFIER_TAG, 0, total)) for s in seeds])


def count_rule_positions(seeds: Sequence[bytes], count: int) -> np.ndarray:
    """The draw before issue 13: ``keccak256(abi.encode(seed, tag)) % count`` (one ticket per
    account, whatever its stake)."""
    return np.array([int.from_bytes(keccak(s + VERIFIER_TAG), "big") % count for s in seeds])


@dataclass(frozen=True)
class SybilSet:
    """Honest verifiers with stakes of 1..10 x minVerifierStake and an attacker holding a share
    ``share`` of the total, split evenly over ``accounts`` accounts (each at least the minimum)."""

    weights: tuple[int, ...]
    attacker: tuple[int, ...]  # list positions of the attacker's accounts

    @classmethod
    def build(cls, share: float, accounts: int, honest: int = 40, seed: int = 7) -> SybilSet:
        rng = np.random.default_rng(seed)
        unit = ProtocolParams().min_verifier_stake
        honest_w = [int(m) * unit for m in rng.integers(1, 11, size=honest)]
        total_attacker = round(sum(honest_w) * share / (1 - share))
        each = total_attacker // accounts
        if each < unit:
            raise ValueError("each sybil account needs minVerifierStake")
        # the attacker's accounts sit anywhere in the list (positions do not matter to a
        # stake-weighted draw; they did to the count rule)
        entries = [(w, False) for w in honest_w] + [(each, True)] * accounts
        order = rng.permutation(len(entries))
        weights = [entries[i][0] for i in order]
        positions = [j for j, i in enumerate(order) if entries[i][1]]
        return cls(tuple(weights), tuple(positions))

    @property
    def share(self) -> float:
        return sum(self.weights[i] for i in self.attacker) / sum(self.weights)


def sybil_draws(
    share: float, accounts: int, seeds: Sequence[bytes]
) -> tuple[SybilSet, np.ndarray, np.ndarray]:
    """For each seed, whether the verifier drawn is one of the attacker's ``accounts`` accounts
    holding ``share`` of the stake: by the stake-weighted rule (what the sybil row uses) and by
    the count rule it replaced."""
    sy = SybilSet.build(share, accounts)
    weighted = np.isin(drawn_positions(seeds, sy.weights), sy.attacker)
    counted = np.isin(count_rule_positions(seeds, len(sy.weights)), sy.attacker)
    return sy, weighted, counted


# -- the market ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Market:
    """Everything a payoff depends on, in TRAIN (floats) and probabilities."""

    segments: int  # n
    samples: int  # k
    contributions_per_job: int  # R * W
    reward: float  # R
    fee: float  # F
    node_stake: float  # S
    verifier_lock: float  # L
    committee_size: int  # m
    train_cost: float  # C
    verify_cost: float  # V
    challenge: float  # c
    ally_share: float  # s
    exploit_detect: float  # q of the tolerance-exploit row
    canary_rate: float  # rho
    canary_bonus: float  # B

    @classmethod
    def from_spec(
        cls,
        spec: JobSpec,
        params: ProtocolParams,
        *,
        cost_ratio: float = 0.8,
        verify_factor: float = 1.0,
        challenge: float = 0.0,
        ally_share: float = 0.1,
        exploit_detect: float = 0.5,
        canary_rate: float = 0.0,
        canary_bonus: float = 0.0,
    ) -> Market:
        n, k = spec.training.num_segments, spec.verification.samples
        reward = spec.reward.reward_per_slot / TOKEN
        cost = cost_ratio * reward
        return cls(
            segments=n,
            samples=k,
            contributions_per_job=spec.rounds * spec.slots_per_round,
            reward=reward,
            fee=spec.reward.verifier_fee / TOKEN,
            node_stake=params.min_node_stake / TOKEN,
            verifier_lock=params.verifier_lock / TOKEN,
            committee_size=params.committee_size,
            train_cost=cost,
            verify_cost=verify_factor * k / n * cost,
            challenge=challenge,
            ally_share=ally_share,
            exploit_detect=exploit_detect,
            canary_rate=canary_rate,
            canary_bonus=canary_bonus,
        )

    def with_stake(self, stake: float) -> Market:
        """Node stake ``stake``, verifier lock scaled with it (the deployment's L/S ratio)."""
        return replace(
            self,
            node_stake=stake,
            verifier_lock=stake * self.verifier_lock / self.node_stake,
        )

    def with_samples(self, k: int) -> Market:
        return replace(self, samples=k, verify_cost=self.verify_cost * k / self.samples)


# -- payoffs, one array entry per contribution, deviant minus honest -----------------------


def _exposed(
    rng: np.random.Generator, m: Market, size: int, faked: int, detect: float, checked: int
) -> np.ndarray:
    """Whether re-executing ``checked`` of the k sampled segments (sampled without replacement)
    exposes one of ``faked`` faked segments, each sampled fake exposed with probability q."""
    if checked == 0 or faked == 0:
        return np.zeros(size, dtype=bool)
    hits = rng.hypergeometric(faked, m.segments - faked, checked, size=size)
    return rng.binomial(hits, detect) > 0


def node_fakes(
    rng: np.random.Generator,
    m: Market,
    size: int,
    faked: int,
    detect: float = 1.0,
    checked: int | None = None,
    ally: np.ndarray | None = None,
) -> np.ndarray:
    """A node that fakes ``faked`` of its n segments (saving that share of its compute).

    ``checked``: samples the drawn verifier re-executes (k unless verifiers are lazy);
    ``ally``: per contribution, whether the drawn verifier is the node's ally (it passes without
    looking; a challenge, with probability c, takes it to a committee, which is the attacker's
    when a majority of its m stake-weighted seats are, and otherwise finds what re-execution of
    the sampled segments finds). With an ally the row is the coalition's: node plus ally."""
    checked = m.samples if checked is None else checked
    saved = faked / m.segments * m.train_cost
    exposed = _exposed(rng, m, size, faked, detect, checked)
    if ally is None:
        ally = np.zeros(size, dtype=bool)
    exposed_all = _exposed(rng, m, size, faked, detect, m.samples)
    challenged = rng.random(size) < m.challenge
    captured = rng.binomial(m.committee_size, m.ally_share, size=size) > m.committee_size // 2
    ally_caught = ally & challenged & ~captured & exposed_all
    caught = np.where(ally, ally_caught, exposed)
    node = np.where(caught, -m.node_stake - m.reward, 0.0) + saved
    # the ally, when drawn, skips its compute; caught through a challenge it loses its lock
    # and the fee it would have earned honestly
    ally_gain = np.where(
        ally, m.verify_cost + np.where(ally_caught, -m.verifier_lock - m.fee, 0.0), 0.0
    )
    return node + ally_gain


def _canary_faults(rng: np.random.Generator, m: Market, size: int) -> np.ndarray:
    """For a canary in each assignment, which of its k sampled segments fail: each with
    probability 1/k, independently (its author injects a fault after each segment with that
    probability, ``contracts/CANARIES.md``)."""
    return rng.random((size, m.samples)) < 1.0 / m.samples


# Whether an assignment is a canary is integrated out exactly rather than drawn (the value of an
# assignment is (1 - rho) x its value as an ordinary one + rho x its value as a canary, with the
# canary's faults drawn): at rho ~ 1 % a drawn indicator would leave a handful of canaries per
# thousand jobs and confidence intervals wider than the effect.


def verifier_deviates(rng: np.random.Generator, m: Market, size: int, checks: int) -> np.ndarray:
    """A verifier that re-executes ``checks`` of the k samples (0: lazy) and passes unless one
    of them fails, against an honest one, over assignments of an honest market with canaries.

    Honest: ordinary F - V; canary F + B - V when it fails, F - V when it passes. A wrong
    verdict on a canary forfeits the lock L and gets no fee."""
    fails = _canary_faults(rng, m, size)
    expected_fail = fails.any(axis=1)
    seen_fail = fails[:, :checks].any(axis=1)
    wrong = expected_fail != seen_fail
    saved = (m.samples - checks) / m.samples * m.verify_cost
    honest_canary = np.where(expected_fail, m.fee + m.canary_bonus, m.fee)
    deviant_canary = np.where(wrong, -m.verifier_lock, honest_canary)
    return saved + m.canary_rate * (deviant_canary - honest_canary)


def verifier_always_fails(rng: np.random.Generator, m: Market, size: int) -> np.ndarray:
    """Fails everything without compute: an honest node contests (its daemon re-executes first)
    and the committee rules Valid, slashing the lock; a canary that should pass is wrong."""
    expected_fail = _canary_faults(rng, m, size).any(axis=1)
    ordinary = -m.verifier_lock - (m.fee - m.verify_cost)
    honest_canary = np.where(expected_fail, m.fee + m.canary_bonus, m.fee) - m.verify_cost
    deviant_canary = np.where(expected_fail, m.fee + m.canary_bonus, -m.verifier_lock)
    return (1 - m.canary_rate) * ordinary + m.canary_rate * (deviant_canary - honest_canary)


# -- the rows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    strategy: str
    party: str
    mean: float  # per job, deviant minus honest, TRAIN
    half_width: float  # 95 % CI half width
    honest: float  # the party's honest profit per job, TRAIN
    # for node rows, the guard's terms: fraction faked, q and s in bps, samples re-executed
    fake_bps: int | None = None
    detect_bps: int = BPS
    ally_bps: int = 0
    checks: int | None = None

    @property
    def loses(self) -> bool:
        return self.mean + self.half_width < 0

    @property
    def pays(self) -> bool:
        return self.mean - self.half_width > 0


def honest_profit(m: Market, party: str) -> float:
    if party == "node":
        per = m.reward - m.train_cost
    else:
        canary_fails = 1 - (1 - 1 / m.samples) ** m.samples
        per = m.fee - m.verify_cost + m.canary_rate * canary_fails * m.canary_bonus
    return per * m.contributions_per_job


def _row(strategy: str, party: str, m: Market, per_contribution: np.ndarray, **guard: int) -> Row:
    per_job = per_contribution.reshape(-1, m.contributions_per_job).sum(axis=1)
    half = 1.96 * per_job.std(ddof=1) / np.sqrt(len(per_job))
    return Row(
        strategy, party, float(per_job.mean()), float(half), honest_profit(m, party), **guard
    )


def best_response_checks(m: Market, rows: dict[str, Row]) -> int:
    """How many samples a rational verifier re-executes: the cheapest check that does not lose
    (laziness if it pays, then partial laziness, else all k)."""
    lazy, partial = rows["lazy verifier"], rows.get("partly lazy verifier")
    options = [(0.0, m.samples), (lazy.mean, 0)]
    if partial is not None:
        options.append((partial.mean, m.samples - 1))
    return max(options)[1]


def simulate(
    m: Market,
    jobs: int,
    seed: int,
    sybil_ally: np.ndarray | None = None,
) -> list[Row]:
    """Every strategy at market ``m`` over ``jobs`` jobs. ``sybil_ally``: per contribution,
    whether the stake-weighted draw picked one of the attacker's accounts (from ``SybilSet``)."""
    rng = np.random.default_rng(seed)
    size = jobs * m.contributions_per_job
    n, k = m.segments, m.samples
    tenth = max(1, round(n / 10))
    rows: dict[str, Row] = {}

    def add(name: str, party: str, fn: Callable[[], np.ndarray], **guard: int) -> None:
        rows[name] = _row(name, party, m, fn(), **guard)

    def fake(faked: int, detect: float = 1.0, ally: float = 0.0, checks: int = k) -> dict[str, int]:
        return {
            "fake_bps": round(faked / n * BPS),
            "detect_bps": round(detect * BPS),
            "ally_bps": round(ally * BPS),
            "checks": checks,
        }

    add("lazy verifier", "verifier", lambda: verifier_deviates(rng, m, size, 0))
    if k > 1:
        add("partly lazy verifier", "verifier", lambda: verifier_deviates(rng, m, size, k - 1))
    add("always-fail verifier", "verifier", lambda: verifier_always_fails(rng, m, size))
    add("fake 1 segment", "node", lambda: node_fakes(rng, m, size, 1), **fake(1))
    add("fake 10% of segments", "node", lambda: node_fakes(rng, m, size, tenth), **fake(tenth))
    add("fake every segment", "node", lambda: node_fakes(rng, m, size, n), **fake(n))
    q = m.exploit_detect
    add(
        f"tolerance exploit (10%, q={q:g})",
        "node",
        lambda: node_fakes(rng, m, size, tenth, detect=q),
        **fake(tenth, detect=q),
    )
    checks = best_response_checks(m, rows)
    add(
        f"fake 10% vs best-response verifiers (check {checks}/{k})",
        "node",
        lambda: node_fakes(rng, m, size, tenth, checked=checks),
        **fake(tenth, checks=checks),
    )
    s_ = m.ally_share
    add(
        f"collude: fake 10%, ally stake s={s_:g}",
        "node+ally",
        lambda: node_fakes(rng, m, size, tenth, ally=rng.random(size) < s_),
        **fake(tenth, ally=s_),
    )
    if sybil_ally is not None:
        ally = np.resize(sybil_ally, size)
        add(
            f"sybil: fake 10%, s={s_:g} over 16 accounts",
            "node+sybils",
            lambda: node_fakes(rng, m, size, tenth, ally=ally),
            **fake(tenth, ally=s_),
        )
    return list(rows.values())


def expected_fake(m: Market, faked: int, detect: float = 1.0) -> float:
    """Closed form of ``node_fakes`` without an ally, per job: f C - D (R + S)."""
    d = detection_exact(m.segments, faked, m.samples, detect)
    per = faked / m.segments * m.train_cost - d * (m.reward + m.node_stake)
    return per * m.contributions_per_job


def expected_lazy(m: Market) -> float:
    """Closed form of the lazy verifier, per job: V - rho (1 - (1-1/k)^k) (L + F + B)."""
    wrong = 1 - (1 - 1 / m.samples) ** m.samples
    loss = m.verifier_lock + m.fee + m.canary_bonus
    return (m.verify_cost - m.canary_rate * wrong * loss) * m.contributions_per_job


# -- the region --------------------------------------------------------------------------------


STAKES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)
SAMPLES = (1, 2, 4, 8)
RATES_BPS = (0, 5, 10, 20, 50, 100, 200, 500, 1_000)


def region(
    base: Market, jobs: int, seed: int, sybil_ally: np.ndarray
) -> dict[tuple[float, int], int | None]:
    """(stake, k) -> the least canary rate (bps) of RATES_BPS from which on every dishonest
    strategy loses (upper 95 % bound below zero) at that rate and every larger one in the grid;
    None where none does."""
    out: dict[tuple[float, int], int | None] = {}
    for stake in STAKES:
        for k in SAMPLES:
            least: int | None = None
            for rate in reversed(RATES_BPS):
                m = replace(base.with_stake(stake).with_samples(k), canary_rate=rate / BPS)
                if all(r.loses for r in simulate(m, jobs, seed, sybil_ally)):
                    least = rate
                else:
                    break
            out[(stake, k)] = least
    return out


def recommend(base: Market) -> tuple[int, float]:
    """The canary rate and bonus to deploy with: the bonus is one fee (a right fail on a canary
    pays twice what any verdict pays, so a verifier that has re-executed strictly prefers to report
    a fault it found); the rate is the least nice value at which the canary guard holds for every
    k <= 32 even if re-execution cost the verifier its whole fee (V = F)."""
    bonus = base.fee
    least = minimum_canary_rate(
        round(base.verifier_lock * TOKEN), round(base.fee * TOKEN), round(bonus * TOKEN)
    )
    rate = next(r for r in NICE_RATES_BPS if r >= least)
    return rate, bonus


# -- output ------------------------------------------------------------------------------------


def table(title: str, rows: list[Row]) -> str:
    lines = [
        title,
        f"  {'strategy':<48} {'party':<11} {'profit vs honest / job':>26}  {'x honest':>11}"
        "  verdict",
    ]
    for r in rows:
        ci = f"{r.mean:+9.3f} ± {r.half_width:.3f} TRAIN"
        pct = f"{r.mean / r.honest:+.3g}x" if r.honest else ""
        verdict = "loses" if r.loses else ("PAYS" if r.pays else "~0 (CI spans 0)")
        lines.append(f"  {r.strategy:<48} {r.party:<11} {ci:>26}  {pct:>11}  {verdict}")
    return "\n".join(lines)


def region_table(reg: dict[tuple[float, int], int | None]) -> str:
    lines = [
        "least canary rate at which every dishonest strategy loses"
        " (node stake S, verifier lock S/2; '-': none up to 10 %)",
        "  " + f"{'S (TRAIN)':>10}" + "".join(f"{'k=' + str(k):>9}" for k in SAMPLES),
    ]
    for stake in STAKES:
        cells = []
        for k in SAMPLES:
            v = reg[(stake, k)]
            cells.append(f"{'-' if v is None else f'{v / 100:g}%':>9}")
        lines.append("  " + f"{stake:>10g}" + "".join(cells))
    return "\n".join(lines)


def heatmap(reg: dict[tuple[float, int], int | None], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False

    def percent(v: int | None) -> float:
        return np.nan if v is None else v / 100

    grid = np.array([[percent(reg[(s, k)]) for k in SAMPLES] for s in STAKES])
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(grid, origin="lower", cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(SAMPLES)), [str(k) for k in SAMPLES])
    ax.set_yticks(range(len(STAKES)), [f"{s:g}" for s in STAKES])
    ax.set_xlabel("samples k")
    ax.set_ylabel("node stake S (TRAIN), verifier lock S/2")
    ax.set_title("least canary rate (%) where every\ndishonest strategy loses (blank: none)")
    for i, s in enumerate(STAKES):
        for j, k in enumerate(SAMPLES):
            v = reg[(s, k)]
            label = "-" if v is None else f"{v / 100:g}"
            color = "w" if v is not None and v >= 500 else "k"
            ax.text(j, i, label, ha="center", va="center", color=color)
    fig.colorbar(im, ax=ax, label="canary rate (%)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--region-jobs", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cost-ratio", type=float, default=0.8)
    parser.add_argument("--verify-factor", type=float, default=1.0)
    parser.add_argument("--ally-share", type=float, default=0.1)
    parser.add_argument("--challenge", type=float, default=0.0)
    parser.add_argument("--detect", type=float, default=0.5)
    parser.add_argument("--canary-rate", type=int, default=None, help="bps (default: recommended)")
    parser.add_argument("--canary-bonus", type=float, default=None, help="TRAIN (default: F)")
    parser.add_argument("--no-png", action="store_true")
    parser.add_argument("--no-region", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    spec, params = default_demo_spec(), ProtocolParams()
    base = Market.from_spec(
        spec,
        params,
        cost_ratio=args.cost_ratio,
        verify_factor=args.verify_factor,
        challenge=args.challenge,
        ally_share=args.ally_share,
        exploit_detect=args.detect,
    )
    rate, bonus = recommend(base)
    rate = rate if args.canary_rate is None else args.canary_rate
    bonus = bonus if args.canary_bonus is None else args.canary_bonus
    with_canaries = replace(base, canary_rate=rate / BPS, canary_bonus=bonus)

    # sybils: the same share s over 1, 4 and 16 accounts, drawn by the stake-weighted rule
    seeds = draw_seeds(keccak(b"opentrain.bench.economics"), args.jobs * base.contributions_per_job)
    freq: dict[int, dict[str, float]] = {}
    sybil_ally = np.zeros(0, dtype=bool)
    for accounts in (1, 4, 16):
        sy, hit, old = sybil_draws(args.ally_share, accounts, seeds)
        freq[accounts] = {
            "stake_share": sy.share,
            "stake_weighted": float(hit.mean()),
            "count_rule": float(old.mean()),
        }
        if accounts == 16:
            sybil_ally = hit

    today = simulate(base, args.jobs, args.seed, sybil_ally)
    canaried = simulate(with_canaries, args.jobs, args.seed, sybil_ally)
    print(
        f"demo job: n={base.segments} segments, k={base.samples} samples, "
        f"{base.contributions_per_job} contributions/job, R={base.reward:g} F={base.fee:g} "
        f"S={base.node_stake:g} L={base.verifier_lock:g} TRAIN; assumed C={base.train_cost:g} "
        f"V={base.verify_cost:.4g} TRAIN, challenge c={base.challenge:g}; {args.jobs} jobs"
    )
    print(
        f"honest profit per job: node {honest_profit(base, 'node'):.3f} TRAIN, verifier "
        f"{honest_profit(base, 'verifier'):.3f} TRAIN (without canaries)"
    )
    print(table("\nwithout canaries (today):", today))
    print(
        table(
            f"\nwith canaries: rate {rate / 100:g}%, bonus {bonus:g} TRAIN (recommended):",
            canaried,
        )
    )
    print(f"\ndraw frequency of an attacker's accounts ({len(seeds)} seeds, counter 0):")
    print(f"  {'accounts':>8} {'stake share':>12} {'stake-weighted':>15} {'count rule':>11}")
    for accounts, f in freq.items():
        print(
            f"  {accounts:>8} {f['stake_share']:>12.4f} {f['stake_weighted']:>15.4f} "
            f"{f['count_rule']:>11.4f}"
        )
    guard = cheating_loses(1_000, base.samples, params.min_node_stake, spec.reward.reward_per_slot)
    print(
        f"\nguard at the demo (f=10%, k={base.samples}): cheating loses = {guard}; "
        f"canary weight w(k={base.samples}) = {canary_weight(base.samples):.3f}"
    )
    result: dict[str, object] = {
        "bench": "economics",
        "market": asdict(base),
        "recommended": {"canary_rate_bps": rate, "canary_bonus": bonus},
        "today": [asdict(r) for r in today],
        "with_canaries": [asdict(r) for r in canaried],
        "draw_frequency": freq,
    }
    if not args.no_region:
        reg = region(base, args.region_jobs, args.seed, sybil_ally)
        print("\n" + region_table(reg))
        result["region"] = {f"S={s:g},k={k}": v for (s, k), v in reg.items()}
        if not args.no_png and heatmap(reg, OUT / "economics_region.png"):
            print(f"heatmap: {OUT / 'economics_region.png'}")
    result["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
