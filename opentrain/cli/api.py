"""``opentrain api``: the marketplace API's database, indexer and server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    pass

api_app = typer.Typer(help="The marketplace API: database, indexer, server.", no_args_is_help=True)


err = Console(stderr=True)
out = Console()

DatabaseOpt = Annotated[
    str | None, typer.Option("--database", help="SQLAlchemy URL (default: SQLite in home)")
]


def _database(url: str | None) -> str:
    from opentrain.settings import Settings

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
    from marketplace_api.db import make_engine, make_session_factory, migrate_if_embedded
    from marketplace_api.indexer import Indexer
    from opentrain.chain.client import Deployment, connect
    from opentrain.settings import Settings

    settings = Settings()
    deployment = Deployment.load(settings.resolved_deployment_file)
    url = _database(database)
    migrate_if_embedded(url)
    factory = make_session_factory(make_engine(url))
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
    serve_api(_database(database), host, port, relay=relay)


def serve_api(
    database_url: str, host: str, port: int, store_dir: Path | None = None, relay: bool = False
) -> None:
    import uvicorn

    from marketplace_api.app import create_app
    from marketplace_api.bounties import BountyRelay
    from marketplace_api.db import make_engine, make_session_factory, migrate_if_embedded
    from opentrain.chain.client import Deployment, connect
    from opentrain.content.embedded import open_store
    from opentrain.settings import Settings

    settings = Settings()
    store = open_store(store_dir or settings.resolved_store_dir)
    relay_to = None
    if relay:
        relay_to = BountyRelay(
            connect(settings.rpc_url), Deployment.load(settings.resolved_deployment_file), store
        )
    migrate_if_embedded(database_url)  # PostgreSQL still needs `opentrain api migrate`
    application = create_app(
        session_factory=make_session_factory(make_engine(database_url)),
        store=store,
        relay=relay_to,
    )
    out.print(f"dashboard: http://{host}:{port}/ (OpenAPI at /docs); Ctrl-C stops it")
    uvicorn.run(application, host=host, port=port, log_level="warning")
