// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";

/// @title ReentrantToken
/// @notice TEST ONLY. A malicious ERC-20: when armed, every balance change calls back into a
/// target of the test's choosing (as a hostile token or an ERC-777-style receiver hook would),
/// once, and records whether that reentrant call succeeded and what it reverted with.
contract ReentrantToken is ERC20, ERC20Burnable {
    address public hookTarget;
    bytes public hookData;
    bool public armed;
    uint256 public attempts;
    bool public lastSuccess;
    bytes public lastReturn;

    constructor(address holder, uint256 supply) ERC20("Reentrant", "EVIL") {
        _mint(holder, supply);
    }

    /// @notice Call `target` with `data` from inside the next transfer, mint or burn.
    function arm(address target, bytes calldata data) external {
        hookTarget = target;
        hookData = data;
        armed = true;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (!armed) return;
        armed = false;
        attempts += 1;
        (bool ok, bytes memory ret) = hookTarget.call(hookData);
        lastSuccess = ok;
        lastReturn = ret;
    }
}

/// @title Reenterer
/// @notice TEST ONLY. A hostile participant: a contract account that stakes, claims, submits and
/// withdraws through `exec`, and whose `reenter` (called from the token hook) tries a second,
/// reentrant call and bubbles up its revert.
contract Reenterer {
    address public reentryTarget;
    bytes public reentryData;

    /// @notice Make any call as this contract (stake, claim, submit, withdraw, ...).
    function exec(address target, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }

    /// @notice What `reenter` calls.
    function setReentry(address target, bytes calldata data) external {
        reentryTarget = target;
        reentryData = data;
    }

    /// @notice The reentrant call (made from inside the token's transfer).
    function reenter() external {
        (bool ok, bytes memory ret) = reentryTarget.call(reentryData);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
    }
}
