// Regressions: behaviour found missing in review (self-verification, claim-deadline overflow),
// reproduced against the old code and fixed in the contracts.
import { expect } from "chai";
import { network } from "hardhat";
import { PROTOCOL, deployFixture, jobFixture, jobParams, digest, contributionIdFrom } from "./helpers.js";

const connection = await network.create();
const { networkHelpers } = connection;
const { loadFixture } = networkHelpers;

describe("regressions of issues found in review", function () {
  // JobMarket.claimSlot stores `uint40(block.number + claimTimeout)` and _checkParams does not
  // bound claimTimeout (a uint64): a timeout >= 2^40 wraps, the claim is expired at once, its
  // node cannot submit and anyone can take the slot over.
  it("a claim timeout that does not fit the stored deadline is refused or kept exactly", async function () {
    const { market, sponsor, node1 } = await loadFixture(jobFixture);
    const timeout = 2n ** 40n;
    const created = market.connect(sponsor).createJob(jobParams({ claimTimeout: timeout }), "s", "g");
    try {
      await (await created).wait();
    } catch {
      await expect(created).to.be.revertedWithCustomError(market, "JobMarketInvalidParams").withArgs("claimTimeout");
      return;
    }
    const rx = await (await market.connect(node1).claimSlot(2n, 0n, 0n)).wait();
    expect((await market.slotState(2n, 0n, 0n)).deadline).to.equal(BigInt(rx.blockNumber) + timeout);
  });

  // Settlement.recordSeed draws from all registered verifiers without excluding the node: a node
  // that is also a registered verifier can be assigned its own contribution, attest pass on it and
  // collect both the reward and the fee.
  it("a node is never assigned as the verifier of its own contribution", async function () {
    const f = await loadFixture(deployFixture);
    const { stakes, market, settlement, sponsor, node1, verifier1 } = f;
    await (await stakes.connect(node1).stake(20n * PROTOCOL.minNodeStake)).wait();
    await (await stakes.connect(node1).registerVerifier()).wait();
    await (await stakes.connect(verifier1).stake(PROTOCOL.minVerifierStake)).wait();
    await (await stakes.connect(verifier1).registerVerifier()).wait();
    await (await market.connect(sponsor).createJob(jobParams({ slotsPerRound: 16 }), "s", "g")).wait();
    for (let slot = 0n; slot < 16n; slot++) {
      await (await market.connect(node1).claimSlot(1n, 0n, slot)).wait();
      const rx = await (
        await market.connect(node1).submitContribution(1n, 0n, slot, digest("o"), digest("t"), "o", "m")
      ).wait();
      const id = contributionIdFrom(market, rx);
      await networkHelpers.mine();
      await (await settlement.recordSeed(id)).wait();
      expect((await settlement.verification(id)).verifier, `contribution ${id}`).to.not.equal(node1.address);
    }
  });
});
