"""JSON bodies of the hottest reads (the bounty list, a proof bundle) written straight from
database rows, in the exact shape and field order of their response models (``schemas``):
no model objects built per row, then serialized. ``tests/test_api_encode.py`` holds them
byte-equal to the models' own ``model_dump_json``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any, get_args

from pydantic import BaseModel, PlainSerializer

from marketplace_api.schemas import JobSummary


@cache
def amount_fields(model: type[BaseModel]) -> frozenset[str]:
    """Fields of ``model`` typed ``schemas.Amount``: token amounts, decimal strings in JSON."""
    return frozenset(
        name
        for name, info in model.model_fields.items()
        if _is_amount(info.metadata) or _is_amount_type(info.annotation)
    )


def _is_amount(metadata: Iterable[Any]) -> bool:
    return any(isinstance(m, PlainSerializer) and m.return_type is str for m in metadata)


def _is_amount_type(annotation: Any) -> bool:
    """``Amount`` anywhere in the annotation (``Amount | None`` included)."""
    if _is_amount(getattr(annotation, "__metadata__", ())):
        return True
    return any(_is_amount_type(a) for a in get_args(annotation))


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as pydantic writes it (no spaces, non-ASCII kept as is)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _amount(value: int | None) -> str | None:
    return None if value is None else str(value)


# JobSummary's fields and where each comes from in a ``queries.job_summaries`` row.
_JOB_SOURCES = {"name": "spec_name", "model": "spec_model"}


@cache
def _job_plan() -> tuple[tuple[str, str, bool], ...]:
    amounts = amount_fields(JobSummary)
    return tuple(
        (name, _JOB_SOURCES.get(name, name), name in amounts) for name in JobSummary.model_fields
    )


def job_summary(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A ``JobSummary`` as JSON-ready values, from a ``queries.job_summaries`` row."""
    return {
        name: (_amount(row[source]) if amount else row[source])
        for name, source, amount in _job_plan()
    }


def job_page(total: int, limit: int, offset: int, rows: Sequence[Mapping[Any, Any]]) -> bytes:
    """The ``JobPage`` body."""
    items = [job_summary(row) for row in rows]
    return dumps({"total": total, "limit": limit, "offset": offset, "items": items})
