// Trace commitments (OpenZeppelin StandardMerkleTree sealed by TraceCommitment.sealedRoot <->
// Settlement.verifyCheckpoint) and the
// sampling rule (Settlement.sampleIndices <-> its JS re-implementation <-> opentrain.sampling).
import { expect } from "chai";
import { network } from "hardhat";
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";
import { keccak256, sha256, toUtf8Bytes } from "ethers";
import { jobFixture, contributionIdFrom, digest, sampleIndices, sealedRoot } from "./helpers.js";

const connection = await network.create();
const { networkHelpers } = connection;
const { loadFixture } = networkHelpers;

/** sha256 of checkpoint i, as the manifest lists it (here: of a stand-in file). */
const checkpointDigest = (i) => sha256(toUtf8Bytes(`checkpoint ${i}`));

/** Deterministic pseudo-random 256-bit words (keccak of a label and a counter), so failures reproduce. */
function* randomWords(label) {
  for (let i = 0; ; i++) yield BigInt(keccak256(toUtf8Bytes(`${label} ${i}`)));
}

describe("trace commitments: StandardMerkleTree roots verify on-chain", function () {
  const CHECKPOINTS = 9;
  const values = Array.from({ length: CHECKPOINTS }, (_, i) => [i, checkpointDigest(i)]);
  const tree = StandardMerkleTree.of(values, ["uint256", "bytes32"]);
  const seal = digest("a random seal");
  const root = sealedRoot(tree.root, seal);

  async function submittedTrace() {
    const f = await loadFixture(jobFixture);
    const { market, node1 } = f;
    await (await market.connect(node1).claimSlot(1n, 0n, 0n)).wait();
    const rx = await (
      await market
        .connect(node1)
        .submitContribution(1n, 0n, 0n, checkpointDigest(CHECKPOINTS - 1), root, "bafy-out", "bafy-manifest")
    ).wait();
    return { ...f, id: contributionIdFrom(market, rx) };
  }

  it("the npm tree's root and its sealed root equal opentrain.protocol.commitments' (Python)", function () {
    // Computed with: t = build_trace_tree([sha256(f"checkpoint {i}".encode()).digest() for i in range(9)],
    // seal=sha256(b"a random seal").digest()); t.checkpoints_root, t.root
    expect(tree.root).to.equal("0xfa30be398aa36edffca4fa61dffc93375d1a8410151917fdda724bd46d84cd6b");
    expect(root).to.equal("0x4f96233b7c3ceb49aaadaa76e6f449804fd058c511dbc38c92abf470bd0cf389");
  });

  it("verifyCheckpoint is true for every checkpoint with its proof", async function () {
    const { settlement, market, id } = await submittedTrace();
    expect((await market.getContribution(id)).traceRoot).to.equal(root);
    for (const [i, d] of tree.entries()) {
      expect(i).to.equal(d[0]);
      const proof = tree.getProof(i);
      expect(await settlement.verifyCheckpoint(id, d[0], d[1], proof, seal), `checkpoint ${d[0]}`).to.equal(true);
    }
  });

  it("verifyCheckpoint is false for a wrong digest, a wrong index, another leaf's proof, another seal, another contribution", async function () {
    const { settlement, id } = await submittedTrace();
    for (let i = 0; i < CHECKPOINTS; i++) {
      const proof = tree.getProof(i);
      const d = checkpointDigest(i);
      expect(await settlement.verifyCheckpoint(id, i, digest(`forged ${i}`), proof, seal)).to.equal(false);
      expect(await settlement.verifyCheckpoint(id, i, checkpointDigest((i + 1) % CHECKPOINTS), proof, seal)).to.equal(false);
      expect(await settlement.verifyCheckpoint(id, (i + 1) % CHECKPOINTS, d, proof, seal)).to.equal(false);
      expect(await settlement.verifyCheckpoint(id, i + CHECKPOINTS, d, proof, seal)).to.equal(false);
      expect(await settlement.verifyCheckpoint(id, i, d, tree.getProof((i + 1) % CHECKPOINTS), seal)).to.equal(false);
      expect(await settlement.verifyCheckpoint(id, i, d, [], seal)).to.equal(false);
      expect(await settlement.verifyCheckpoint(id, i, d, proof, digest("another seal"))).to.equal(false);
      expect(await settlement.verifyCheckpoint(id + 1n, i, d, proof, seal)).to.equal(false); // unknown: root 0
    }
  });
});

describe("sampling: Settlement.sampleIndices", function () {
  async function settlementOnly() {
    return loadFixture(jobFixture);
  }

  it("returns k distinct indices in [0, n) for many random seeds and sizes", async function () {
    const { settlement } = await settlementOnly();
    const rnd = randomWords("sampling sizes");
    const cases = [
      [1n, 1n],
      [1n, 0n],
      [2n, 2n],
      [32n, 32n],
      [4096n, 32n],
      [4096n, 0n],
      [33n, 32n],
    ];
    for (let t = 0; t < 120; t++) {
      const n = 1n + (rnd.next().value % 4096n);
      const cap = n < 32n ? n : 32n;
      const k = rnd.next().value % (cap + 1n);
      cases.push([n, k]);
    }
    const seeds = randomWords("sampling seeds");
    for (const [n, k] of cases) {
      const seed = "0x" + seeds.next().value.toString(16).padStart(64, "0");
      const out = await settlement.sampleIndices(seed, n, k);
      expect(out.length, `n=${n} k=${k}`).to.equal(Number(k));
      expect(new Set(out.map(String)).size, `distinct n=${n} k=${k}`).to.equal(Number(k));
      for (const x of out) expect(x < n && x >= 0n, `in range n=${n}`).to.equal(true);
      if (k === n) expect([...out].sort((a, b) => (a < b ? -1 : 1))).to.deep.equal([...Array(Number(n)).keys()].map(BigInt));
    }
  });

  it("reverts SamplingTooManySamples when k > n", async function () {
    const { settlement } = await settlementOnly();
    const seed = digest("seed");
    for (const [n, k] of [
      [0n, 1n],
      [4n, 5n],
      [31n, 32n],
    ]) {
      await expect(settlement.sampleIndices(seed, n, k))
        .to.be.revertedWithCustomError(settlement, "SamplingTooManySamples")
        .withArgs(k, n);
    }
    expect(() => sampleIndices(seed, 4n, 5n)).to.throw(RangeError);
    // k is capped like any job's sample count, so the view's loop is bounded too
    await expect(settlement.sampleIndices(seed, 4096n, 33n))
      .to.be.revertedWithCustomError(settlement, "SettlementInvalidParams")
      .withArgs("k");
  });

  it("agrees with the JS re-implementation of the rule on 100 random seeds", async function () {
    const { settlement } = await settlementOnly();
    const rnd = randomWords("sampling agreement");
    for (let t = 0; t < 100; t++) {
      const seed = "0x" + rnd.next().value.toString(16).padStart(64, "0");
      const n = 1n + (rnd.next().value % (t % 2 === 0 ? 4096n : 40n)); // large and small n
      const k = rnd.next().value % ((n < 32n ? n : 32n) + 1n);
      expect(await settlement.sampleIndices(seed, n, k), `seed ${seed} n=${n} k=${k}`).to.deep.equal(
        sampleIndices(seed, n, k),
      );
    }
  });

  it("agrees with opentrain.sampling.sample_indices (Python) on fixed vectors", async function () {
    const { settlement } = await settlementOnly();
    // Generated with: sample_indices(keccak(text="opentrain test seed " + label), n, k)
    const vectors = [
      ["a", 8n, 2n, [7, 6]],
      ["b", 4096n, 32n, [4056, 2890, 865, 3632, 3989, 1021, 1872, 4043, 520, 3744, 3622, 3133, 2303, 1711, 1549, 1022,
        1296, 3025, 2100, 3551, 4070, 3639, 2842, 2337, 1669, 3610, 700, 2253, 92, 1003, 1756, 1019]],
      ["c", 32n, 32n, [11, 2, 5, 30, 23, 25, 13, 15, 8, 7, 1, 29, 9, 14, 22, 27, 10, 0, 6, 28, 18, 26, 16, 19, 12, 24,
        20, 21, 17, 4, 3, 31]],
      ["d", 5n, 1n, [3]],
      ["e", 100n, 10n, [99, 45, 54, 88, 48, 21, 83, 93, 28, 17]],
    ];
    for (const [label, n, k, want] of vectors) {
      const seed = keccak256(toUtf8Bytes(`opentrain test seed ${label}`));
      const expected = want.map(BigInt);
      expect(sampleIndices(seed, n, k), `JS ${label}`).to.deep.equal(expected);
      expect(await settlement.sampleIndices(seed, n, k), `Solidity ${label}`).to.deep.equal(expected);
    }
  });
});
