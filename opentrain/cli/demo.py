"""``opentrain demo``: one bounty trained, verified and paid end to end on the embedded defaults.

Deploys the contracts on the in-process EVM, funds a sponsor, posts a bounty, lets two nodes
train their slots for every DiLoCo round, has the drawn verifier re-execute sampled segments and
attest, finalizes after the challenge window, aggregates each round, refunds the sponsor and has
everyone withdraw. With ``cheat`` a third node claims a slot of round 0 and skips training: the
verifier's re-execution fails it, finalization slashes it (the verifier is paid only its fee, the
rest is burned), and an honest node redoes the slot. Windows are seconds: the demo passes them
with ``Chain.advance``.
With ``audit`` the finished job is audited from the chain and the store alone. Prints balances,
contributions, the loss by round and the audit verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table
from web3.types import Wei

from marketplace_api.db import make_engine, make_session_factory, migrate
from marketplace_api.indexer import Indexer
from node.daemon import NodeDaemon
from opentrain.chain.account import ChainAccount
from opentrain.chain.client import DEV_PARAMS, Chain, connect
from opentrain.chain.deployment import deploy
from opentrain.chain.types import TOKEN
from opentrain.content.embedded import EmbeddedStore
from opentrain.content.store import ContentStore
from opentrain.protocol.jobs import job_params
from opentrain.protocol.presets import default_demo_spec
from opentrain.spec import JobSpec, canonical_json
from opentrain.training.checkpoint import TrainState, digest, encode_params
from opentrain.training.data import ensure_job_data
from opentrain.training.models import build_model, model_params
from opentrain.training.train import evaluate_loss
from verifier.audit import Auditor, write_report
from verifier.worker import RoundAggregator, VerifierWorker

ROLES = ("sponsor", "node-1", "node-2", "cheat", "verifier")
CONTRIBUTION_REJECTED = 3
ETHER = 10**18


@dataclass
class DemoResult:
    """What the demo measured; tests assert on it."""

    job_id: int
    escrow: int
    refunded: int
    paid_out: int
    balances_before: dict[str, int]
    balances_after: dict[str, int]
    contributions: list[tuple[int, int, int, str, str]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    chain: Chain | None = None
    database_url: str = ""
    cheat_slashed: int = 0
    audit_checks: int = 0
    audit_findings: int = -1  # -1: not audited
    audit_report: Path | None = None


def _fund(chain: Chain, admin: ChainAccount, key: LocalAccount, tokens: int) -> ChainAccount:
    chain.fund_eth(key.address, 10 * ETHER)
    admin.transfer(key.address, tokens)
    return chain.account(key)


def skip_training(spec: JobSpec, state: TrainState, round_: int, slot: int) -> TrainState:
    """A cheating node's segment: claim the steps (and AdamW's step counts), train nothing."""
    state.step += spec.training.segment_steps
    for group in state.optimizer.param_groups:
        for p in group["params"]:
            state.optimizer.state[p]["step"] += spec.training.segment_steps
    return state


def post_bounty(sponsor: ChainAccount, store: ContentStore, spec: JobSpec) -> int:
    """Publish the job's data if needed, store the spec and G_0, escrow the bounty; returns
    the job id."""
    ensure_job_data(spec, store)
    spec_cid = store.put_bytes(canonical_json(spec))
    g0 = encode_params(model_params(build_model(spec.model)))
    g0_cid = store.put_bytes(g0)
    params = job_params(spec, digest(g0))
    return sponsor.create_job(params, spec_cid, g0_cid)


def run_demo(
    home: Path,
    spec: JobSpec | None = None,
    console: Console | None = None,
    cheat: bool = False,
    audit: bool = False,
) -> DemoResult:
    """Run the whole market once; ``home`` holds the content store and the nodes' disks."""
    out = console or Console()
    spec = spec or default_demo_spec()
    store = EmbeddedStore(home / "store")
    w3 = connect("inprocess")
    deployer: LocalAccount = Account.create()
    w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": deployer.address, "value": Wei(ETHER * 100)}
    )
    chain = deploy(w3, deployer, DEV_PARAMS)
    admin = chain.account(deployer)
    out.print(f"[bold]contracts deployed[/] on the in-process EVM (chain id {w3.eth.chain_id})")

    accounts = {role: _fund(chain, admin, Account.create(), 1_000 * TOKEN) for role in ROLES}
    before = {role: a.balance() for role, a in accounts.items()}
    for role in ("node-1", "node-2", "cheat", "verifier"):
        accounts[role].stake(200 * TOKEN)
    accounts["verifier"].register_verifier()
    chain.mine(DEV_PARAMS.draw_lag)  # draws read the verifier set drawLag blocks back

    sponsor = accounts["sponsor"]
    job_id = post_bounty(sponsor, store, spec)
    escrow = (
        spec.rounds
        * spec.slots_per_round
        * (spec.reward.reward_per_slot + spec.reward.verifier_fee)
    )
    out.print(f"[bold]bounty posted[/]: job {job_id}, escrow {escrow / TOKEN:g} TRAIN")

    # the nodes run the GPU owner's daemon: each pass picks the first open slot it can run
    nodes = [NodeDaemon(accounts[f"node-{i + 1}"], store, home / f"node-{i + 1}") for i in range(2)]
    cheater = NodeDaemon(accounts["cheat"], store, home / "cheat", segment_fn=skip_training)
    verifier = VerifierWorker(accounts["verifier"], store)
    aggregator = RoundAggregator(accounts["verifier"], store)
    result = DemoResult(job_id, escrow, 0, 0, before, {}, chain=chain)
    result.losses.append(_initial_loss(spec))
    turn = 0
    for round_ in range(spec.rounds):
        ids = [_work(cheater)] if cheat and round_ == 0 else []
        while len(ids) < spec.slots_per_round:
            ids.append(_work(nodes[turn % len(nodes)]))
            turn += 1
        while ids:  # settle; slots whose work was rejected reopen and honest nodes redo them
            _settle(chain, admin, verifier, ids, result, round_)
            rejected = [c for c in ids if _rejected(chain, c)]
            for c in rejected:
                _report_cheat(out, chain, accounts["cheat"], c, result)
            ids = []
            for _ in rejected:
                ids.append(_work(nodes[turn % len(nodes)]))
                turn += 1
        _, loss = aggregator.aggregate_and_post(job_id, round_)
        result.losses.append(loss)
        out.print(
            f"round {round_}: {spec.slots_per_round} slots accepted, validation loss {loss:.4f}"
        )

    sponsor_before_refund = sponsor.balance()
    if chain.market.functions.jobState(job_id).call()[3] > 0:
        sponsor.refund(job_id)
    result.refunded = sponsor.balance() - sponsor_before_refund
    for role in ("node-1", "node-2", "cheat", "verifier"):
        if accounts[role].credits() > 0:
            accounts[role].withdraw()
    result.balances_after = {role: a.balance() for role, a in accounts.items()}
    result.paid_out = escrow - result.refunded
    _print_tables(out, result, accounts)
    result.database_url = _index(chain, home, out)
    if audit:
        _audit(out, chain, store, job_id, home, result)
    return result


def _settle(
    chain: Chain,
    admin: ChainAccount,
    verifier: VerifierWorker,
    ids: list[int],
    result: DemoResult,
    round_: int,
) -> None:
    """Seed (the nodes' daemons record their own), verify and attest each contribution, then
    let the challenge window (seconds) pass and finalize."""
    chain.mine(1)  # the seed block must exist before anyone can record the seed
    for cid in ids:
        _verify(verifier, cid, result, round_)
    window = int(chain.settlement.functions.challengeWindow().call())
    chain.advance(window + 1)
    for cid in ids:
        admin.finalize(cid)


def _rejected(chain: Chain, contribution_id: int) -> bool:
    status = chain.market.functions.getContribution(contribution_id).call()[6]
    return int(status) == CONTRIBUTION_REJECTED


def _report_cheat(
    out: Console, chain: Chain, cheat: ChainAccount, contribution_id: int, result: DemoResult
) -> None:
    slashed = int(chain.stakes.functions.minNodeStake().call())
    result.cheat_slashed += slashed
    row = next(r for r in result.contributions if r[0] == contribution_id)
    out.print(
        f"[bold red]caught[/]: contribution {contribution_id} (round {row[1]} slot {row[2]}) "
        f"by {cheat.address[:10]}… skipped training; re-execution of segments {row[3]} failed, "
        f"its {slashed / TOKEN:g} TRAIN lock was slashed (the verifier gets only its fee, the "
        f"rest is burned) and the slot reopened"
    )


def _audit(
    out: Console, chain: Chain, store: ContentStore, job_id: int, home: Path, result: DemoResult
) -> None:
    """Audit the finished job from public data alone and print the verdict."""
    report = Auditor(chain, store).job(job_id)
    _, html_path = write_report(report, home / "audit")
    result.audit_checks = len(report.checks)
    result.audit_findings = len(report.findings)
    result.audit_report = html_path
    verdict = (
        "[bold green]no findings[/]"
        if not report.findings
        else f"[bold red]{len(report.findings)} finding(s)[/]: "
        + "; ".join(f"{c.subject}: {c.name}" for c in report.findings[:3])
    )
    out.print(
        f"audit of job {job_id}: {len(report.checks)} checks from the chain and the store, "
        f"{verdict}; re-executed {report.segments_checked} of {report.segments_total} segments "
        f"({report.compute_share:.0%}); report {html_path}"
    )


def _index(chain: Chain, home: Path, out: Console) -> str:
    """Copy the run's events into the marketplace database, as the indexer does for any chain."""
    url = f"sqlite:///{(home / 'opentrain.db').resolve()}"
    migrate(url)
    events = Indexer(chain.w3, chain.deployment, make_session_factory(make_engine(url))).sync()
    out.print(f"marketplace database: {events} events indexed into {url}")
    return url


def _work(daemon: NodeDaemon) -> int:
    contribution = daemon.run_once()
    if contribution is None:
        raise RuntimeError("a demo node found no slot to work on")
    return contribution


def _initial_loss(spec: JobSpec) -> float:
    return evaluate_loss(spec, model_params(build_model(spec.model)))


def _verify(
    verifier: VerifierWorker, contribution_id: int, result: DemoResult, round_: int
) -> None:
    verifier.ensure_seed(contribution_id)
    report = verifier.verify_and_attest(contribution_id)
    verdict = "pass" if report.passed else "fail"
    result.contributions.append(
        (contribution_id, round_, report.slot, ",".join(map(str, report.sampled_segments)), verdict)
    )


def _print_tables(out: Console, result: DemoResult, accounts: dict[str, ChainAccount]) -> None:
    balances = Table(title="Balances (TRAIN): earned = wallet change + stake still held")
    for col in ("account", "wallet before", "wallet after", "staked", "earned"):
        balances.add_column(col, justify="right" if col != "account" else "left")
    for role in ROLES:
        b, a = result.balances_before[role], result.balances_after[role]
        staked = accounts[role].stake_of()
        earned = a + staked - b
        balances.add_row(
            role,
            f"{b / TOKEN:,.2f}",
            f"{a / TOKEN:,.2f}",
            f"{staked / TOKEN:,.2f}",
            f"{earned / TOKEN:+,.2f}",
        )
    out.print(balances)
    contributions = Table(title="Contributions")
    for col in ("id", "round", "slot", "sampled segments", "verdict"):
        contributions.add_column(col)
    for row in result.contributions:
        contributions.add_row(*map(str, row))
    out.print(contributions)
    sponsor_paid = result.balances_before["sponsor"] - result.balances_after["sponsor"]
    out.print(
        f"escrow {result.escrow / TOKEN:g} TRAIN, paid out {result.paid_out / TOKEN:g}, "
        f"refunded {result.refunded / TOKEN:g}; sponsor spent {sponsor_paid / TOKEN:g} "
        f"({'equals' if sponsor_paid == result.paid_out else 'DIFFERS FROM'} what was paid out)"
    )
    curve = " -> ".join(f"{x:.4f}" for x in result.losses)
    out.print(f"validation loss by round: {curve}")
