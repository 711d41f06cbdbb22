"""Chain indexer: copies the contracts' events into the database and projects them into tables.

- Batches: each batch of blocks is one database transaction (raw ``ChainEvent`` rows, their
  projection, the kept block hashes and the cursor move together), so a crash leaves the
  database at the end of the previous batch and the next ``sync`` resumes there. Raw rows are
  unique by (block hash, log index): re-reading a range never applies an event twice.
- Confirmations: only blocks at least ``confirmations`` deep are indexed.
- Reorgs: the hashes of indexed blocks inside the last ``reorg_window`` blocks are kept, and
  every change their events made to the projections is journaled (``marketplace_api.journal``).
  Before each batch the cursor's hash is compared with the chain; when it changed, the indexer
  walks the kept hashes down to the newest block the chain still has (the common ancestor),
  undoes everything above it and indexes the new branch. A reorg deeper than the window raises
  ``ReorgTooDeepError`` instead of serving data the chain no longer says.
- Replays: projections are computed only from stored rows, so when the projection code
  changes (``PROJECTION_VERSION``) the stored events are replayed without touching the chain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3
from web3.exceptions import BlockNotFound
from web3.types import BlockData, LogReceipt

from marketplace_api import journal
from marketplace_api.db import check_migrated
from marketplace_api.events import EventDecoder
from marketplace_api.events import hex0x as _hex
from marketplace_api.journal import journaling
from marketplace_api.models import (
    PROJECTED_MODELS,
    ChainEvent,
    IndexedBlock,
    IndexerCursor,
    ProjectionUndo,
)
from marketplace_api.projections import (
    APPLY,
    LOSS_SCALE,
    PROJECTION_VERSION,
    ProjectionError,
    related_ids,
)
from opentrain.chain.abi import artifact
from opentrain.chain.client import Deployment
from opentrain.chain.types import CONTRACT_NAMES

__all__ = [
    "APPLY",
    "CURSOR",
    "LOSS_SCALE",
    "ChainMovedError",
    "Indexer",
    "IndexerError",
    "ReorgTooDeepError",
    "SyncStats",
    "apply_event",
    "apply_events",
]

log = logging.getLogger(__name__)

CURSOR = "main"
DEFAULT_REORG_WINDOW = 128
MAX_RETRIES = 8
REPLAY_PAGE = 2_000
ZERO_HASH = "0x" + "00" * 32


class IndexerError(RuntimeError):
    """The chain and the database disagree in a way the indexer cannot repair by itself."""


class ReorgTooDeepError(IndexerError):
    """The chain replaced blocks below the reorg window: the database must be rebuilt."""


class ChainMovedError(IndexerError):
    """The chain reorganised while a batch was read; the batch is retried from the cursor."""


@dataclass
class SyncStats:
    """What the last ``sync`` did (also logged)."""

    events: int = 0
    batches: int = 0
    reorgs: int = 0
    rolled_back_blocks: int = 0
    undone_changes: int = 0
    retries: int = 0
    replayed: int = 0
    head: int | None = None
    reorg_depths: list[int] = field(default_factory=list)


class Indexer:
    """Follows the four contracts of ``deployment`` on ``w3`` into ``session_factory``'s DB."""

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        session_factory: sessionmaker[Session],
        *,
        batch_size: int = 500,
        confirmations: int = 0,
        reorg_window: int = DEFAULT_REORG_WINDOW,
    ) -> None:
        if batch_size < 1 or confirmations < 0 or reorg_window < 1:
            raise ValueError("batch_size and reorg_window must be >= 1, confirmations >= 0")
        self.w3 = w3
        self.deployment = deployment
        self.session_factory = session_factory
        self.batch_size = batch_size
        self.confirmations = confirmations
        self.reorg_window = reorg_window
        self.stats = SyncStats()
        self._sources = _event_sources(deployment)
        self._addresses = [Web3.to_checksum_address(getattr(deployment, n)) for n in CONTRACT_NAMES]
        with session_factory() as session:
            check_migrated(session.connection())

    # -- public --------------------------------------------------------------------------

    def sync(self, to_block: int | None = None) -> int:
        """Index every confirmed block after the cursor up to ``to_block`` (default: the head
        minus the confirmation depth), rolling back first if the chain reorganised. Returns
        how many new events were stored and applied."""
        self.stats = SyncStats()
        self._replay_if_outdated()
        retries = 0
        while True:
            try:
                if not self._step(to_block):
                    return self.stats.events
            except ChainMovedError as exc:
                retries += 1
                self.stats.retries = retries
                if retries > MAX_RETRIES:
                    raise IndexerError(f"chain keeps moving under the indexer: {exc}") from None
                log.info("retrying batch: %s", exc)

    def follow(self, poll_seconds: float = 2.0, *, stop_after: float | None = None) -> None:
        """Keep syncing until interrupted (or for ``stop_after`` seconds)."""
        deadline = None if stop_after is None else time.monotonic() + stop_after
        while deadline is None or time.monotonic() < deadline:
            count = self.sync()
            if count:
                log.info("indexed %d events up to block %s", count, self.stats.head)
            time.sleep(poll_seconds)

    def replay(self) -> int:
        """Rebuild every projection from the stored raw events (no chain access); the undo
        journal is rebuilt for blocks inside the window. Returns the number of events."""
        with self.session_factory.begin() as session:
            cursor = session.get(IndexerCursor, CURSOR)
            final = cursor.final_block if cursor is not None else -1
            session.execute(delete(ProjectionUndo))
            for model in reversed(PROJECTED_MODELS):
                session.execute(delete(model))
            count = 0
            query = select(ChainEvent).order_by(
                ChainEvent.block_number, ChainEvent.tx_index, ChainEvent.log_index
            )
            while True:  # in pages: no open cursor while the projections are written
                page = session.scalars(query.limit(REPLAY_PAGE).offset(count)).all()
                apply_events(session, page, final=final)
                count += len(page)
                if len(page) < REPLAY_PAGE:
                    break
            if cursor is not None:
                cursor.projection_version = PROJECTION_VERSION
        self.stats.replayed = count
        log.info("replayed %d stored events into the projections", count)
        return count

    # -- one step: check for a reorg, then index one batch -------------------------------

    def _step(self, to_block: int | None) -> bool:
        """Index the next batch; False when there is nothing left to do."""
        head = int(self.w3.eth.block_number)
        self.stats.head = head
        target = head - self.confirmations
        if to_block is not None:
            target = min(to_block, target)
        cursor = self._cursor()
        if cursor is not None:
            if cursor.halted:
                raise ReorgTooDeepError(cursor.halted)
            self._check_reorg(cursor, head)
            cursor = self._cursor()
        start = self.deployment.block if cursor is None else cursor.block_number + 1
        if start > target:
            return False
        last = min(start + self.batch_size - 1, target)
        previous = None if cursor is None else (cursor.block_number, cursor.block_hash)
        self.stats.events += self._index_batch(start, last, head, previous)
        self.stats.batches += 1
        return True

    def _cursor(self) -> IndexerCursor | None:
        with self.session_factory() as session:
            return session.get(IndexerCursor, CURSOR)

    def _chain_hash(self, number: int) -> str | None:
        try:
            return _hex(self.w3.eth.get_block(number)["hash"])
        except BlockNotFound:
            return None  # the chain is now shorter than this

    def _check_reorg(self, cursor: IndexerCursor, head: int) -> None:
        """If the cursor's block was replaced, roll back to the common ancestor."""
        if self._chain_hash(cursor.block_number) == cursor.block_hash:
            return
        with self.session_factory() as session:
            kept = session.execute(
                select(IndexedBlock.number, IndexedBlock.hash)
                .where(IndexedBlock.number < cursor.block_number)
                .where(IndexedBlock.number >= cursor.final_block)
                .order_by(IndexedBlock.number.desc())
            ).all()
        ancestor = None
        for number, block_hash in kept:
            if self._chain_hash(number) == block_hash:
                ancestor = (number, block_hash)
                break
        if ancestor is None:
            message = (
                f"block {cursor.block_number} was replaced and no block of the last "
                f"{self.reorg_window} indexed still matches the chain (reorg deeper than the "
                "window, or a different chain): stopping rather than serving replaced data; "
                "rebuild the database from scratch (new database, `opentrain api migrate`, "
                "`opentrain api index`)"
            )
            with self.session_factory.begin() as session:
                halted = session.get(IndexerCursor, CURSOR)
                if halted is not None:
                    halted.halted = message
            raise ReorgTooDeepError(message)
        self._rollback(*ancestor)
        depth = cursor.block_number - ancestor[0]
        self.stats.reorgs += 1
        self.stats.rolled_back_blocks += depth
        self.stats.reorg_depths.append(depth)
        log.warning(
            "reorg: block %d replaced; rolled back %d blocks to %d (%s), head %d",
            cursor.block_number,
            depth,
            ancestor[0],
            ancestor[1],
            head,
        )

    def _rollback(self, number: int, block_hash: str) -> None:
        """Undo everything above block ``number`` in one transaction."""
        with self.session_factory.begin() as session:
            self.stats.undone_changes += journal.rollback(session, number)
            session.execute(delete(ChainEvent).where(ChainEvent.block_number > number))
            session.execute(delete(IndexedBlock).where(IndexedBlock.number > number))
            cursor = session.get(IndexerCursor, CURSOR)
            assert cursor is not None
            cursor.block_number = number
            cursor.block_hash = block_hash

    def _replay_if_outdated(self) -> None:
        cursor = self._cursor()
        if cursor is not None and cursor.projection_version != PROJECTION_VERSION:
            log.info(
                "projections are version %d, code is %d: replaying stored events",
                cursor.projection_version,
                PROJECTION_VERSION,
            )
            self.replay()

    # -- one batch ---------------------------------------------------------------------------

    def _index_batch(
        self, first: int, last: int, head: int, previous: tuple[int, str] | None
    ) -> int:
        """Store, apply and advance the cursor over blocks ``first..last`` in one transaction.

        Blocks inside the window get their headers read (hashes kept, parent links checked
        against each other, the cursor and the logs); deeper blocks only the last one's."""
        final = head - self.reorg_window  # blocks at or below cannot be rolled back
        headers = self._headers(max(first, final), last) if last >= final else {}
        if last not in headers:
            headers[last] = self._header(last)
        logs = self.w3.eth.get_logs(
            {"fromBlock": first, "toBlock": last, "address": self._addresses}
        )
        _check_links(headers, previous)
        for entry in logs:
            header = headers.get(int(entry["blockNumber"]))
            if header is not None and _hex(entry["blockHash"]) != _hex(header["hash"]):
                raise ChainMovedError(f"log of block {entry['blockNumber']} is from another fork")
        if _hex(self._header(last)["hash"]) != _hex(headers[last]["hash"]):
            raise ChainMovedError(f"block {last} changed while its batch was read")

        rows = [row for row in map(self._decode, logs) if row is not None]
        rows.sort(key=lambda r: (r.block_number, r.tx_index, r.log_index))
        with self.session_factory.begin() as session:
            cursor = session.get(IndexerCursor, CURSOR)
            if cursor is None:
                cursor = IndexerCursor(
                    name=CURSOR,
                    block_number=last,
                    block_hash="",
                    final_block=-1,
                    projection_version=PROJECTION_VERSION,
                )
                session.add(cursor)
            final = max(final, cursor.final_block)
            fresh = _drop_known(session, rows)
            session.add_all(fresh)
            apply_events(session, fresh, final=final)
            kept = {n: _hex(h["hash"]) for n, h in headers.items() if n >= final}
            if kept:
                session.execute(
                    delete(IndexedBlock).where(IndexedBlock.number.between(min(kept), max(kept)))
                )
                session.add_all(IndexedBlock(number=n, hash=h) for n, h in kept.items())
            cursor.block_number = last
            cursor.block_hash = _hex(headers[last]["hash"])
            cursor.final_block = final
            session.execute(delete(IndexedBlock).where(IndexedBlock.number < final))
            journal.prune(session, final)
        if fresh:
            log.info("indexed blocks %d-%d: %d events", first, last, len(fresh))
        return len(fresh)

    def _header(self, number: int) -> BlockData:
        try:
            return self.w3.eth.get_block(number)
        except BlockNotFound:
            raise ChainMovedError(f"block {number} disappeared") from None

    def _headers(self, first: int, last: int) -> dict[int, BlockData]:
        return {n: self._header(n) for n in range(first, last + 1)}

    def _decode(self, entry: LogReceipt) -> ChainEvent | None:
        """A log as a ``ChainEvent`` row; logs of events not in the ABIs are skipped."""
        if not entry["topics"]:
            return None
        key = (Web3.to_checksum_address(entry["address"]), _hex(entry["topics"][0]))
        decoder = self._sources.get(key)
        if decoder is None:
            log.warning("skipping unknown log %s in block %d", key, entry["blockNumber"])
            return None
        args = decoder.decode(entry["topics"], entry["data"])
        job_id, contribution_id = related_ids(args)
        return ChainEvent(
            block_number=int(entry["blockNumber"]),
            block_hash=_hex(entry["blockHash"]),
            tx_hash=_hex(entry["transactionHash"]),
            tx_index=int(entry["transactionIndex"]),
            log_index=int(entry["logIndex"]),
            contract=decoder.contract,
            address=key[0],
            name=decoder.name,
            args=args,
            job_id=job_id,
            contribution_id=contribution_id,
        )


def apply_event(session: Session, event: ChainEvent) -> None:
    """Project one stored event (events nothing reads yet stay raw only)."""
    handler = APPLY.get(event.name)
    if handler is None:
        return
    try:
        handler(session, event)
    except ProjectionError as exc:
        raise IndexerError(f"{event.name} in block {event.block_number}: {exc}") from None


def apply_events(session: Session, events: Sequence[ChainEvent], *, final: int) -> None:
    """Project events in chain order, one flush per block: a block's changes are journaled
    under its number when it is above ``final`` (it may still be rolled back). Reads between
    flushes see pending rows through autoflush."""
    for block, group in groupby(events, key=attrgetter("block_number")):
        journaled = block > final
        if journaled:
            session.flush()  # unjournaled changes of deeper blocks are not this block's
        with journaling(session, block if journaled else None):
            for event in group:
                apply_event(session, event)


def _check_links(headers: Mapping[int, BlockData], previous: tuple[int, str] | None) -> None:
    """Consecutive headers must chain by parent hash, and onto the cursor's block: a header
    read after a reorg next to one read before it is caught here, before anything is stored."""
    for number in sorted(headers):
        parent = headers.get(number - 1)
        expected = _hex(parent["hash"]) if parent is not None else None
        if expected is None and previous is not None and previous[0] == number - 1:
            expected = previous[1]
        parent_hash = _hex(headers[number]["parentHash"])
        if parent_hash == ZERO_HASH:
            continue  # Hardhat reports no parent for blocks it mined in bulk (hardhat_mine)
        if expected is not None and parent_hash != expected:
            raise ChainMovedError(
                f"block {number} ({_hex(headers[number]['hash'])}) does not extend block "
                f"{number - 1} ({expected})"
            )


def _event_sources(deployment: Deployment) -> dict[tuple[str, str], EventDecoder]:
    """(contract address, topic0) -> decoder, over every event in the contracts' ABIs."""
    sources: dict[tuple[str, str], EventDecoder] = {}
    for name in CONTRACT_NAMES:
        address = Web3.to_checksum_address(getattr(deployment, name))
        for item in artifact(name)["abi"]:
            if item["type"] == "event" and not item.get("anonymous", False):
                decoder = EventDecoder.from_abi(name, item)
                sources[(address, decoder.topic)] = decoder
    return sources


def _drop_known(session: Session, rows: Sequence[ChainEvent]) -> list[ChainEvent]:
    """Rows not stored yet: re-reading a range (a rewound cursor) must not apply twice.
    Looks up by block hash (at most one per block of the batch) to keep the query small."""
    if not rows:
        return []
    hashes = {r.block_hash for r in rows}
    query = select(ChainEvent.block_hash, ChainEvent.log_index).where(
        ChainEvent.block_hash.in_(hashes)
    )
    known = {(block_hash, log_index) for block_hash, log_index in session.execute(query)}
    return [r for r in rows if (r.block_hash, r.log_index) not in known]
