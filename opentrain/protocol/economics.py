"""When cheating does not pay: the detection probability and the createJob acceptance rule,
exactly as contracts/libraries/Economics.sol computes them, and the model behind them that
``bench/economics.py`` validates by simulation (issue 18).

The one inequality
==================

A node that fakes a fraction ``f`` of its ``n`` segments, in a job that samples ``k`` of them,
locks ``S`` (``minNodeStake``) per claim and is paid ``R`` (``rewardPerSlot``) per accepted slot.
Let

- ``q``  be the chance that re-executing a sampled faked segment exposes it (``q = 1`` for a
  skipped or corrupted segment; ``q < 1`` for a fake crafted to land inside the tolerance on
  some hardware),
- ``s``  be the share of eligible verifier stake held by parties that collude with the node
  (its allies and sybils). Under the stake-weighted snapshot draw of issue 13 (one ticket per
  staked base unit: ``keccak256(seed, tag, counter) % totalStake`` located in the cumulative
  stake list) an ally is drawn with probability exactly ``s``, however the stake is split over
  accounts. A drawn ally passes the fake without looking,
- ``c``  be the chance that a pass is challenged by a third party and ruled on by a committee
  whose majority is not the attacker's (it re-executes the same sampled segments, so an ally's
  pass is caught with probability ``c * D``; the simulation draws challenge and committee
  separately, and takes ``c = 0``, nobody challenges, by default).

The chance that the fake is rejected is ``P = (1 - s * (1 - c)) * D``, where ``D`` is the chance
that at least one sampled fake is exposed. Sampling is without replacement, so ``D`` is
hypergeometric, ``D = 1 - E[(1 - q)^X]`` with ``X ~ Hypergeom(n, f*n, k)``; because ``(1-q)^x`` is
convex in ``x`` and the hypergeometric is a mean-preserving contraction of the binomial,
``D >= 1 - (1 - q*f)^k``, which is the bound the contract uses (it needs no ``n``). Caught, the
node loses ``S`` and is paid nothing; uncaught, it is paid ``R``. Saved compute is at most
``f * C <= R`` (``C``, the honest cost of a slot, is below the reward or nobody trains), so
cheating loses against both honesty and abstention whenever

    P * (S + R) > R,    P = (1 - s * (1 - c)) * (1 - (1 - q * f)^k).          (guard)

With ``q = 1`` and ``s = 0`` this is exactly today's ``Economics.cheatingLoses``:
``(1 - (1 - f)^k) * (S + R) > R``. A future ``Economics.sol`` mirrors ``cheating_loses`` below
bit for bit (fixed point in WAD = 1e18, rounding every step towards refusing):

1. ``base = 1e18 - cheatFractionBps * detectBps * 1e10`` (``1 - q f`` in WAD, exact; with
   ``detectBps == 10000`` it is today's ``(10000 - cheatFractionBps) * 1e14``);
2. ``D = 1e18 - base^k`` by today's square-and-multiply loop (products rounded up, so ``D``
   rounded down);
3. ``escape = allyShareBps * (10000 - challengeBps) * 1e10`` (``s * (1 - c)`` in WAD, exact);
4. ``P = D * (1e18 - escape) / 1e18`` rounded down;
5. accept iff ``P * (S + R) > R * 1e18``.

The guard holds only while the drawn verifiers really re-execute. What makes that rational is the
second inequality, on canaries (``contracts/CANARIES.md``): a fraction ``rho`` of the
contributions a verifier meets are canaries whose sampled segments each fail with probability
``1/k``; a verifier that skips re-executing and gets a canary wrong loses its lock ``L``
(``verifierLock``), the fee ``F`` and the bonus ``B``. Skipping ``k - j`` of the ``k`` samples
saves ``(k - j)/k`` of its compute ``V`` and is wrong on a canary with probability
``(1-1/k)^j (1 - (1-1/k)^(k-j))``; the worst ratio over ``j`` is ``w(k) >= CANARY_WEIGHT_BPS /
10000`` for every ``k <= 32``. Since an honest verifier's compute ``V`` is below its fee ``F``
(or nobody verifies), laziness of every degree loses whenever

    rho * w * (L + F + B) > F,    w = CANARY_WEIGHT_BPS / 10000 = 0.36.        (canary guard)

``laziness_loses`` is that check in integers; ``minimum_stake`` and ``minimum_canary_rate`` solve
the two inequalities for the least stake and the least canary rate.
"""

from __future__ import annotations

from math import comb

WAD = 10**18
BPS = 10_000

# min over k <= 32 and over partial-laziness degrees j < k of
#   k/(k-j) * (1-1/k)^j * (1 - (1-1/k)^(k-j))  (0.3737 at k = 32), floored with a margin
CANARY_WEIGHT_BPS = 3_600


def _mul_up(a: int, b: int) -> int:
    return (a * b + WAD - 1) // WAD


def _one_minus_power(base: int, samples: int) -> int:
    """``1e18 - base^k`` with ``base^k`` by square-and-multiply, every product rounded up (the
    loop of ``Economics.detectionWad``)."""
    qk = WAD
    k = samples
    while k > 0:
        if k & 1:
            qk = _mul_up(qk, base)
        base = _mul_up(base, base)
        k >>= 1
    return WAD - qk


def detection_probability(cheat_fraction_bps: int, samples: int) -> int:
    """``p = 1 - (1 - f)^k`` in WAD (1e18), exactly as ``contracts/libraries/Economics.sol``
    computes it: (1 - f)^k by square-and-multiply with every product rounded up, so p is
    rounded down (the acceptance check errs on the side of refusing)."""
    return _one_minus_power((10_000 - cheat_fraction_bps) * (WAD // 10_000), samples)


def effective_detection(
    cheat_fraction_bps: int,
    samples: int,
    *,
    detect_bps: int = BPS,
    ally_share_bps: int = 0,
    challenge_bps: int = 0,
) -> int:
    """``P = (1 - s(1 - c)) * (1 - (1 - q f)^k)`` in WAD, rounded down (steps 1-4 of the module
    docstring). With the defaults (``q = 1``, ``s = 0``) it is ``detection_probability``.

    ``detect_bps``: q, the chance a sampled fake is exposed; ``ally_share_bps``: s, the colluding
    share of eligible verifier stake; ``challenge_bps``: c, the chance a pass is challenged."""
    for name, v in (
        ("cheat_fraction_bps", cheat_fraction_bps),
        ("detect_bps", detect_bps),
        ("ally_share_bps", ally_share_bps),
        ("challenge_bps", challenge_bps),
    ):
        if not 0 <= v <= BPS:
            raise ValueError(f"{name} must be in 0..{BPS}, got {v}")
    # (1 - q f) in WAD, exact: f and q in bps, 1e18 / 1e8 = 1e10
    d = _one_minus_power(WAD - cheat_fraction_bps * detect_bps * (WAD // (BPS * BPS)), samples)
    escape = ally_share_bps * (BPS - challenge_bps) * (WAD // (BPS * BPS))
    return d * (WAD - escape) // WAD


def cheating_loses(
    cheat_fraction_bps: int,
    samples: int,
    stake: int,
    reward: int,
    *,
    detect_bps: int = BPS,
    ally_share_bps: int = 0,
    challenge_bps: int = 0,
) -> bool:
    """The guard ``P * (stake + reward) > reward`` in WAD. With the defaults this is the
    ``createJob`` acceptance rule of ``Economics.sol`` today, bit for bit; the keywords are the
    terms the simulation adds (a future ``Economics.sol`` takes them as market parameters)."""
    p = effective_detection(
        cheat_fraction_bps,
        samples,
        detect_bps=detect_bps,
        ally_share_bps=ally_share_bps,
        challenge_bps=challenge_bps,
    )
    return p * (stake + reward) > reward * WAD


def minimum_stake(
    reward: int,
    cheat_fraction_bps: int,
    samples: int,
    *,
    detect_bps: int = BPS,
    ally_share_bps: int = 0,
    challenge_bps: int = 0,
) -> int:
    """The least node stake ``S`` (token base units) for which ``cheating_loses`` holds:
    ``S = floor(R * (1e18 - P) / P) + 1``, so ``cheating_loses(..., S, R)`` is true and
    ``cheating_loses(..., S - 1, R)`` false.

    For ``job init``: with the market's ``minNodeStake`` as ``S``, a spec is acceptable iff
    ``minimum_stake(reward, f, k, ...) <= minNodeStake``; print the shortfall (or the largest
    reward that fits) otherwise. Raises ``ValueError`` when no stake suffices (``P == 0``, e.g.
    ``detect_bps == 0`` or an ally share of 100 % with no challenges)."""
    p = effective_detection(
        cheat_fraction_bps,
        samples,
        detect_bps=detect_bps,
        ally_share_bps=ally_share_bps,
        challenge_bps=challenge_bps,
    )
    if p == 0:
        raise ValueError("cheating is never detected at these parameters: no stake suffices")
    return reward * (WAD - p) // p + 1


def maximum_reward(
    stake: int,
    cheat_fraction_bps: int,
    samples: int,
    *,
    detect_bps: int = BPS,
    ally_share_bps: int = 0,
    challenge_bps: int = 0,
) -> int:
    """The largest reward per slot that ``cheating_loses`` accepts with node stake ``stake``:
    the largest R with ``P * (S + R) > R * 1e18``, i.e. ``R < P * S / (1e18 - P)``."""
    p = effective_detection(
        cheat_fraction_bps,
        samples,
        detect_bps=detect_bps,
        ally_share_bps=ally_share_bps,
        challenge_bps=challenge_bps,
    )
    if p == WAD:
        raise ValueError("every cheat is caught: any reward is accepted")
    if p * stake == 0:
        raise ValueError("no reward is accepted: nothing is detected or nothing is at stake")
    return (p * stake - 1) // (WAD - p)


def laziness_loses(canary_rate_bps: int, verifier_lock: int, fee: int, bonus: int) -> bool:
    """The canary guard ``rho * w * (L + F + B) > F`` in integers:
    ``canaryRateBps * CANARY_WEIGHT_BPS * (L + F + B) > F * 1e8``. ``verifier_lock`` is L (the
    lock a wrong canary verdict forfeits), ``fee`` F (``verifierFee``, an upper bound on the
    compute an honest verifier spends), ``bonus`` B (paid for failing a failing canary)."""
    if not 0 <= canary_rate_bps <= BPS:
        raise ValueError(f"canary_rate_bps must be in 0..{BPS}, got {canary_rate_bps}")
    return canary_rate_bps * CANARY_WEIGHT_BPS * (verifier_lock + fee + bonus) > fee * BPS * BPS


def minimum_canary_rate(verifier_lock: int, fee: int, bonus: int) -> int:
    """The least canary rate (basis points) for which ``laziness_loses`` holds."""
    weight = CANARY_WEIGHT_BPS * (verifier_lock + fee + bonus)
    if weight == 0:
        raise ValueError("a canary costs a wrong verifier nothing: no rate suffices")
    rate = fee * BPS * BPS // weight + 1
    if rate > BPS:
        raise ValueError("no canary rate up to 100 % makes laziness lose")
    return rate


def canary_weight(samples: int) -> float:
    """``w(k)``: the least, over partial-laziness degrees, of (probability a verifier that
    re-executes j of k samples is wrong on a canary) / (fraction of its compute it saves), for a
    canary whose sampled segments each fail independently with probability 1/k."""
    a = 1.0 - 1.0 / samples
    return min(samples / (samples - j) * a**j * (1.0 - a ** (samples - j)) for j in range(samples))


def detection_exact(segments: int, faked: int, samples: int, detect: float = 1.0) -> float:
    """``D = 1 - E[(1 - q)^X]``, ``X ~ Hypergeom(n, m, k)``: the chance that at least one of the
    ``k`` segments sampled without replacement from ``n`` is one of the ``m`` faked ones and is
    exposed (each exposed independently with probability ``q``)."""
    total = comb(segments, samples)
    miss = 0.0
    for x in range(0, min(faked, samples) + 1):
        ways = comb(faked, x) * comb(segments - faked, samples - x)
        miss += ways / total * (1.0 - detect) ** x
    return 1.0 - miss
