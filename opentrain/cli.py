"""The ``opentrain`` command: one sub-app per role, composed here (and only here)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from node.cli import node_app
from opentrain.cli_data import data_app
from opentrain.cli_store import store_app
from opentrain.settings import Settings
from verifier.audit_cli import audit_app
from verifier.cli import verifier_app

app = typer.Typer(
    help="OpenTrain: a trustless market for verifiable decentralized training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
api_app = typer.Typer(help="The marketplace API: database, indexer, server.", no_args_is_help=True)
chain_app = typer.Typer(help="Deploy the contracts and fund accounts.", no_args_is_help=True)
app.add_typer(api_app, name="api")
app.add_typer(chain_app, name="chain")
app.add_typer(node_app, name="node")
app.add_typer(verifier_app, name="verifier")
app.add_typer(audit_app, name="audit")
app.add_typer(store_app, name="store")
app.add_typer(data_app, name="data")
err = Console(stderr=True)
out = Console()

DatabaseOpt = Annotated[
    str | None, typer.Option("--database", help="SQLAlchemy URL (default: SQLite in home)")
]


@app.callback()
def root() -> None:
    """OpenTrain: sponsors escrow bounties, nodes train and commit, verifiers re-execute."""


@app.command()
def demo(
    home: Annotated[Path | None, typer.Option(help="state folder (default: a fresh one)")] = None,
    serve: Annotated[bool, typer.Option(help="keep serving the dashboard API afterwards")] = False,
    port: Annotated[int, typer.Option(help="port for --serve")] = 8000,
    cheat: Annotated[
        bool, typer.Option(help="include a node that skips training (caught and slashed)")
    ] = True,
    audit: Annotated[
        bool, typer.Option(help="audit the finished job and print the verdict")
    ] = True,
) -> None:
    """Run the whole market once on the embedded defaults.

    Example: opentrain demo --serve
    """
    from opentrain.demo import run_demo

    home = home or Path(tempfile.mkdtemp(prefix="opentrain-demo-"))
    result = run_demo(home, cheat=cheat, audit=audit)
    spent = result.balances_before["sponsor"] - result.balances_after["sponsor"]
    if spent != result.paid_out or result.losses[-1] >= result.losses[0]:
        err.print("[red]demo failed:[/] payouts do not add up or the loss did not fall")
        raise typer.Exit(1)
    if cheat and result.cheat_slashed == 0:
        err.print("[red]demo failed:[/] the cheating node was not caught")
        raise typer.Exit(1)
    if audit and result.audit_findings != 0:
        err.print(f"[red]demo failed:[/] the audit has findings ({result.audit_report})")
        raise typer.Exit(1)
    if serve:
        _serve(result.database_url, "127.0.0.1", port, store_dir=home / "store")


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
    from opentrain.chain import connect, deploy
    from opentrain.keys import load_signer

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
    from opentrain.chain import TOKEN
    from opentrain.context import connect_chain

    settings = Settings()
    chain = connect_chain(settings)
    chain.fund_eth(address, int(eth * 10**18))
    chain.account(_dev_deployer(settings)).transfer(address, int(tokens * TOKEN))
    out.print(f"funded {address} with {eth:g} ETH and {tokens:g} TRAIN")


def _database(url: str | None) -> str:
    return url or Settings().resolved_database_url


@api_app.command("migrate")
def api_migrate(database: DatabaseOpt = None) -> None:
    """Create or upgrade the marketplace database schema.

    Example: opentrain api migrate --database postgresql+psycopg://127.0.0.1/test
    """
    from marketplace_api.db import migrate

    migrate(_database(database))
    out.print("database is at the latest schema")


@api_app.command("index")
def api_index(
    database: DatabaseOpt = None,
    follow: Annotated[bool, typer.Option(help="keep following new blocks")] = False,
    confirmations: Annotated[int | None, typer.Option(help="blocks deep before indexing")] = None,
    reorg_window: Annotated[int, typer.Option(help="blocks kept for reorg rollback")] = 128,
    batch_size: Annotated[int, typer.Option(help="blocks per transaction")] = 500,
) -> None:
    """Index the deployed contracts' events (RPC and deployment from settings).

    Example: OPENTRAIN_RPC_URL=http://127.0.0.1:8545 opentrain api index --follow
    """
    from marketplace_api.db import make_engine, make_session_factory
    from marketplace_api.indexer import Indexer
    from opentrain.chain import Deployment, connect

    settings = Settings()
    deployment = Deployment.load(settings.resolved_deployment_file)
    factory = make_session_factory(make_engine(_database(database)))
    indexer = Indexer(
        connect(settings.rpc_url),
        deployment,
        factory,
        confirmations=settings.confirmations if confirmations is None else confirmations,
        reorg_window=reorg_window,
        batch_size=batch_size,
    )
    if follow:
        indexer.follow()
        return
    count = indexer.sync()
    out.print(
        f"{count} events indexed up to block {indexer.stats.head}; "
        f"{indexer.stats.reorgs} reorgs rolled back"
    )


@api_app.command("serve")
def api_serve(
    database: DatabaseOpt = None,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    relay: Annotated[bool, typer.Option(help="accept signed bounties (POST /bounties)")] = False,
) -> None:
    """Serve the REST API (OpenAPI at /docs) and the dashboard (/).

    Example: opentrain api serve --port 8000
    """
    _serve(_database(database), host, port, relay=relay)


def _serve(
    database_url: str, host: str, port: int, store_dir: Path | None = None, relay: bool = False
) -> None:
    import uvicorn

    from marketplace_api.app import create_app
    from marketplace_api.bounties import BountyRelay
    from marketplace_api.db import make_engine, make_session_factory
    from opentrain.chain import Deployment, connect
    from opentrain.store import open_store

    settings = Settings()
    store = open_store(store_dir or settings.resolved_store_dir)
    relay_to = None
    if relay:
        relay_to = BountyRelay(
            connect(settings.rpc_url), Deployment.load(settings.resolved_deployment_file), store
        )
    application = create_app(
        session_factory=make_session_factory(make_engine(database_url)),
        store=store,
        relay=relay_to,
    )
    out.print(f"dashboard: http://{host}:{port}/ (OpenAPI at /docs); Ctrl-C stops it")
    uvicorn.run(application, host=host, port=port, log_level="warning")


def main() -> None:
    """Entry point: errors are one clear line and a non-zero exit, never a traceback."""
    try:
        app()
    except Exception as exc:  # the last line of defence for the one-line-error rule
        message = str(exc).splitlines()[0] if str(exc) else ""
        err.print(f"[red]error:[/] {type(exc).__name__}: {message}")
        sys.exit(1)
