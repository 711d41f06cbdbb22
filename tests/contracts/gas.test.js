// Gas report: gasUsed of every step of one contribution, for very different jobs, from the same
// starting state. Prints a markdown table and writes it to contracts/GAS.md.
//
// Claim: per-contribution gas does not depend on the job's size (numSegments, sampleCount):
// nothing on the path loops over segments or samples, and CIDs are only emitted, never stored,
// so a longer CID costs only its calldata and log bytes.
import { expect } from "chai";
import { network } from "hardhat";
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { PROTOCOL, deployFixture, jobParams, digest, contributionIdFrom } from "./helpers.js";

const connection = await network.create();
const { networkHelpers } = connection;
const { loadFixture } = networkHelpers;

const GAS_MD = fileURLToPath(new URL("../../contracts/GAS.md", import.meta.url));

// A CIDv0 (46 chars) and a long CIDv1 (base32, sha2-512 multihash, with a path: 160 chars).
const SHORT_CID = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
const LONG_CID =
  "bafkrgqg5v422de7yn2vbm3acqgaxdcbmhrxhzjfvnb3pyeyhopo2z3kbrjzpnvbpvnb3ykbyg4xvxxbx3fmfcdmpgvmydmnhdpwbglkt4zyhf5p6j2qjomwaqyrumeyxu4/checkpoints/manifest.json";

/** One verifier (so the draw is deterministic), both accounts funded and approved. */
async function gasFixture(conn) {
  const f = await deployFixture(conn);
  await (await f.stakes.connect(f.verifier1).stake(PROTOCOL.minVerifierStake)).wait();
  await (await f.stakes.connect(f.verifier1).registerVerifier()).wait();
  return f;
}

const SAMPLE_ROW = "sampleIndices view (eth_call, fixed seed)";

const gasOf = async (txPromise) => (await (await txPromise).wait()).gasUsed;

/** Run one contribution from the fixture state; `pass` false takes the slash path. */
async function measure(job, cids, pass) {
  const f = await loadFixture(gasFixture);
  const { stakes, market, settlement, sponsor, node1, verifier1, outsider } = f;
  const g = {};
  g.stake = await gasOf(stakes.connect(node1).stake(PROTOCOL.minNodeStake));
  g.createJob = await gasOf(market.connect(sponsor).createJob(job, cids, cids));
  g.claimSlot = await gasOf(market.connect(node1).claimSlot(1n, 0n, 0n));
  const rx = await (
    await market.connect(node1).submitContribution(1n, 0n, 0n, digest("out"), digest("trace"), cids, cids)
  ).wait();
  g.submitContribution = rx.gasUsed;
  const id = contributionIdFrom(market, rx);
  await networkHelpers.mine();
  g.recordSeed = await gasOf(settlement.connect(outsider).recordSeed(id));
  // The sampling view a verifier calls (O(k^2) in the swap list; never part of a transaction).
  // A fixed seed, so the report is reproducible: the real seed comes from a block hash.
  g[SAMPLE_ROW] = await settlement.sampleIndices.estimateGas(digest("fixed seed"), job.numSegments, job.sampleCount);
  g.attest = await gasOf(settlement.connect(verifier1).attest(id, pass, cids));
  await networkHelpers.mine(PROTOCOL.challengeWindow);
  g[pass ? "finalize (pass)" : "finalize (fail: slash)"] = await gasOf(settlement.connect(outsider).finalize(id));
  if (pass) g["withdraw (node)"] = await gasOf(settlement.connect(node1).withdraw());
  g["withdraw (verifier)"] = await gasOf(settlement.connect(verifier1).withdraw());
  return g;
}

describe("gas report", function () {
  it("per-contribution gas does not depend on numSegments, sampleCount or stored CIDs; writes contracts/GAS.md", async function () {
    const small = jobParams({ numSegments: 4, sampleCount: 1 });
    const large = jobParams({ numSegments: 4096, sampleCount: 32 });
    const columns = [
      ["A: 4 segments, k=1, 46-char CIDs", small, SHORT_CID],
      ["B: 4096 segments, k=32, 160-char CIDs", large, LONG_CID],
      ["C: 4096 segments, k=32, 46-char CIDs", large, SHORT_CID],
    ];
    const results = [];
    for (const [, job, cid] of columns) {
      const pass = await measure(job, cid, true);
      const fail = await measure(job, cid, false);
      results.push({ ...pass, ...fail, "withdraw (verifier)": pass["withdraw (verifier)"] });
      results.at(-1)["withdraw (verifier, slash reward)"] = fail["withdraw (verifier)"];
    }
    const [A, B, C] = results;
    const rows = [
      "stake",
      "createJob",
      "claimSlot",
      "submitContribution",
      "recordSeed",
      "attest",
      "finalize (pass)",
      "finalize (fail: slash)",
      "withdraw (node)",
      "withdraw (verifier)",
      "withdraw (verifier, slash reward)",
      SAMPLE_ROW,
    ];

    // Job size (A vs C: same CIDs) changes nothing on the transaction path.
    for (const r of rows) {
      if (r === SAMPLE_ROW) continue;
      expect(C[r], `${r}: A vs C`).to.equal(A[r]);
    }
    // CID length (B vs C) changes only the calls that carry CIDs, by their calldata + log bytes.
    const extra = BigInt(LONG_CID.length - SHORT_CID.length);
    for (const r of rows) {
      if (r === SAMPLE_ROW) continue;
      const delta = B[r] - C[r];
      if (["createJob", "submitContribution", "attest"].includes(r)) {
        const cidsInCall = r === "attest" ? 1n : 2n;
        expect(delta > 0n && delta <= 40n * extra * cidsInCall, `${r}: CID cost ${delta}`).to.equal(true);
      } else {
        expect(delta, `${r}: B vs C`).to.equal(0n);
      }
    }
    // Only the verifier's view call grows with k (it is never executed in a transaction).
    expect(B[SAMPLE_ROW]).to.be.greaterThan(A[SAMPLE_ROW]);

    const fmt = (x) => x.toLocaleString("en-US");
    const header = `| step | ${columns.map((c) => c[0]).join(" | ")} | B - C |`;
    const sep = `|---|${columns.map(() => "---:").join("|")}|---:|`;
    const body = rows.map((r) => `| ${r} | ${results.map((x) => fmt(x[r])).join(" | ")} | ${fmt(B[r] - C[r])} |`);
    const perByte = (r, n) => Number(B[r] - C[r]) / (Number(extra) * n);
    const md = [
      "# Gas per contribution",
      "",
      "Generated by `tests/contracts/gas.test.js` (`npx hardhat test mocha tests/contracts/gas.test.js`);",
      `solc ${(await import("solc/package.json", { with: { type: "json" } })).default.version}, optimizer 200 runs, evmVersion prague,`,
      "the deployment of `opentrain/chain.py` (`ProtocolParams` defaults). Each column starts from the same",
      "state (one registered verifier, fresh node); gasUsed of the transaction receipts.",
      "",
      header,
      sep,
      ...body,
      "",
      "- A and C differ only in `numSegments` and `sampleCount` (4 vs 4096 segments, 1 vs 32 samples): every",
      "  transaction costs exactly the same. Nothing on the path loops over segments or samples; the sampled",
      "  indices are computed off-chain or by the `sampledSegments`/`sampleIndices` views (last row, an `eth_call`).",
      "- B and C differ only in CID length (160 vs 46 characters). CIDs are emitted, never stored, so only",
      "  the calls that carry them grow, by their calldata and log bytes: about",
      `  ${perByte("submitContribution", 2).toFixed(1)} gas per CID byte in submitContribution (two CIDs),`,
      `  ${perByte("attest", 1).toFixed(1)} in attest (one report CID), ${perByte("createJob", 2).toFixed(1)} in createJob (two CIDs).`,
      "  recordSeed, finalize and withdraw never see a CID and do not change.",
      "- stake is the node's first stake (a zero-to-nonzero storage write); claimSlot is a first claim.",
      "",
    ].join("\n");
    console.log("\n" + md);
    await writeFile(GAS_MD, md);
  });
});
