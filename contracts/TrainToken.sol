// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title TrainToken
/// @notice The OpenTrain market token: fixed supply minted once, ERC-2612 permit, burnable
/// (slashed stake that goes to nobody is burned, so total supply only ever falls).
contract TrainToken is ERC20, ERC20Burnable, ERC20Permit {
    /// @param holder receives the whole fixed supply
    /// @param supply total supply in base units (18 decimals)
    constructor(address holder, uint256 supply) ERC20("OpenTrain Token", "TRAIN") ERC20Permit("OpenTrain Token") {
        _mint(holder, supply);
    }
}
