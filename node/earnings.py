"""``opentrain node earnings``: what this account earned and why, payment by payment.

Every credit (reward, verifier fee, slash share, committee reward), slash and withdrawal, read
from the contracts' events, with its contribution, reason, transaction and CID; the total
credited is checked against what the chain holds (``creditsOf`` + withdrawn).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console

from opentrain.chain.types import TOKEN

# piped or captured: wide enough for full transaction hashes and CIDs on one line each
out = Console() if sys.stdout.isatty() else Console(width=260)


def earnings_command(
    address: Annotated[
        str | None, typer.Option(help="any account (default: this node's key)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Every credit, slash, fee and withdrawal of this node with its contribution, reason,
    transaction hash and CID; the total equals the chain's credits + withdrawn.

    Example: opentrain node earnings
    """
    from rich.table import Table

    from opentrain.chain.ledger import fetch_ledger
    from opentrain.settings import Settings

    settings = Settings()
    if address is None:
        from opentrain.context import role_context

        ctx = role_context(settings)
        chain, who = ctx.chain, ctx.account.address
    else:
        from web3 import Web3

        from opentrain.context import connect_chain

        if not Web3.is_address(address):
            raise typer.BadParameter(f"not an address: {address}")
        chain, who = connect_chain(settings), Web3.to_checksum_address(address)
    ledger, credits = fetch_ledger(chain, who)
    agrees = credits == ledger.unwithdrawn
    if as_json:
        doc = ledger.to_dict()
        doc["chain_credits"] = str(credits)
        doc["matches_chain"] = agrees
        typer.echo(json.dumps(doc))
    else:
        table = Table(title=f"earnings of {who}")
        for col in ("block", "kind", "TRAIN", "job", "contrib.", "reason", "transaction", "CID"):
            table.add_column(col, justify="right" if col in ("TRAIN", "block") else "left")
        for e in ledger.entries:
            table.add_row(
                str(e.block),
                e.kind,
                f"{e.amount / TOKEN:+,.4f}",
                "" if e.job_id is None else str(e.job_id),
                "" if e.contribution_id is None else str(e.contribution_id),
                e.reason,
                e.tx_hash,
                e.cid,
            )
        out.print(table)
        out.print(
            f"credited {ledger.credited / TOKEN:,.4f} TRAIN = withdrawn "
            f"{ledger.withdrawn / TOKEN:,.4f} + on chain (creditsOf) {credits / TOKEN:,.4f}"
            f"{'' if agrees else ' [red]MISMATCH[/]'}; slashed {ledger.slashed / TOKEN:,.4f}"
        )
    if not agrees:
        raise typer.Exit(1)
