"""`opentrain store …`: put, get, export and import CARs, pin, and serve a trustless gateway.

The backend follows the settings (kubo when OPENTRAIN_IPFS_API is set, else the embedded
store under OPENTRAIN_STORE_DIR or OPENTRAIN_HOME/store). Output meant for pipes (a CID,
content, a CAR) goes to stdout alone; every error is one line on stderr and exit code 1.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opentrain.cli.errors import fail, one_line_errors

if TYPE_CHECKING:
    from opentrain.content.car import DagSource
    from opentrain.content.store import ContentReader, ContentStore

store_app = typer.Typer(
    name="store",
    help="Content store: kubo-identical CIDs, CAR files, a trustless gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _expected_errors() -> tuple[type[Exception], ...]:
    import httpx

    from opentrain.content.errors import ContentError

    return (ContentError, OSError, httpx.HTTPError, ValueError)


_errors_as_one_line = one_line_errors(_expected_errors)


def _store() -> ContentStore:
    from opentrain.content.backends import store_from_settings
    from opentrain.settings import Settings

    return store_from_settings(Settings())


def _write_stdout(pieces: Iterable[bytes]) -> None:
    out = sys.stdout.buffer
    for piece in pieces:
        out.write(piece)
    out.flush()


def _sha256(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        digest = bytes.fromhex(value)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        fail(f"--sha256 wants 64 hex digits, got {value!r}")
    return digest


@store_app.command()
@_errors_as_one_line
def put(path: Annotated[Path, typer.Argument(help="file to store")]) -> None:
    """Store and pin a file; print its CID (the one `ipfs add --cid-version 1` prints).

    Example: opentrain store put checkpoint.safetensors
    """
    if not path.is_file():
        fail(f"not a file: {path}")
    typer.echo(_store().put_file(path))


@store_app.command()
@_errors_as_one_line
def get(
    cid: Annotated[str, typer.Argument(help="CID of the content")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="write here")] = None,
    sha256: Annotated[str | None, typer.Option(help="expected sha256 (hex)")] = None,
    gateway: Annotated[
        str | None, typer.Option(help="fetch from this trustless gateway URL instead")
    ] = None,
) -> None:
    """Fetch content, verified block by block; to stdout, or atomically to -o PATH.

    Example: opentrain store get bafy… -o model.safetensors --gateway http://node-1:8080
    """
    expected = _sha256(sha256)
    reader: ContentReader
    if gateway:
        from opentrain.content.gateway_client import GatewayClient
        from opentrain.settings import Settings

        reader = GatewayClient(gateway, max_bytes=Settings().max_content_bytes)
    else:
        reader = _store()
    if output is not None:
        reader.get_to_file(cid, output, expected)
    else:
        _write_stdout(reader.iter_content(cid, expected))


@store_app.command("export")
@_errors_as_one_line
def export(
    cid: Annotated[str, typer.Argument(help="root CID")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="CAR file to write")] = None,
) -> None:
    """Write the DAG under CID as a CARv1 (for `ipfs dag import`, pinning services).

    Example: opentrain store export bafy… > checkpoint.car
    """
    from opentrain.content.car import export_car
    from opentrain.content.embedded import EmbeddedStore
    from opentrain.content.store import write_atomically
    from opentrain.content.unixfs import parse_cid

    store = _store()
    root = parse_cid(cid)
    if isinstance(store, EmbeddedStore) and not store.has_dag(root):
        fail(f"missing block: {cid} is not (entirely) in the store")
    if output is None and sys.stdout.isatty():
        fail("refusing to write a CAR to a terminal: redirect stdout or use -o FILE")
    chunks = export_car(_dag_source(store), cid)
    if output is not None:
        write_atomically(output, chunks)
    else:
        _write_stdout(chunks)


def _dag_source(store: ContentStore) -> DagSource:
    from opentrain.content.embedded import EmbeddedStore
    from opentrain.content.kubo import KuboStore

    if isinstance(store, EmbeddedStore | KuboStore):
        return store
    fail(f"{type(store).__name__} cannot export CARs")


@store_app.command("import")
@_errors_as_one_line
def import_(
    car: Annotated[Path, typer.Argument(help="CAR file (v1 or v2), or - for stdin")],
) -> None:
    """Import and pin a CAR; print its root CID(s). A bad CAR writes nothing.

    Example: opentrain store import checkpoint.car
    """
    store = _store()
    for root in _import(store, car):
        typer.echo(root)


def _import(store: ContentStore, car: Path) -> list[str]:
    if str(car) == "-":
        with tempfile.NamedTemporaryFile(suffix=".car") as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.flush()
            return _import(store, Path(spool.name))
    if not car.is_file():
        fail(f"not a file: {car}")
    from opentrain.content.car import file_chunks, import_car
    from opentrain.content.embedded import EmbeddedStore

    if isinstance(store, EmbeddedStore):
        with open(car, "rb") as stream:
            return import_car(store, file_chunks(stream))
    from opentrain.content.kubo import KuboStore

    assert isinstance(store, KuboStore)
    return store.import_car(car)


@store_app.command()
@_errors_as_one_line
def pin(cid: Annotated[str, typer.Argument(help="CID to pin")]) -> None:
    """Pin content already in the store. Example: opentrain store pin bafy…"""
    _store().pin(cid)


@store_app.command()
@_errors_as_one_line
def unpin(cid: Annotated[str, typer.Argument(help="CID to unpin")]) -> None:
    """Remove a pin. Example: opentrain store unpin bafy…"""
    _store().unpin(cid)


@store_app.command()
@_errors_as_one_line
def pins() -> None:
    """List pinned CIDs, one a line. Example: opentrain store pins"""
    for cid in _store().pins():
        typer.echo(cid)


@store_app.command()
@_errors_as_one_line
def serve(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
) -> None:
    """Serve the embedded store as an IPFS trustless gateway (raw blocks and CARs).

    Always the embedded store under OPENTRAIN_STORE_DIR (kubo serves its own gateway).

    Example: opentrain store serve --host 127.0.0.1 --port 8080
    then: curl -H 'Accept: application/vnd.ipld.raw' http://127.0.0.1:8080/ipfs/bafk…
    """
    import uvicorn

    from opentrain.content.embedded import EmbeddedStore
    from opentrain.content.gateway_server import create_gateway_app
    from opentrain.settings import Settings

    settings = Settings()
    store = EmbeddedStore(settings.resolved_store_dir, max_bytes=settings.max_content_bytes)
    typer.echo(f"trustless gateway for {store.root} on http://{host}:{port}/ipfs/", err=True)
    uvicorn.run(create_gateway_app(store), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    store_app()
