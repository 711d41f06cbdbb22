"""``opentrain market``: a local market of separate processes (placeholder, filled below)."""

from __future__ import annotations

import typer

market_app = typer.Typer(help="A local market of separate processes.", no_args_is_help=True)
