// Shared fixtures and helpers of the contract tests (no tests here: mocha loads this file too,
// so it must have no side effects at import).
//
// The deployment mirrors opentrain/chain.py `deploy()` and `_wire_roles()` with the default
// `ProtocolParams`, so what these tests show holds for the chain the Python side deploys.
import { expect } from "chai";
import { AbiCoder, keccak256, toUtf8Bytes, MaxUint256, sha256 } from "ethers";

export const TOKEN = 10n ** 18n;

/** opentrain/chain.py ProtocolParams defaults. */
export const PROTOCOL = Object.freeze({
  tokenSupply: 1_000_000_000n * TOKEN,
  minNodeStake: 100n * TOKEN,
  minVerifierStake: 100n * TOKEN,
  unbondingDelay: 100n,
  attestWindow: 20n,
  challengeWindow: 5n,
  slashRewardBps: 5_000n,
});

/** Tokens each participant receives from the deployer in the fixture. */
export const FUNDING = 10_000n * TOKEN;

export const REWARD = 10n * TOKEN;
export const FEE = 1n * TOKEN;

const coder = AbiCoder.defaultAbiCoder();

/** A digest-like value derived from a label (sha256, as the protocol's file digests are). */
export function digest(label) {
  return sha256(toUtf8Bytes(label));
}

/** A valid job: 1 round of 2 slots, 8 segments, 2 samples. Override any field. */
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
  ];
}

// Enum values of interfaces/Types.sol.
export const JobStatus = Object.freeze({ None: 0n, Open: 1n, Completed: 2n });
export const SlotStatus = Object.freeze({ Open: 0n, Claimed: 1n, Submitted: 2n, Accepted: 3n });
export const ContributionStatus = Object.freeze({ None: 0n, Submitted: 1n, Accepted: 2n, Rejected: 3n });
export const Verdict = Object.freeze({ None: 0n, Pass: 1n, Fail: 2n });

/**
 * Deploy and wire the four contracts exactly as opentrain/chain.py `deploy()` does, then give
 * every participant FUNDING tokens and an unlimited approval to StakeRegistry and JobMarket.
 * A named function so `loadFixture` snapshots it.
 */
export async function deployFixture({ ethers }) {
  const signers = await ethers.getSigners();
  const [admin, sponsor, node1, node2, verifier1, verifier2, outsider, sponsor2] = signers;

  const token = await ethers.deployContract("TrainToken", [admin.address, PROTOCOL.tokenSupply]);
  const stakes = await ethers.deployContract("StakeRegistry", [
    await token.getAddress(),
    admin.address,
    PROTOCOL.minNodeStake,
    PROTOCOL.minVerifierStake,
    PROTOCOL.unbondingDelay,
  ]);
  const market = await ethers.deployContract("JobMarket", [
    await token.getAddress(),
    await stakes.getAddress(),
    admin.address,
  ]);
  const settlement = await ethers.deployContract("Settlement", [
    await token.getAddress(),
    await stakes.getAddress(),
    await market.getAddress(),
    admin.address,
    PROTOCOL.attestWindow,
    PROTOCOL.challengeWindow,
    PROTOCOL.slashRewardBps,
  ]);

  const LOCKER_ROLE = await stakes.LOCKER_ROLE();
  const SLASHER_ROLE = await stakes.SLASHER_ROLE();
  await (await stakes.grantRole(LOCKER_ROLE, await market.getAddress())).wait();
  await (await stakes.grantRole(LOCKER_ROLE, await settlement.getAddress())).wait();
  await (await stakes.grantRole(SLASHER_ROLE, await settlement.getAddress())).wait();
  await (await market.setSettlement(await settlement.getAddress())).wait();

  const participants = [sponsor, node1, node2, verifier1, verifier2, outsider, sponsor2];
  for (const p of participants) {
    await (await token.transfer(p.address, FUNDING)).wait();
    await (await token.connect(p).approve(await stakes.getAddress(), MaxUint256)).wait();
    await (await token.connect(p).approve(await market.getAddress(), MaxUint256)).wait();
  }

  return {
    token,
    stakes,
    market,
    settlement,
    admin,
    sponsor,
    node1,
    node2,
    verifier1,
    verifier2,
    outsider,
    sponsor2,
    signers,
    LOCKER_ROLE,
    SLASHER_ROLE,
    accounts: [admin, ...participants].map((s) => s.address),
  };
}

/**
 * deployFixture plus: both nodes staked exactly minNodeStake (one claim each), both verifiers
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
  const params = jobParams();
  await (await market.connect(sponsor).createJob(params, "bafy-spec", "bafy-g0")).wait();
  return { ...f, params, jobId: 1n };
}

/** Check: contract token holdings == open escrow + stakes + unbonding + unclaimed credits. */
export async function expectConservation(f) {
  const { token, stakes, market, settlement, accounts } = f;
  const held =
    (await token.balanceOf(await stakes.getAddress())) +
    (await token.balanceOf(await market.getAddress())) +
    (await token.balanceOf(await settlement.getAddress()));
  let owed = 0n;
  const jobCount = await market.jobCount();
  for (let id = 1n; id <= jobCount; id++) owed += (await market.jobState(id)).escrow;
  const all = [...accounts, await settlement.getAddress(), await market.getAddress()];
  for (const a of all) {
    owed += await stakes.stakeOf(a);
    owed += (await stakes.unbondingOf(a)).amount;
    owed += await settlement.credits(a);
  }
  expect(held, "contract holdings == escrow + stakes + unbonding + credits").to.equal(owed);
  return held;
}

/** The id of the contribution in a submitContribution receipt. */
export function contributionIdFrom(market, receipt) {
  for (const log of receipt.logs) {
    try {
      const parsed = market.interface.parseLog(log);
      if (parsed?.name === "ContributionSubmitted") return parsed.args.contributionId;
    } catch {
      // a log of another contract
    }
  }
  throw new Error("no ContributionSubmitted in receipt");
}

/** Mine blocks so that the next transaction executes in block `target`. */
export async function executeNextAt(ethers, networkHelpers, target) {
  const latest = BigInt(await ethers.provider.getBlockNumber());
  const want = BigInt(target) - 1n;
  if (want < latest) throw new Error(`block ${target} already passed (latest ${latest})`);
  if (want > latest) await networkHelpers.mine(want - latest);
}

/** The seed Settlement.recordSeed stores: keccak256(abi.encode(blockhash(submitBlock+1), id)). */
export async function expectedSeed(ethers, submitBlock, contributionId) {
  const block = await ethers.provider.getBlock(Number(submitBlock) + 1);
  return keccak256(coder.encode(["bytes32", "uint256"], [block.hash, contributionId]));
}

export const VERIFIER_TAG = keccak256(toUtf8Bytes("opentrain.verifier"));

/** Sampling.verifierIndex: keccak256(abi.encode(seed, VERIFIER_TAG)) % count. */
export function verifierIndex(seed, count) {
  return BigInt(keccak256(coder.encode(["bytes32", "bytes32"], [seed, VERIFIER_TAG]))) % BigInt(count);
}

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

/**
 * Claim `slot`, submit, record the seed two blocks later and return everything the later steps
 * need. The nodes must be staked and at least one verifier registered.
 */
export async function claimSubmitSeed(f, { networkHelpers }, { node, slot = 0n, round = 0n, jobId = 1n, traceRoot } = {}) {
  const { market, settlement, signers } = f;
  await (await market.connect(node).claimSlot(jobId, round, slot)).wait();
  const root = traceRoot ?? digest(`trace ${jobId}/${round}/${slot}`);
  const receipt = await (
    await market
      .connect(node)
      .submitContribution(jobId, round, slot, digest(`out ${jobId}/${round}/${slot}`), root, "bafy-out", "bafy-manifest")
  ).wait();
  const id = contributionIdFrom(market, receipt);
  await networkHelpers.mine(); // the seed block submitBlock + 1; recordSeed runs in the block after
  await (await settlement.recordSeed(id)).wait();
  const v = await settlement.verification(id);
  return { id, submitBlock: BigInt(receipt.blockNumber), verifier: signerOf(signers, v.verifier), verification: v };
}
