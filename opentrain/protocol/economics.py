"""When cheating does not pay: the detection probability and the createJob acceptance rule,
exactly as contracts/libraries/Economics.sol computes them.
"""

from __future__ import annotations

WAD = 10**18


def _mul_up(a: int, b: int) -> int:
    return (a * b + WAD - 1) // WAD


def detection_probability(cheat_fraction_bps: int, samples: int) -> int:
    """``p = 1 - (1 - f)^k`` in WAD (1e18), exactly as ``contracts/libraries/Economics.sol``
    computes it: (1 - f)^k by square-and-multiply with every product rounded up, so p is
    rounded down (the acceptance check errs on the side of refusing)."""
    base = (10_000 - cheat_fraction_bps) * (WAD // 10_000)
    qk = WAD
    k = samples
    while k > 0:
        if k & 1:
            qk = _mul_up(qk, base)
        base = _mul_up(base, base)
        k >>= 1
    return WAD - qk


def cheating_loses(cheat_fraction_bps: int, samples: int, stake: int, reward: int) -> bool:
    """The ``createJob`` acceptance rule: ``p * (stake + reward) > reward`` in WAD."""
    return detection_probability(cheat_fraction_bps, samples) * (stake + reward) > reward * WAD
