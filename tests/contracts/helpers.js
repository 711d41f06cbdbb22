// Shared fixtures and helpers of the contract tests (no tests here: mocha loads this file too,
// so it must have no side effects at import).
//
// The deployment mirrors opentrain/chain.py `deploy()` and `_wire_roles()` (issue 13: the
// constructors and defaults of ISSUE13_ABI.md, which chain.py is being adapted to), so what these
// tests show holds for the chain the Python side deploys.
import { expect } from "chai";
import { AbiCoder, keccak256, toUtf8Bytes, MaxUint256, sha256 } from "ethers";

export const TOKEN = 10n ** 18n;

/**
 * The deployment the tests use: the issue-13 defaults for a 2 s-block L2 (windows in seconds:
 * attest 10 min, challenge 30 min, vote 20 min, unbonding 1 day), except `drawLag` (10 blocks
 * here instead of 900, so fixtures need not mine 900 blocks after registering verifiers).
 */
export const PROTOCOL = Object.freeze({
  tokenSupply: 1_000_000_000n * TOKEN,
  minNodeStake: 100n * TOKEN,
  minVerifierStake: 100n * TOKEN,
  verifierLock: 50n * TOKEN,
  disputeBond: 20n * TOKEN,
  unbondingDelay: 86_400n,
  drawLag: 10n,
  attestWindow: 600n,
  challengeWindow: 1_800n,
  voteWindow: 1_200n,
  committeeSize: 3n,
  quorum: 2n,
  slashRewardBps: 5_000n,
  committeeRewardBps: 2_000n,
});

/** Production defaults (ISSUE13_ABI.md): the same with drawLag 900 blocks (30 min at 2 s). */
export const DEFAULTS = Object.freeze({ ...PROTOCOL, drawLag: 900n });

/** Limits.sol */
export const MAX_TAKEOVERS = 3n;
export const MAX_ESCALATIONS = 2n;
export const HISTORY_HORIZON = 8191n;

export const BPS = 10_000n;
export const SEED_HORIZON = 256n;

/** Tokens each participant receives from the deployer in the fixture. */
export const FUNDING = 10_000n * TOKEN;

export const REWARD = 10n * TOKEN;
export const FEE = 1n * TOKEN;

const coder = AbiCoder.defaultAbiCoder();

/** A digest-like value derived from a label (sha256, as the protocol's file digests are). */
/** `TraceCommitment.sealedRoot`: the trace root of a checkpoint tree root sealed with `seal`. */
export function sealedRoot(checkpointsRoot, seal) {
  return keccak256(
    AbiCoder.defaultAbiCoder().encode(["bytes32", "bytes32", "bytes32"], [keccak256(toUtf8Bytes("opentrain.trace")), checkpointsRoot, seal]),
  );
}

export function digest(label) {
  return sha256(toUtf8Bytes(label));
}

/** A valid job: 1 round of 2 slots, 8 segments, 2 samples, f = 10%. Override any field. */
export function jobParams(overrides = {}) {
  return {
    specDigest: digest("spec"),
    initialModelDigest: digest("G_0"),
    rounds: 1,
    slotsPerRound: 2,
    numSegments: 8,
    sampleCount: 2,
    rewardPerSlot: REWARD,
    verifierFee: FEE,
    claimTimeout: 50,
    cheatFractionBps: 1_000,
    // 0: every checkpoint published at submission (reveal.test.js covers availability on demand)
    revealWindow: 0,
    ...overrides,
  };
}

/** The escrow JobMarket takes for `params`. */
export function escrowOf(p) {
  return BigInt(p.rounds) * BigInt(p.slotsPerRound) * (BigInt(p.rewardPerSlot) + BigInt(p.verifierFee));
}

/** The params tuple as the JobCreated event carries it (for `.withArgs`). */
export function paramsTuple(p) {
  return [
    p.specDigest,
    p.initialModelDigest,
    BigInt(p.rounds),
    BigInt(p.slotsPerRound),
    BigInt(p.numSegments),
    BigInt(p.sampleCount),
    BigInt(p.rewardPerSlot),
    BigInt(p.verifierFee),
    BigInt(p.claimTimeout),
    BigInt(p.cheatFractionBps),
    BigInt(p.revealWindow),
  ];
}

// Enum values of interfaces/Types.sol.
export const JobStatus = Object.freeze({ None: 0n, Open: 1n, Completed: 2n, Cancelled: 3n });
export const SlotStatus = Object.freeze({ Open: 0n, Claimed: 1n, Submitted: 2n, Accepted: 3n });
export const ContributionStatus = Object.freeze({ None: 0n, Submitted: 1n, Accepted: 2n, Rejected: 3n });
export const Verdict = Object.freeze({ None: 0n, Pass: 1n, Fail: 2n });
export const Phase = Object.freeze({ None: 0n, Assigned: 1n, Disputed: 2n, Accepted: 3n, Rejected: 4n, Queued: 5n });
export const AggregateStatus = Object.freeze({ None: 0n, Pending: 1n, Disputed: 2n, Final: 3n });
export const DisputeKind = Object.freeze({ None: 0n, Contest: 1n, Challenge: 2n, Aggregate: 3n });
export const DisputeStatus = Object.freeze({ None: 0n, AwaitingCommittee: 1n, Voting: 2n, Resolved: 3n });
export const Ruling = Object.freeze({ None: 0n, Valid: 1n, Invalid: 2n, Undecided: 3n });

/** Deploy the five contracts with `PROTOCOL` (or overrides) and wire them as chain.py does. */
export async function deployProtocol(ethers, admin, { token, params = {} } = {}) {
  const p = { ...PROTOCOL, ...params };
  const stakes = await ethers.deployContract("StakeRegistry", [
    await token.getAddress(),
    admin.address,
    p.minNodeStake,
    p.minVerifierStake,
    p.verifierLock,
    p.disputeBond,
    p.unbondingDelay,
    p.drawLag,
    p.slashRewardBps,
    p.committeeRewardBps,
  ]);
  const market = await ethers.deployContract("JobMarket", [await stakes.getAddress(), admin.address, p.challengeWindow]);
  const settlement = await ethers.deployContract("Settlement", [
    await stakes.getAddress(),
    await market.getAddress(),
    admin.address,
    p.attestWindow,
  ]);
  const disputes = await ethers.deployContract("Disputes", [
    await stakes.getAddress(),
    await market.getAddress(),
    await settlement.getAddress(),
    admin.address,
    p.committeeSize,
    p.voteWindow,
    p.quorum,
  ]);
  const canaries = await ethers.deployContract("Canaries", [
    await stakes.getAddress(),
    await market.getAddress(),
    await settlement.getAddress(),
    admin.address,
  ]);
  const roles = {
    LOCKER_ROLE: await stakes.LOCKER_ROLE(),
    SLASHER_ROLE: await stakes.SLASHER_ROLE(),
    TREASURER_ROLE: await stakes.TREASURER_ROLE(),
    SETTLEMENT_ROLE: await market.SETTLEMENT_ROLE(),
    MARKET_DISPUTES_ROLE: await market.DISPUTES_ROLE(),
    GUARDIAN_ROLE: await market.GUARDIAN_ROLE(),
    DISPUTES_ROLE: await settlement.DISPUTES_ROLE(),
    CANARIES_ROLE: await settlement.CANARIES_ROLE(),
    CANARY_ROLE: await canaries.CANARY_ROLE(),
  };
  const [m, s, d] = [await market.getAddress(), await settlement.getAddress(), await disputes.getAddress()];
  const k = await canaries.getAddress();
  const grants = [
    [stakes, roles.LOCKER_ROLE, m],
    [stakes, roles.TREASURER_ROLE, m],
    [stakes, roles.LOCKER_ROLE, s],
    [stakes, roles.SLASHER_ROLE, s],
    [stakes, roles.TREASURER_ROLE, s],
    [stakes, roles.LOCKER_ROLE, d],
    [stakes, roles.SLASHER_ROLE, d],
    [market, roles.SETTLEMENT_ROLE, s],
    [market, roles.MARKET_DISPUTES_ROLE, d],
    [settlement, roles.DISPUTES_ROLE, d],
    [stakes, roles.SLASHER_ROLE, k],
    [stakes, roles.TREASURER_ROLE, k],
    [settlement, roles.CANARIES_ROLE, k],
    [canaries, roles.CANARY_ROLE, admin.address],
  ];
  for (const [c, role, who] of grants) await (await c.connect(admin).grantRole(role, who)).wait();
  return { stakes, market, settlement, disputes, canaries, roles, protocol: p };
}

/**
 * Deploy TrainToken and the protocol, give every participant FUNDING tokens and unlimited
 * approvals to the StakeRegistry (it pulls stakes) and the JobMarket (it moves escrow from the
 * sponsor into the vault). A named function so `loadFixture` snapshots it.
 */
export async function deployFixture({ ethers }) {
  const signers = await ethers.getSigners();
  const [admin, sponsor, node1, node2, node3, v1, v2, v3, v4, v5, v6, outsider, sponsor2] = signers;
  const token = await ethers.deployContract("TrainToken", [admin.address, PROTOCOL.tokenSupply]);
  const deployed = await deployProtocol(ethers, admin, { token });
  const participants = [sponsor, node1, node2, node3, v1, v2, v3, v4, v5, v6, outsider, sponsor2];
  const stakesAddr = await deployed.stakes.getAddress();
  const marketAddr = await deployed.market.getAddress();
  for (const p of participants) {
    await (await token.transfer(p.address, FUNDING)).wait();
    await (await token.connect(p).approve(stakesAddr, MaxUint256)).wait();
    await (await token.connect(p).approve(marketAddr, MaxUint256)).wait();
  }
  return {
    token,
    ...deployed,
    ...deployed.roles,
    admin,
    sponsor,
    node1,
    node2,
    node3,
    verifier1: v1,
    verifier2: v2,
    verifiers: [v1, v2, v3, v4, v5, v6],
    outsider,
    sponsor2,
    signers,
    accounts: [admin, ...participants].map((s) => s.address),
  };
}

/**
 * deployFixture plus: both nodes staked exactly minNodeStake (one claim each), two verifiers
 * staked minVerifierStake and registered, and job 1 (jobParams()) created by the sponsor.
 */
export async function jobFixture(connection) {
  const f = await deployFixture(connection);
  const { stakes, market, node1, node2, verifier1, verifier2, sponsor } = f;
  for (const n of [node1, node2]) await (await stakes.connect(n).stake(PROTOCOL.minNodeStake)).wait();
  for (const v of [verifier1, verifier2]) {
    await (await stakes.connect(v).stake(PROTOCOL.minVerifierStake)).wait();
    await (await stakes.connect(v).registerVerifier()).wait();
  }
  await warmUp(connection);
  const params = jobParams();
  await (await market.connect(sponsor).createJob(params, "bafy-spec", "bafy-g0")).wait();
  return { ...f, params, jobId: 1n };
}

/** Mine past the draw lag, so verifiers registered so far are in every later snapshot. */
export async function warmUp({ networkHelpers }) {
  await networkHelpers.mine(PROTOCOL.drawLag + 1n);
}

/**
 * The court: three nodes with 300 staked (a claim, a bond and room to spare), six verifiers with
 * 200 staked and registered (enough for an assignment plus committees), job 1 created.
 */
export async function courtFixture(connection) {
  const f = await deployFixture(connection);
  const { stakes, market, node1, node2, node3, verifiers, sponsor } = f;
  for (const n of [node1, node2, node3]) await (await stakes.connect(n).stake(300n * TOKEN)).wait();
  for (const v of verifiers) {
    await (await stakes.connect(v).stake(200n * TOKEN)).wait();
    await (await stakes.connect(v).registerVerifier()).wait();
  }
  await warmUp(connection);
  const params = jobParams();
  await (await market.connect(sponsor).createJob(params, "bafy-spec", "bafy-g0")).wait();
  return { ...f, params, jobId: 1n };
}

/**
 * Conservation, checked exactly: the vault's tokens == escrowed + every account's stake,
 * unbonding and credits; escrowed == the sum of the jobs' escrow; no other contract holds
 * tokens; nobody's locks exceed their stake.
 */
export async function expectConservation(f, extraAccounts = []) {
  const { token, stakes, market, settlement, disputes, canaries, accounts } = f;
  const vault = await token.balanceOf(await stakes.getAddress());
  for (const c of [market, settlement, disputes, canaries]) {
    expect(await token.balanceOf(await c.getAddress())).to.equal(0n);
  }
  const escrowed = await stakes.escrowed();
  let jobsEscrow = 0n;
  const jobCount = await market.jobCount();
  for (let id = 1n; id <= jobCount; id++) jobsEscrow += (await market.jobState(id)).escrow;
  expect(escrowed, "vault escrow == sum of job escrows + canary pool").to.equal(jobsEscrow + (await canaries.pool()));
  let owed = escrowed;
  for (const a of [...accounts, ...extraAccounts]) {
    const staked = await stakes.stakeOf(a);
    const locked = await stakes.lockedOf(a);
    expect(locked <= staked, `locked <= staked for ${a}`).to.equal(true);
    owed += staked + (await stakes.unbondingOf(a)).amount + (await stakes.creditsOf(a));
  }
  expect(vault, "vault == escrow + stakes + unbonding + credits").to.equal(owed);
  return vault;
}

/** The id of the contribution in a submitContribution receipt. */
export function contributionIdFrom(market, receipt) {
  return eventArgs(market, receipt, "ContributionSubmitted").contributionId;
}

/** The first event `name` of `contract` in `receipt`, parsed. */
export function eventArgs(contract, receipt, name) {
  for (const log of receipt.logs) {
    try {
      const parsed = contract.interface.parseLog(log);
      if (parsed?.name === name) return parsed.args;
    } catch {
      // a log of another contract
    }
  }
  throw new Error(`no ${name} in receipt`);
}

/** The timestamp of a receipt's block. */
export async function timeOf(receipt) {
  return BigInt((await receipt.getBlock()).timestamp);
}

/** Make the next transaction execute at unix time `target` (one block is mined at target - 1 if needed). */
export async function executeNextAtTime(networkHelpers, target) {
  await networkHelpers.time.setNextBlockTimestamp(BigInt(target));
}

/** Let `seconds` pass (mines one block `seconds` later). */
export async function pass(networkHelpers, seconds) {
  await networkHelpers.time.increase(BigInt(seconds));
}

/** Mine blocks so that the next transaction executes in block `target`. */
export async function executeNextAt(ethers, networkHelpers, target) {
  const latest = BigInt(await ethers.provider.getBlockNumber());
  const want = BigInt(target) - 1n;
  if (want < latest) throw new Error(`block ${target} already passed (latest ${latest})`);
  if (want > latest) await networkHelpers.mine(want - latest);
}

/** The seed Settlement.recordSeed stores: keccak256(abi.encode(blockhash(seedBlock), id)). */
export async function expectedSeed(ethers, seedBlock, contributionId) {
  const block = await ethers.provider.getBlock(Number(seedBlock));
  return keccak256(coder.encode(["bytes32", "uint256"], [block.hash, contributionId]));
}

export const VERIFIER_TAG = keccak256(toUtf8Bytes("opentrain.verifier"));
export const COMMITTEE_TAG = keccak256(toUtf8Bytes("opentrain.committee"));

/** Sampling.ticket: uint256(keccak256(abi.encode(seed, tag, counter))) % total. */
export function ticket(seed, tag, counter, total) {
  return BigInt(keccak256(coder.encode(["bytes32", "bytes32", "uint256"], [seed, tag, counter]))) % BigInt(total);
}

/**
 * The draw rule mirrored (what the Python client must do, ISSUE13_ABI.md): `snapshot` is
 * [[address, weight], ...] in list order (StakeRegistry.verifierSnapshot); ticket `counter`
 * lands on the first position whose cumulative weight exceeds it. Returns the address (null
 * when the total weight is zero).
 */
export function drawOne(seed, tag, counter, snapshot) {
  let total = 0n;
  const cumulative = snapshot.map(([, w]) => (total += BigInt(w)));
  if (total === 0n) return null;
  const t = ticket(seed, tag, counter, total);
  const i = cumulative.findIndex((c) => c > t);
  return snapshot[i][0];
}

/**
 * drawAndLock mirrored: tickets firstCounter.. (at most 32) until `count` distinct verifiers are
 * found; tickets on `excluded` addresses or ones already drawn are skipped; a ticket on a verifier
 * for which `free(address)` is false is skipped too, or, with `stopAtLocked` (Settlement's draws),
 * ends the draw with `next` = that ticket.
 */
export function drawMany(seed, tag, snapshot, count, firstCounter, excluded, free, stopAtLocked) {
  const drawn = [];
  let c = BigInt(firstCounter);
  const end = c + 32n;
  const total = snapshot.reduce((a, [, w]) => a + BigInt(w), 0n);
  if (total === 0n) return { drawn, next: end };
  for (; c < end && drawn.length < count; c++) {
    const v = drawOne(seed, tag, c, snapshot);
    if (excluded.includes(v) || drawn.includes(v)) continue;
    if (!free(v)) {
      if (stopAtLocked) break;
      continue;
    }
    drawn.push(v);
  }
  return { drawn, next: c };
}

/** The snapshot of block `snapshotBlock` as [[address, weight], ...]. */
export async function snapshotOf(stakes, snapshotBlock) {
  const [accounts, weights] = await stakes.verifierSnapshot(snapshotBlock);
  return accounts.map((a, i) => [a, weights[i]]);
}

/** keccak256(abi.encode(bytes32[] digests)): what `attest` commits to. */
export function digestsHash(digests) {
  return keccak256(coder.encode(["bytes32[]"], [digests]));
}

export const REPORT_HASH = digestsHash([digest("recomputed 0"), digest("recomputed 1")]);

/**
 * Sampling.sampleIndices re-implemented: partial Fisher-Yates over a sparse swap map.
 * For i in 0..k-1: j = i + uint256(keccak256(abi.encode(seed, i))) % (n - i); out[i] = value at
 * j; value at j := value at i; an unset position holds its own index.
 */
export function sampleIndices(seed, n, k) {
  n = BigInt(n);
  k = BigInt(k);
  if (k > n) throw new RangeError(`cannot sample ${k} of ${n}`);
  const swapped = new Map();
  const valueAt = (p) => (swapped.has(p) ? swapped.get(p) : p);
  const out = [];
  for (let i = 0n; i < k; i++) {
    const j = i + (BigInt(keccak256(coder.encode(["bytes32", "uint256"], [seed, i]))) % (n - i));
    out.push(valueAt(j));
    swapped.set(j, valueAt(i));
  }
  return out;
}

/** The signer among `signers` whose address is `address`. */
export function signerOf(signers, address) {
  const s = signers.find((x) => x.address.toLowerCase() === address.toLowerCase());
  if (!s) throw new Error(`no signer for ${address}`);
  return s;
}

/** Claim `slot` and submit; returns the contribution id and the submission block. */
export async function claimAndSubmit(f, { node, slot = 0n, round = 0n, jobId = 1n, traceRoot } = {}) {
  const { market } = f;
  await (await market.connect(node).claimSlot(jobId, round, slot)).wait();
  const root = traceRoot ?? digest(`trace ${jobId}/${round}/${slot}`);
  const receipt = await (
    await market
      .connect(node)
      .submitContribution(jobId, round, slot, digest(`out ${jobId}/${round}/${slot}`), root, "bafy-out", "bafy-manifest")
  ).wait();
  return { id: contributionIdFrom(market, receipt), submitBlock: BigInt(receipt.blockNumber) };
}

/**
 * Claim `slot`, submit, record the seed two blocks later and return everything the later steps
 * need. The nodes must be staked and at least one verifier registered.
 */
export async function claimSubmitSeed(f, { networkHelpers }, options = {}) {
  const { settlement, signers } = f;
  const { id, submitBlock } = await claimAndSubmit(f, options);
  await networkHelpers.mine(); // the seed block submitBlock + 1; recordSeed runs in the block after
  const rx = await (await settlement.recordSeed(id)).wait();
  const v = await settlement.verification(id);
  const at = BigInt((await rx.getBlock()).timestamp);
  return {
    id,
    submitBlock,
    seedRecordedAt: at,
    seedRecordedBlock: BigInt(rx.blockNumber),
    verifier: signerOf(signers, v.verifier),
    verification: v,
  };
}

/** Claim, submit, seed, attest `pass`; returns the ids and the attesting block. */
export async function attested(f, connection, options = {}) {
  const out = await claimSubmitSeed(f, connection, options);
  const rx = await (
    await f.settlement.connect(out.verifier).attest(out.id, options.pass ?? true, "bafy-report", REPORT_HASH)
  ).wait();
  return { ...out, attestedAt: BigInt((await rx.getBlock()).timestamp), attestedBlock: BigInt(rx.blockNumber) };
}

/** Open a dispute on `id` as `who`, draw its committee; returns the dispute id and members. */
export async function disputeAndDraw(f, { networkHelpers }, id, who) {
  const { disputes, signers } = f;
  const rx = await (await disputes.connect(who).disputeContribution(id)).wait();
  const disputeId = eventArgs(disputes, rx, "DisputeOpened").disputeId;
  await networkHelpers.mine();
  const drawRx = await (await disputes.drawCommittee(disputeId)).wait();
  const drawn = eventArgs(disputes, drawRx, "CommitteeDrawn");
  return {
    disputeId,
    openedAt: BigInt(rx.blockNumber),
    drawnAt: BigInt(drawRx.blockNumber),
    drawnTime: await timeOf(drawRx),
    voteDeadline: drawn.voteDeadline,
    members: drawn.members.map((a) => signerOf(signers, a)),
  };
}
