"""The payout ledger (``opentrain node earnings``, ``/accounts/{address}/earnings``): every credit,
slash and withdrawal explained from the events of its own transaction."""

from __future__ import annotations

from opentrain.chain.ledger import LogRecord, build_ledger

NODE = "0x" + "11" * 20
CHEAT = "0x" + "22" * 20
VERIFIER = "0x" + "33" * 20
T = 10**18


def rec(name: str, block: int, tx: str, index: int, **args: object) -> LogRecord:
    return LogRecord(name=name, args=args, block=block, tx_hash=tx, log_index=index)


def submitted(cid: int, node: str, block: int) -> LogRecord:
    return rec(
        "ContributionSubmitted",
        block,
        f"0xsub{cid}",
        0,
        contributionId=cid,
        jobId=1,
        round=0,
        slot=cid - 1,
        node=node,
        outputCid=f"bafy-output-{cid}",
        manifestCid=f"bafy-manifest-{cid}",
    )


def records() -> list[LogRecord]:
    return [
        submitted(1, NODE, 10),
        submitted(2, CHEAT, 11),
        rec(
            "Attested",
            12,
            "0xatt1",
            0,
            contributionId=1,
            verifier=VERIFIER,
            reportCid="r1",
            **{"pass": True},
        ),
        rec(
            "Attested",
            13,
            "0xatt2",
            0,
            contributionId=2,
            verifier=VERIFIER,
            reportCid="r2",
            **{"pass": False},
        ),
        # contribution 1 accepted: the node's reward and the verifier's fee in one transaction
        rec("Credited", 20, "0xfin1", 0, account=NODE, amount=1 * T, total=1 * T),
        rec("Credited", 20, "0xfin1", 1, account=VERIFIER, amount=T // 10, total=T // 10),
        rec(
            "ContributionFinalized",
            20,
            "0xfin1",
            2,
            contributionId=1,
            accepted=True,
            nodeReward=1 * T,
            verifierPayment=T // 10,
            slashed=0,
        ),
        # contribution 2 rejected: the cheat is slashed, half goes to the verifier
        rec(
            "StakeSlashed",
            21,
            "0xfin2",
            0,
            account=CHEAT,
            amount=100 * T,
            beneficiary=VERIFIER,
            reward=50 * T,
            voterReward=0,
            voters=0,
            burned=50 * T,
        ),
        rec("Credited", 21, "0xfin2", 1, account=VERIFIER, amount=50 * T, total=50 * T + T // 10),
        rec(
            "Credited",
            21,
            "0xfin2",
            2,
            account=VERIFIER,
            amount=T // 10,
            total=50 * T + 2 * T // 10,
        ),
        rec(
            "ContributionFinalized",
            21,
            "0xfin2",
            3,
            contributionId=2,
            accepted=False,
            nodeReward=0,
            verifierPayment=T // 10,
            slashed=100 * T,
        ),
        rec("CreditsWithdrawn", 30, "0xw", 0, account=NODE, amount=1 * T),
    ]


def test_a_node_sees_its_reward_with_the_output_cid_and_its_withdrawal() -> None:
    ledger = build_ledger(NODE, records())
    kinds = [(e.kind, e.amount, e.contribution_id, e.cid) for e in ledger.entries]
    assert kinds == [("credit", T, 1, "bafy-output-1"), ("withdrawal", -T, None, "")]
    assert "contribution 1 accepted" in ledger.entries[0].reason
    assert ledger.credited == T and ledger.withdrawn == T and ledger.unwithdrawn == 0


def test_a_verifier_sees_fees_with_report_cids_and_its_share_of_a_slash() -> None:
    ledger = build_ledger(VERIFIER, records())
    reasons = [e.reason for e in ledger.entries]
    assert [e.amount for e in ledger.entries] == [T // 10, 50 * T, T // 10]
    assert reasons[0].startswith("verifier fee: attested pass on contribution 1")
    assert "slash" in reasons[1] and ledger.entries[1].contribution_id == 2
    assert reasons[2].startswith("verifier fee: attested fail on contribution 2")
    assert ledger.entries[2].cid == "r2"
    assert ledger.unwithdrawn == 50 * T + 2 * T // 10  # the last Credited.total


def test_a_slashed_node_sees_why_and_how_much_burned() -> None:
    ledger = build_ledger(CHEAT, records())
    (entry,) = ledger.entries
    assert entry.kind == "slash" and entry.amount == -100 * T
    assert (
        "contribution 2 failed verification" in entry.reason and "50 TRAIN burned" in entry.reason
    )
    assert entry.cid == "bafy-output-2"
    assert ledger.credited == 0 and ledger.slashed == 100 * T


def test_addresses_match_in_any_case() -> None:
    assert build_ledger(NODE.upper().replace("0X", "0x"), records()).credited == T
