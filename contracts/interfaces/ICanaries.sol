// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice Errors of the Canaries contract.
interface ICanariesErrors {
    error CanariesInvalidParams(string reason);
    error CanariesSealMismatch(uint256 contributionId, bytes32 seal);
    error CanariesPoolTooSmall(uint256 pool, uint256 needed);
}

/// @notice Events of the Canaries contract.
interface ICanariesEvents {
    /// the canary pool grew by `amount` (now `pool`)
    event CanaryPoolFunded(address indexed from, uint256 amount, uint256 pool);
    /// contribution `contributionId` was a canary: its verdict should have been a fail iff
    /// `expectedFail`; the verifier was right or not, was paid `paid` from the pool, lost `slashed`
    event CanaryRevealed(
        uint256 indexed contributionId,
        address indexed verifier,
        bool expectedFail,
        bool verdictRight,
        uint256 paid,
        uint256 slashed
    );
}

/// @notice Forced errors that make lazy verification lose money (contracts/CANARIES.md).
interface ICanaries is ICanariesErrors, ICanariesEvents {
    /// @notice The seal a canary's trace root carries (`TraceCommitment.sealedRoot`): binds the
    /// job, round and slot, the canary's node account, a secret and the bitmap of segments
    /// whose end checkpoint was made wrong.
    function canarySeal(
        uint256 jobId,
        uint256 round,
        uint256 slot,
        address node,
        bytes32 secret,
        uint256[] calldata faults
    ) external view returns (bytes32);
}
