"""What every part of the auditor shares: the chain, the store, the event log."""

from __future__ import annotations

from opentrain.chain.client import Chain
from opentrain.chain.types import (
    ChainError,
)
from opentrain.content.errors import ContentError
from opentrain.content.store import ContentStore
from opentrain.protocol.jobs import JobError
from opentrain.protocol.manifest import ManifestError
from opentrain.spec import SpecError
from verifier.audit.events import EventLog

READ_ERRORS = (ContentError, ManifestError, ChainError, JobError, SpecError, ValueError)


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class AuditorBase:
    """Audits against one chain and one content store."""

    def __init__(self, chain: Chain, store: ContentStore, reexecute: bool = True) -> None:
        self.chain = chain
        self.store = store
        self.reexecute = reexecute
        self.events = EventLog(chain)
