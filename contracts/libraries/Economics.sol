// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Limits} from "./Limits.sol";

/// @title Economics
/// @notice "Cheating must never pay" in fixed point. A node that fakes a fraction f of its
/// segments is caught when one of the k sampled segments is faked: p = 1 - (1 - f)^k. Caught, it
/// loses its locked stake S (and earns nothing); uncaught, it earns the reward R for no work. A
/// job is acceptable only when the expected loss beats the expected gain for the declared f:
///
///     p * S > (1 - p) * R   <=>   p * (S + R) > R
///
/// @dev Computed with WAD = 1e18: q = (1 - f) = (10000 - fBps) * 1e14 exactly; q^k by binary
/// exponentiation (square-and-multiply over the bits of k, at most 6 rounds for k <= 32), every
/// product rounded UP, so (1 - f)^k is over-estimated and p under-estimated: the check errs on the
/// side of refusing. Then `p * (S + R) > R * 1e18`. Factors are <= 1e18, so products stay below
/// 1e36; S, R < 2^128 keep the final product below 2^256. Mirrored by
/// `opentrain.chain.detection_probability`.
library Economics {
    uint256 internal constant WAD = 1e18;
    /// @dev WAD / BPS: one basis point in WAD.
    uint256 private constant WAD_PER_BPS = 1e14;

    /// @notice p = 1 - (1 - f)^k in WAD, rounded down.
    /// @param cheatFractionBps f in basis points, at most 10000
    /// @param k samples per contribution (the caller bounds it)
    function detectionWad(uint256 cheatFractionBps, uint256 k) internal pure returns (uint256) {
        uint256 base = (Limits.BPS - cheatFractionBps) * WAD_PER_BPS;
        uint256 qk = WAD;
        // one round per bit of k: at most 6 for k <= 32 (the caller bounds k)
        while (k > 0) {
            if (k & 1 == 1) qk = _mulUp(qk, base);
            base = _mulUp(base, base);
            k >>= 1;
        }
        return WAD - qk;
    }

    /// @dev a * b / WAD rounded up, for a, b <= WAD.
    function _mulUp(uint256 a, uint256 b) private pure returns (uint256) {
        return (a * b + WAD - 1) / WAD;
    }

    /// @notice Whether faking `cheatFractionBps` of the segments is a loss: p * (S + R) > R.
    /// @param cheatFractionBps f in basis points
    /// @param k samples per contribution
    /// @param stake S: the node stake locked per claim (token units)
    /// @param reward R: the reward per slot (token units)
    function cheatingLoses(uint256 cheatFractionBps, uint256 k, uint256 stake, uint256 reward)
        internal
        pure
        returns (bool loses, uint256 p)
    {
        p = detectionWad(cheatFractionBps, k);
        loses = p * (stake + reward) > reward * WAD;
    }
}
