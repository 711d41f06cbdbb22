// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Economics} from "../libraries/Economics.sol";
import {WithVm} from "./Vm.sol";

/// @notice Fuzz tests of the cheat-pays rule: the fixed-point detection probability never
/// over-states the exact one (so createJob never accepts a job where cheating pays), is off by at
/// most a few WAD units, and moves the right way with f and k.
/// hardhat-config: fuzz.runs = 2000
contract EconomicsTest is WithVm {
    uint256 private constant WAD = 1e18;
    uint256 private constant BPS = 10_000;

    /// Exact p = 1 - ((BPS - f) / BPS)^k, floored to WAD, for k <= 19 (BPS^19 = 1e76 < 2^256).
    function _exactWad(uint256 f, uint256 k) private pure returns (uint256) {
        uint256 num = 1;
        uint256 den = 1;
        for (uint256 i = 0; i < k; ++i) {
            num *= BPS - f;
            den *= BPS;
        }
        // (1-f)^k = num / den; p = 1 - num / den, floored: WAD - ceil(num * WAD / den)
        // num * WAD may overflow for large k: split as WAD * num / den = num / (den / WAD) when den >= WAD
        uint256 qk = den >= WAD ? (num + den / WAD - 1) / (den / WAD) : (num * WAD + den - 1) / den;
        return WAD - qk;
    }

    function testFuzz_detectionNeverOverstated(uint256 fRaw, uint256 kRaw) public pure {
        uint256 f = 1 + (fRaw % BPS);
        uint256 k = 1 + (kRaw % 19);
        uint256 p = Economics.detectionWad(f, k);
        uint256 exact = _exactWad(f, k);
        require(p <= exact, "p over-stated");
        require(exact - p <= 2 * k + 2, "p too coarse");
    }

    function testFuzz_detectionMonotone(uint256 fRaw, uint256 kRaw) public pure {
        uint256 f = 1 + (fRaw % (BPS - 1));
        uint256 k = 1 + (kRaw % 31);
        uint256 p = Economics.detectionWad(f, k);
        require(p <= WAD, "p <= 1");
        require(Economics.detectionWad(f + 1, k) >= p, "more faking is caught more");
        require(Economics.detectionWad(f, k + 1) >= p, "more samples catch more");
        require(Economics.detectionWad(BPS, k) == WAD, "faking everything is always caught");
    }

    /// The rule is exactly p * (S + R) > R * WAD; in particular it never accepts when p == 0 and
    /// always accepts a zero reward with p > 0.
    function testFuzz_cheatingLosesRule(uint256 fRaw, uint256 kRaw, uint128 stake, uint128 reward) public pure {
        uint256 f = 1 + (fRaw % BPS);
        uint256 k = 1 + (kRaw % 32);
        (bool loses, uint256 p) = Economics.cheatingLoses(f, k, stake, reward);
        require(loses == (p * (uint256(stake) + reward) > uint256(reward) * WAD), "rule");
        if (reward == 0) require(loses == (p > 0 && stake > 0), "zero reward");
        // with the whole stake at risk, a reward above S * p / (1 - p) is refused
        if (loses) require(uint256(reward) * (WAD - p) < p * uint256(stake) + p, "accepted only where expected loss >= gain");
    }
}
