"""Errors of the content layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


class ContentError(Exception):
    """Content cannot be stored or returned intact (bad CID, mismatch, missing, too big)."""


class ContentUnavailable(ContentError):
    """Content could not be obtained (not in the store, on no gateway that answered, or the
    backend is unreachable), as opposed to content that arrived and is wrong.

    The difference decides a verdict: wrong bytes condemn whoever committed to them at once,
    but missing bytes may be a passing partition on either side, so a verifier retries them
    for most of its window before it fails the contribution as withheld.
    """


class RemoteError(ContentUnavailable):
    """A remote backend (kubo, a gateway) is unreachable or answered outside its protocol.

    Kept apart from plain missing content so `has()` can say "not there" for missing content
    but still raise when it could not ask at all.
    """


def check_size(size: int, max_bytes: int | None) -> None:
    """Refuse content over ``max_bytes`` (None: no limit)."""
    if max_bytes is not None and size > max_bytes:
        raise ContentError(f"size limit exceeded: content is over {max_bytes} bytes")
