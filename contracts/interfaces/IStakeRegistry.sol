// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice Errors of the StakeRegistry.
interface IStakeRegistryErrors {
    error StakeRegistryInvalidParams(string reason);
    error StakeRegistryZeroAmount();
    error StakeRegistryAmountTooLarge(uint256 amount);
    error StakeRegistryInsufficientFreeStake(address account, uint256 free, uint256 needed);
    error StakeRegistryInsufficientLockedStake(address account, uint256 locked, uint256 needed);
    error StakeRegistryInsufficientEscrow(uint256 escrowed, uint256 needed);
    error StakeRegistryUnbondingNotReady(uint256 readyBlock);
    error StakeRegistryNothingUnbonding();
    error StakeRegistryNothingToWithdraw(address account);
    error StakeRegistryBelowVerifierMinimum(uint256 stake, uint256 minimum);
    error StakeRegistryAlreadyVerifier();
    error StakeRegistryNotVerifier();
    error StakeRegistryTooManyBeneficiaries(uint256 count, uint256 max);
    error StakeRegistryTooManyDraws(uint256 count, uint256 max);
    error StakeRegistryVerifierSetFull(uint256 max);
}

/// @notice Events of the StakeRegistry, read by the indexer, node and verifier daemons.
interface IStakeRegistryEvents {
    /// stake deposited; `total` is the account's stake afterwards
    event Staked(address indexed account, uint256 amount, uint256 total);
    /// free stake moved to unbonding, withdrawable from `readyAt` (unix seconds)
    event UnbondRequested(address indexed account, uint256 amount, uint256 readyAt);
    /// unbonded stake paid out
    event UnbondWithdrawn(address indexed account, uint256 amount);
    /// stake locked behind a claim, an assignment, a committee seat or a bond
    event StakeLocked(address indexed account, uint256 amount, uint256 totalLocked);
    /// a lock released without payment
    event StakeUnlocked(address indexed account, uint256 amount, uint256 totalLocked);
    /// tokens credited to the account (reward, fee or slash share); `total` is its unclaimed
    /// credit afterwards, withdrawable with `withdraw`
    event Credited(address indexed account, uint256 amount, uint256 total);
    /// locked stake taken: `reward` credited to `beneficiary`, `voterReward` to each majority
    /// voter, `burned` destroyed
    event StakeSlashed(
        address indexed account,
        uint256 amount,
        address indexed beneficiary,
        uint256 reward,
        uint256 voterReward,
        uint256 voters,
        uint256 burned
    );
    /// a sponsor's escrow deposited into the vault
    event EscrowDeposited(address indexed from, uint256 amount, uint256 totalEscrowed);
    /// escrow returned to a sponsor
    event EscrowReleased(address indexed to, uint256 amount, uint256 totalEscrowed);
    /// credits (rewards, fees, slash shares) withdrawn
    event CreditsWithdrawn(address indexed account, uint256 amount);
    event VerifierRegistered(address indexed verifier);
    event VerifierDeregistered(address indexed verifier);
}

/// @notice The vault: every token of the protocol (stakes, unbonding stake, job escrow and
/// unclaimed credits) sits here, so a payout is bookkeeping, never a token transfer between
/// contracts. JobMarket, Settlement and Disputes move value only through these calls.
interface IStakeRegistry is IStakeRegistryErrors, IStakeRegistryEvents {
    /// @notice The token every stake, escrow and credit is held in.
    function token() external view returns (IERC20);
    /// @notice Stake locked by each slot claim (token units).
    function minNodeStake() external view returns (uint256);
    /// @notice Stake needed to join the verifier set (token units).
    function minVerifierStake() external view returns (uint256);
    /// @notice Stake locked per verifier assignment and per committee seat (token units).
    function verifierLock() external view returns (uint256);
    /// @notice Stake locked by a dispute and behind a posted aggregate (token units).
    function disputeBond() external view returns (uint256);
    /// @notice Seconds from an unbond request until the stake can be withdrawn.
    function unbondingDelay() external view returns (uint256);
    /// @notice Blocks between a draw's snapshot block and the block whose weights it reads: the
    /// registration warm-up and the deregistration cooldown.
    function drawLag() external view returns (uint256);
    /// @notice Share of a slash credited to the winning party (basis points).
    function slashRewardBps() external view returns (uint256);
    /// @notice Share of a slash split among the majority voters of a committee (basis points).
    function committeeRewardBps() external view returns (uint256);
    /// @notice An account's stake (locked and free).
    function stakeOf(address account) external view returns (uint256);
    /// @notice The part of an account's stake that backs open claims, assignments, seats and bonds.
    function lockedOf(address account) external view returns (uint256);
    /// @notice Stake that can be locked or unbonded now.
    function freeStakeOf(address account) external view returns (uint256);
    /// @notice Unclaimed credits (rewards, fees, slash shares), withdrawable with `withdraw`.
    function creditsOf(address account) external view returns (uint256);
    /// @notice Verifiers registered now.
    function verifierCount() external view returns (uint256);
    /// @notice The address at `index` of the append-only verifier list (registration order of
    /// first registrations; never reordered; departed verifiers keep their position, weight 0).
    function verifierAt(uint256 index) external view returns (address);
    /// @notice A verifier's draw weight (its stake while registered, else 0) as of the end of
    /// block `blockNumber`.
    function weightAt(address verifier, uint256 blockNumber) external view returns (uint256);
    /// @notice The list a draw with snapshot block `snapshotBlock` walks: every listed address
    /// and its weight as of block `snapshotBlock - drawLag` (all zero if that is < 1).
    function verifierSnapshot(uint256 snapshotBlock)
        external
        view
        returns (address[] memory accounts, uint256[] memory weights);
    /// @notice Where ticket `counter` of `seed` lands (before any exclusion):
    /// t = uint256(keccak256(abi.encode(seed, tag, counter))) % totalWeight, the first list
    /// position whose cumulative weight exceeds t. Zero address when the total weight is zero.
    function drawTicket(bytes32 seed, bytes32 tag, uint256 snapshotBlock, uint256 counter)
        external
        view
        returns (address);
    /// @notice Whether `account` is in the verifier set.
    function isVerifier(address account) external view returns (bool);

    /// @notice Lock `amount` of `account`'s free stake (LOCKER_ROLE).
    function lock(address account, uint256 amount) external;
    /// @notice Release `amount` of `account`'s locked stake without payment (LOCKER_ROLE).
    function unlock(address account, uint256 amount) external;
    /// @notice Take `amount` of `account`'s locked stake (SLASHER_ROLE): `slashRewardBps` of it
    /// to `beneficiary` (none when zero), `committeeRewardBps` split among `voters`, the rest
    /// burned.
    function slash(address account, uint256 amount, address beneficiary, address[] calldata voters) external;
    /// @notice Take `amount` of `account`'s locked stake (SLASHER_ROLE): `payment` (<= amount)
    /// to `payee`, the rest burned.
    function slashWithPayment(address account, uint256 amount, address payee, uint256 payment) external;
    /// @notice Draw up to `count` distinct verifiers, stake-weighted from the snapshot of block
    /// `snapshotBlock` (see `drawTicket`), with tickets firstCounter, firstCounter+1, ... (at
    /// most MAX_DRAW_PROBES), skipping the `excluded` parties and those already drawn; a ticket
    /// on a verifier without `verifierLock` free stake now is skipped, or, with `stopAtLocked`,
    /// ends the draw (to be retried); lock `verifierLock` of each drawn (LOCKER_ROLE).
    /// @return drawn the verifiers drawn, in draw order
    /// @return nextCounter the first ticket counter not used (where a later draw continues)
    function drawAndLock(
        bytes32 seed,
        bytes32 tag,
        uint256 snapshotBlock,
        uint256 count,
        uint256 firstCounter,
        address[3] calldata excluded,
        bool stopAtLocked
    ) external returns (address[] memory drawn, uint256 nextCounter);
    /// @notice Book `amount` escrow tokens that JobMarket moved here from the sponsor `from`
    /// (TREASURER_ROLE).
    function depositEscrow(address from, uint256 amount) external;
    /// @notice Send `amount` escrow tokens back to `to` (TREASURER_ROLE).
    function releaseEscrow(address to, uint256 amount) external;
    /// @notice Settle an accepted contribution (TREASURER_ROLE): release both parties' locks and
    /// credit their payments from escrow.
    function payout(
        address node,
        uint256 nodeUnlock,
        uint256 nodeCredit,
        address verifier,
        uint256 verifierUnlock,
        uint256 verifierCredit
    ) external;
}
