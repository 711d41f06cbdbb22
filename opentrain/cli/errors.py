"""The one-line error rule of the command line: every failure of a command is ``error: …`` on
stderr and exit code 1, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import click
import typer

__all__ = ["fail", "one_line", "one_line_errors"]

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:400]


def one_line_errors(
    expected: tuple[type[Exception], ...] | Callable[[], tuple[type[Exception], ...]] = (
        Exception,
    ),
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap a command: ``expected`` errors print their message, anything else its type and
    message (the rule holds for the unexpected too); Ctrl-C exits 130. ``expected`` may be a
    function returning the tuple, so a command module need not import heavy error types until
    a command runs (``--help`` stays fast)."""

    def wrap(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return command(*args, **kwargs)
            except (
                typer.Exit,
                typer.Abort,
                click.exceptions.Exit,
                click.ClickException,
                click.Abort,
            ):
                raise
            except KeyboardInterrupt:
                raise typer.Exit(130) from None
            except Exception as exc:
                kinds = expected() if callable(expected) else expected
                if isinstance(exc, kinds):
                    fail(one_line(exc))
                fail(f"{type(exc).__name__}: {one_line(exc)}")

        return run

    return wrap
