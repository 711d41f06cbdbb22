// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Verdict} from "./Types.sol";

/// @notice Errors of the Settlement contract.
interface ISettlementErrors {
    error SettlementInvalidParams(string reason);
    error SettlementNotSubmitted(uint256 contributionId);
    error SettlementSeedAlreadyRecorded(uint256 contributionId);
    error SettlementSeedNotReady(uint256 contributionId, uint256 seedBlock);
    error SettlementSeedNotRecorded(uint256 contributionId);
    error SettlementNoVerifiers();
    error SettlementNotAssignedVerifier(address caller, address assigned);
    error SettlementAlreadyAttested(uint256 contributionId);
    error SettlementAttestWindowClosed(uint256 contributionId, uint256 deadline);
    error SettlementNotAttested(uint256 contributionId);
    error SettlementAlreadyFinalized(uint256 contributionId);
    error SettlementChallengeWindowOpen(uint256 contributionId, uint256 readyBlock);
    error SettlementNothingToWithdraw(address account);
}

/// @notice Events of the Settlement contract, read by verifiers, nodes, the indexer, auditors.
interface ISettlementEvents {
    event SeedRecorded(uint256 indexed contributionId, bytes32 seed, uint256 seedBlock, address indexed verifier);
    event SeedBlockReset(uint256 indexed contributionId, uint256 newSeedBlock);
    event Attested(uint256 indexed contributionId, address indexed verifier, bool pass, string reportCid);
    event ContributionFinalized(
        uint256 indexed contributionId, bool accepted, uint256 nodeReward, uint256 verifierPayment, uint256 slashed
    );
    event CreditsWithdrawn(address indexed account, uint256 amount);
}

/// @notice Seeds, sampling, verifier assignment, attestations, payouts and slashes.
interface ISettlement is ISettlementErrors, ISettlementEvents {
    /// @notice What the chain knows about a contribution's verification.
    struct Verification {
        bytes32 seed;
        uint64 seedBlock;
        uint64 seedRecordedAt;
        address verifier;
        Verdict verdict;
        uint64 attestedAt;
        bool finalized;
    }
}
