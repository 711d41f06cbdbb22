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


@chain_app.command("deploy")
def chain_deploy() -> None:
    """Deploy and wire the contracts on the chain at OPENTRAIN_RPC_URL; writes deployment.json.

    Example: OPENTRAIN_RPC_URL=http://127.0.0.1:8545 opentrain chain deploy
    """
    from opentrain.chain.client import connect
    from opentrain.chain.deployment import deploy
    from opentrain.chain.keys import load_signer
    from opentrain.settings import Settings

    settings = Settings()
    w3 = connect(settings.rpc_url)
    if w3.eth.chain_id == 31337:
        deployer = _dev_deployer(settings)
        w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": deployer.address, "value": 10**20}  # type: ignore[typeddict-item]
        )
    else:
        deployer = load_signer(settings)
    chain = deploy(w3, deployer)
    chain.deployment.save(settings.resolved_deployment_file)
    out.print(f"deployed; addresses in {settings.resolved_deployment_file}")


@chain_app.command("fund")
def chain_fund(
    address: Annotated[str, typer.Argument(help="account to fund")],
    tokens: Annotated[float, typer.Option(help="TRAIN to send")] = 1000.0,
    eth: Annotated[float, typer.Option(help="ether for gas (dev chains)")] = 10.0,
) -> None:
    """Give an account gas money and TRAIN on a development chain.

    Example: opentrain chain fund 0xAbC... --tokens 500
    """
    from opentrain.chain.types import TOKEN
    from opentrain.context import connect_chain
    from opentrain.settings import Settings

    settings = Settings()
    chain = connect_chain(settings)
    chain.fund_eth(address, int(eth * 10**18))
    chain.account(_dev_deployer(settings)).transfer(address, int(tokens * TOKEN))
    out.print(f"funded {address} with {eth:g} ETH and {tokens:g} TRAIN")
