"""``opentrain chain``: deploy the contracts and fund accounts on a development chain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from opentrain.settings import Settings

chain_app = typer.Typer(help="Deploy the contracts and fund accounts.", no_args_is_help=True)


err = Console(stderr=True)
out = Console()


def _dev_deployer(settings: Settings):  # type: ignore[no-untyped-def]
    """The deployer key of a development chain, kept in the home folder (0600)."""
    from eth_account import Account

    path = settings.home / "dev-deployer.key"
    if path.exists():
        return Account.from_key(path.read_text().strip())
    account = Account.create()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(account.key.hex())
    return account


Seconds = Annotated[int | None, typer.Option(min=1, help="seconds")]


@chain_app.command("deploy")
def chain_deploy(
    attest_window: Seconds = None,
    challenge_window: Seconds = None,
    vote_window: Seconds = None,
    unbonding_delay: Seconds = None,
    draw_lag: Annotated[int | None, typer.Option(min=1, help="blocks")] = None,
    committee_size: Annotated[int | None, typer.Option(min=1, max=9)] = None,
    quorum: Annotated[int | None, typer.Option(min=1, max=9)] = None,
) -> None:
    """Deploy and wire the contracts on the chain at OPENTRAIN_RPC_URL; writes deployment.json.

    Windows are seconds of block time. A development chain (Hardhat, in-process) gets the
    development windows (an hour each, draw lag 2 blocks); any other chain the defaults for a
    2 s-block L2 (attest 600 s, challenge 1800 s, vote 1200 s per round, unbonding 86400 s,
    draw lag 900 blocks, committee 3, quorum 2). Each option overrides one of them; the
    unbonding delay must exceed 5 x attest + challenge + 6 x vote.

    Example: OPENTRAIN_RPC_URL=http://127.0.0.1:8545 opentrain chain deploy --attest-window 900
    """
    from dataclasses import replace

    from opentrain.chain.client import DEV_PARAMS, ProtocolParams, connect
    from opentrain.chain.deployment import deploy
    from opentrain.chain.keys import load_signer
    from opentrain.chain.types import CONTRACT_NAMES
    from opentrain.settings import Settings

    settings = Settings()
    w3 = connect(settings.rpc_url)
    dev = w3.eth.chain_id in (31337, 131277322940537)
    if w3.eth.chain_id == 31337:
        deployer = _dev_deployer(settings)
        w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": deployer.address, "value": 10**20}  # type: ignore[typeddict-item]
        )
    else:
        deployer = load_signer(settings)
    overrides = {
        "attest_window": attest_window,
        "challenge_window": challenge_window,
        "vote_window": vote_window,
        "unbonding_delay": unbonding_delay,
        "draw_lag": draw_lag,
        "committee_size": committee_size,
        "quorum": quorum,
    }
    params = replace(
        DEV_PARAMS if dev else ProtocolParams(),
        **{k: v for k, v in overrides.items() if v is not None},
    )
    if params.unbonding_delay <= params.longest_open_verdict():
        raise typer.BadParameter(
            f"--unbonding-delay {params.unbonding_delay} must exceed "
            f"{params.longest_open_verdict()} s (5 x attest + challenge + 6 x vote)"
        )
    chain = deploy(w3, deployer, params)
    chain.deployment.save(settings.resolved_deployment_file)
    d = chain.deployment
    out.print(f"deployed on chain {d.chain_id} at block {d.block} by {deployer.address}:")
    for name in CONTRACT_NAMES:
        out.print(f"  {name:<14} {getattr(d, name)}")
    out.print(f"addresses saved in {settings.resolved_deployment_file}")
    out.print(
        f"windows: attest {params.attest_window} s, challenge {params.challenge_window} s, "
        f"vote {params.vote_window} s per round, unbonding {params.unbonding_delay} s, draw lag "
        f"{params.draw_lag} blocks, committee {params.committee_size} (quorum {params.quorum})"
    )
    if w3.eth.chain_id == 31337:
        out.print(
            "the deployer holds every TRAIN; give an account gas and TRAIN with "
            "`opentrain chain fund ADDRESS --tokens 1000`"
        )


@chain_app.command("fund")
def chain_fund(
    addresses: Annotated[list[str], typer.Argument(help="accounts to fund")],
    tokens: Annotated[float, typer.Option(help="TRAIN to send")] = 1000.0,
    eth: Annotated[float, typer.Option(help="ether for gas (dev chains)")] = 10.0,
) -> None:
    """Give an account gas money and TRAIN on a development chain.

    Example: opentrain chain fund 0xAbC... 0xDeF... --tokens 500
    """
    from web3 import Web3

    from opentrain.chain.types import TOKEN
    from opentrain.context import connect_chain
    from opentrain.settings import Settings

    settings = Settings()
    chain = connect_chain(settings)
    bad = [a for a in addresses if not Web3.is_address(a)]
    if bad:
        raise typer.BadParameter(f"not an address: {bad[0]}")
    deployer = chain.account(_dev_deployer(settings))
    for address in map(Web3.to_checksum_address, addresses):
        chain.fund_eth(address, int(eth * 10**18))
        deployer.transfer(address, int(tokens * TOKEN))
        out.print(f"funded {address} with {eth:g} ETH and {tokens:g} TRAIN")


@chain_app.command("grant-canary")
def chain_grant_canary(
    address: Annotated[str, typer.Argument(help="the new canary authority")],
) -> None:
    """Grant Canaries.CANARY_ROLE (commit and reveal canaries) to ADDRESS, as the deployer
    (the dev deployer key on a development chain, OPENTRAIN_KEYSTORE elsewhere).

    Example: opentrain chain grant-canary 0xAbC...
    """
    from web3 import Web3

    from opentrain.chain.keys import load_signer
    from opentrain.context import connect_chain
    from opentrain.settings import Settings

    settings = Settings()
    chain = connect_chain(settings)
    if not Web3.is_address(address):
        raise typer.BadParameter(f"not an address: {address}")
    signer = _dev_deployer(settings) if chain.is_dev_chain else load_signer(settings)
    admin = chain.account(signer)
    canaries = chain.canaries.functions
    admin.send(
        canaries.grantRole(canaries.CANARY_ROLE().call(), Web3.to_checksum_address(address)),
        "grant CANARY_ROLE",
    )
    out.print(f"{address} may now commit and reveal canaries (opentrain canary --help)")
