"""The undo journal: how the indexer takes back what recent blocks did to the projections.

While an event of a block inside the reorg window is applied (``journaling``), every flush of
the session — explicit or automatic, in the middle of a handler — first records, per changed
projected row (``PROJECTED_MODELS``), what undoes the change: delete a row that was created,
restore the previous values of changed columns, re-insert a row that was deleted.
``rollback`` replays those entries newest first. Nothing here knows any event: new
projections are journaled as long as their handlers go through the ORM.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, event, inspect, select
from sqlalchemy.orm import Session

from marketplace_api.models import PROJECTED_MODELS, Base, ProjectionUndo

_MODELS: dict[str, type[Base]] = {m.__tablename__: m for m in PROJECTED_MODELS}


def _pk_names(model: type[Base]) -> list[str]:
    return [str(column.key) for column in inspect(model).primary_key]


def _key(obj: Base) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in _pk_names(type(obj))}


def _columns(obj: Base) -> list[str]:
    return [attr.key for attr in inspect(type(obj)).column_attrs]


_BLOCK = "journal_block"
_ENTRIES = "journal_entries"


class JournalError(RuntimeError):
    """A change the journal could not record how to undo (a projection bug)."""


@contextmanager
def journaling(session: Session, block_number: int | None) -> Iterator[None]:
    """Within the block, flushes of ``session`` journal their changes under ``block_number``,
    and the block ends with one (None: changes of a block too deep to be rolled back, not
    journaled and left pending for the next flush)."""
    if not event.contains(session, "before_flush", _before_flush):
        event.listen(session, "before_flush", _before_flush)
    previous = session.info.get(_BLOCK)
    session.info[_BLOCK] = block_number
    try:
        yield
        if block_number is not None:
            session.flush()
    finally:
        session.info[_BLOCK] = previous


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    block_number = session.info.get(_BLOCK)
    if block_number is not None:
        record(session, block_number)


def record(session: Session, block_number: int) -> None:
    """Journal the session's unflushed changes to projected rows as undo entries of
    ``block_number`` (runs before every flush while ``journaling``). One entry per row and
    block however many flushes the block took: the journal does not depend on batching."""
    for obj in list(session.new):
        if isinstance(obj, PROJECTED_MODELS):
            _note(session, obj, block_number, before=None)
    for obj in list(session.dirty):
        if not isinstance(obj, PROJECTED_MODELS) or not session.is_modified(obj):
            continue
        state = inspect(obj)
        before: dict[str, Any] = {}
        for name in _columns(obj):
            history = state.attrs[name].history
            if not history.has_changes():
                continue
            if not history.deleted:  # set without ever being loaded: no previous value
                raise JournalError(
                    f"{type(obj).__name__}.{name} changed but its previous value was never "
                    "loaded: create rows with every column set (projections._add)"
                )
            before[name] = history.deleted[0]
        if before:
            _note(session, obj, block_number, before=before)
    for obj in list(session.deleted):
        if isinstance(obj, PROJECTED_MODELS):
            whole = {name: getattr(obj, name) for name in _columns(obj)}
            _note(session, obj, block_number, before=whole, deleted=True)


def _note(
    session: Session,
    obj: Base,
    block_number: int,
    *,
    before: dict[str, Any] | None,
    deleted: bool = False,
) -> None:
    """Add an entry, or fold it into this block's earlier entry for the same row (the values
    from before the block's first change win; a row the block created stays "delete it")."""
    key = _key(obj)
    seen: dict[tuple[int, str, str], ProjectionUndo] = session.info.setdefault(_ENTRIES, {})
    marker = (block_number, type(obj).__tablename__, repr(sorted(key.items())))
    entry = seen.get(marker)
    if entry is None:
        entry = ProjectionUndo(
            block_number=block_number,
            table_name=type(obj).__tablename__,
            row_key=key,
            before=before,
            deleted=deleted,
        )
        session.add(entry)
        seen[marker] = entry
    elif entry.before is not None and not entry.deleted and before is not None:
        entry.before = {**before, **entry.before}  # a new dict: JSON is not mutation-tracked


def rollback(session: Session, after_block: int) -> int:
    """Undo every journaled change made by blocks after ``after_block``, newest first; returns
    how many entries were undone. The caller deletes those blocks' events and hashes."""
    entries = session.scalars(
        select(ProjectionUndo)
        .where(ProjectionUndo.block_number > after_block)
        .order_by(ProjectionUndo.id.desc())
    ).all()
    for entry in entries:
        model = _MODELS[entry.table_name]
        pk = tuple(entry.row_key[name] for name in _pk_names(model))
        row = session.get(model, pk if len(pk) > 1 else pk[0])
        if entry.before is None:  # created by the undone block
            if row is not None:
                session.delete(row)
        elif entry.deleted:  # deleted by the undone block
            session.add(model(**entry.before))
        elif row is not None:
            for name, value in entry.before.items():
                setattr(row, name, value)
        session.flush()  # in order: a child row goes before the parent it points to
        session.expire_all()  # no stale collections holding rows deleted just now
    session.execute(delete(ProjectionUndo).where(ProjectionUndo.block_number > after_block))
    return len(entries)


def prune(session: Session, final_block: int) -> None:
    """Forget undo entries of blocks that can no longer be rolled back."""
    session.execute(delete(ProjectionUndo).where(ProjectionUndo.block_number <= final_block))
