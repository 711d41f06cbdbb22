// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ICanaries} from "./interfaces/ICanaries.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {ISettlement} from "./interfaces/ISettlement.sol";
import {IStakeRegistry} from "./interfaces/IStakeRegistry.sol";
import {Contribution, Verdict} from "./interfaces/Types.sol";
import {TraceCommitment} from "./libraries/TraceCommitment.sol";

/// @title Canaries
/// @notice Forced errors, as Truebit has them: the canary authority (CANARY_ROLE) runs node
/// accounts that claim ordinary slots and submit real training traces in which a random subset
/// of segments (each with probability 1/k) ends on a perturbed checkpoint. The trace root it
/// submits is sealed (`TraceCommitment.sealedRoot`) with `canarySeal(jobId, round, slot, node,
/// secret, faults)` where an honest node's seal is 32 random bytes, so nobody can tell a canary
/// from honest work without re-executing it, and a trace root opens to one seal only: the
/// faults are fixed before the sampling seed exists and cannot be chosen after the verdict.
/// Once the verifier has attested, the authority opens the seal (`reveal`): the contribution is
/// settled as a canary (never
/// accepted, never aggregated, the slot reopens, no escrow moves, the canary node's lock comes
/// back) and the verifier is judged against the verdict the faults imply for its sample. Right:
/// the fee from the canary pool, twice the fee for a caught fault (the bonus). Wrong (a lazy
/// pass, or a fail of a clean canary): its `verifierLock` is slashed and burned. Ordinary
/// contributions pay nothing for any of this.
contract Canaries is ICanaries, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice The canary authority: reveals canaries.
    bytes32 public constant CANARY_ROLE = keccak256("CANARY_ROLE");
    /// @notice Domain of canary seals (with the chain id and the market's address).
    bytes32 public constant CANARY_DOMAIN = keccak256("opentrain.canary");

    /// @notice The vault (its escrow holds the pool's tokens).
    IStakeRegistry public immutable stakes;
    /// @notice The job market (contributions, job parameters).
    IJobMarket public immutable market;
    /// @notice Settlement (settles a revealed canary; needs its CANARIES_ROLE).
    ISettlement public immutable settlement;
    /// @notice The token.
    IERC20 public immutable token;
    /// @notice Tokens in the vault's escrow that belong to the canary pool.
    uint256 public pool;

    /// @param stakes_ the StakeRegistry (this contract needs its TREASURER and SLASHER roles)
    /// @param market_ the JobMarket
    /// @param settlement_ the Settlement (grants this contract its CANARIES_ROLE)
    /// @param admin receives DEFAULT_ADMIN_ROLE (grants CANARY_ROLE)
    constructor(IStakeRegistry stakes_, IJobMarket market_, ISettlement settlement_, address admin) {
        if (
            address(stakes_) == address(0) || address(market_) == address(0) || address(settlement_) == address(0)
                || admin == address(0)
        ) revert CanariesInvalidParams("address");
        stakes = stakes_;
        market = market_;
        settlement = settlement_;
        token = stakes_.token();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Add `amount` tokens to the canary pool (pulled from the caller into the vault).
    /// @param amount token units, approved to this contract
    function fund(uint256 amount) external nonReentrant {
        if (amount == 0) revert CanariesInvalidParams("amount");
        pool += amount;
        emit CanaryPoolFunded(msg.sender, amount, pool);
        token.safeTransferFrom(msg.sender, address(stakes), amount);
        stakes.depositEscrow(msg.sender, amount);
    }

    /// @notice Open the seal of an attested, undisputed, unfinalized canary contribution and
    /// settle it (see the contract's notice).
    /// @param contributionId the canary contribution
    /// @param checkpointsRoot the root of its checkpoint tree (the trace root unsealed)
    /// @param secret the seal's secret
    /// @param faults bitmap of the faulty segments (bit j of word j / 256)
    function reveal(uint256 contributionId, bytes32 checkpointsRoot, bytes32 secret, uint256[] calldata faults)
        external
        onlyRole(CANARY_ROLE)
        nonReentrant
    {
        (address node, bool expectedFail) = _open(contributionId, checkpointsRoot, secret, faults);
        (address verifier, Verdict verdict) = settlement.settleCanary(contributionId);
        _judge(contributionId, node, verifier, (verdict == Verdict.Fail) == expectedFail, expectedFail);
    }

    /// @dev Check the seal against the trace root; whether the contribution's sample hits a fault.
    function _open(uint256 contributionId, bytes32 checkpointsRoot, bytes32 secret, uint256[] calldata faults)
        private
        view
        returns (address node, bool expectedFail)
    {
        Contribution memory c = market.getContribution(contributionId);
        bytes32 seal = _seal(c.jobId, c.round, c.slot, c.node, secret, faults);
        if (TraceCommitment.sealedRoot(checkpointsRoot, seal) != c.traceRoot) {
            revert CanariesSealMismatch(contributionId, seal);
        }
        return (c.node, _sampleHitsFault(settlement.sampledSegments(contributionId), faults));
    }

    /// @dev Pay a right verifier from the pool (twice the fee for a caught fault) or slash a
    /// wrong one; release the canary node's lock.
    function _judge(uint256 contributionId, address node, address verifier, bool right, bool expectedFail) private {
        uint256 fee = market.verifierFeeOf(contributionId);
        uint256 paid = right ? (expectedFail ? 2 * fee : fee) : 0;
        uint256 held = pool;
        if (paid > held) revert CanariesPoolTooSmall(held, paid);
        // unchecked: paid <= held
        unchecked {
            pool = held - paid;
        }
        uint256 verifierLock = settlement.verifierLock();
        uint256 slashed = right ? 0 : verifierLock;
        emit CanaryRevealed(contributionId, verifier, expectedFail, right, paid, slashed);
        stakes.payout(node, settlement.nodeLock(), 0, verifier, right ? verifierLock : 0, paid);
        if (!right) stakes.slash(verifier, verifierLock, address(0), new address[](0));
    }

    /// @inheritdoc ICanaries
    function canarySeal(
        uint256 jobId,
        uint256 round,
        uint256 slot,
        address node,
        bytes32 secret,
        uint256[] calldata faults
    ) external view returns (bytes32) {
        return _seal(jobId, round, slot, node, secret, faults);
    }

    function _seal(
        uint256 jobId,
        uint256 round,
        uint256 slot,
        address node,
        bytes32 secret,
        uint256[] calldata faults
    ) private view returns (bytes32) {
        bytes32 faultsHash = keccak256(abi.encodePacked(faults));
        return keccak256(
            abi.encode(CANARY_DOMAIN, block.chainid, address(market), jobId, round, slot, node, secret, faultsHash)
        );
    }

    /// @dev Whether a sampled segment's bit is set (a missing word counts as no fault).
    function _sampleHitsFault(uint256[] memory sampled, uint256[] calldata faults) private pure returns (bool) {
        for (uint256 i = 0; i < sampled.length; ++i) {
            uint256 word = sampled[i] / 256;
            if (word < faults.length && (faults[word] >> (sampled[i] % 256)) & 1 == 1) return true;
        }
        return false;
    }
}
