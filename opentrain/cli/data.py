"""``opentrain data …``: publish a text corpus to the content store for ``gpt`` jobs.

The store follows the settings (kubo when OPENTRAIN_IPFS_API is set, else the embedded store).
Mounted by the CLI root with ``app.add_typer(data_app, name="data")``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opentrain.cli.errors import one_line_errors

if TYPE_CHECKING:
    from opentrain.content.store import ContentStore

data_app = typer.Typer(
    name="data",
    help="Training data: split a corpus into shards in the content store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


_one_line_errors = one_line_errors()


def _store() -> ContentStore:
    from opentrain.content.backends import store_from_settings
    from opentrain.settings import Settings

    return store_from_settings(Settings())


@data_app.command()
@_one_line_errors
def publish(
    path: Annotated[
        Path | None, typer.Argument(help="corpus file (any bytes); omit for the builtin corpus")
    ] = None,
    shards: Annotated[int, typer.Option(min=1, help="number of training shards")] = 8,
    validation_size: Annotated[
        int, typer.Option(min=1, help="held-out windows the round loss is computed on")
    ] = 64,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the job spec's `data` part, not just the CID")
    ] = False,
) -> None:
    """Split a corpus into shards and a held-out validation shard (4 KiB chunks dealt
    round-robin, every 20th held out), store each and a manifest; print the manifest CID.

    The builtin corpus is CPython's English docs (pydoc_data.topics): no download.

    Example: opentrain data publish docs.txt --shards 8 --json
    """
    from opentrain.training.corpus import corpus_data_spec, publish_corpus

    store = _store()
    cid = publish_corpus(store, path, shards)
    if as_json:
        data = corpus_data_spec(store, cid, validation_size)
        typer.echo(json.dumps(data.model_dump(mode="json"), sort_keys=True))
    else:
        typer.echo(cid)


@data_app.command()
@_one_line_errors
def show(cid: Annotated[str, typer.Argument(help="CID of a corpus manifest")]) -> None:
    """Print a published corpus's manifest: every shard's CID, size and sha256.

    Example: opentrain data show bafkrei...
    """
    from opentrain.training.corpus import CorpusManifest

    manifest = CorpusManifest.from_json(_store().get_bytes(cid))
    typer.echo(f"corpus {manifest.name}: {len(manifest.shards)} shards")
    for i, ref in enumerate(manifest.shards):
        typer.echo(f"shard {i:>4}  {ref.size:>10} B  {ref.cid}  sha256 {ref.sha256}")
    ref = manifest.validation
    typer.echo(f"validation  {ref.size:>10} B  {ref.cid}  sha256 {ref.sha256}")
