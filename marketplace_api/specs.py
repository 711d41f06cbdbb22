"""Job specs whose content is known: the sha256 of their canonical JSON equals a job's on-chain
``specDigest``. Kept so pages can show a job's name and model, and jobs filter by model."""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy.orm import Session

from marketplace_api.models import JobSpecRecord
from opentrain.content.errors import ContentError
from opentrain.content.store import ContentStore
from opentrain.spec import JobSpec, SpecError, canonical_json, parse_spec

log = logging.getLogger(__name__)


def remember(session: Session, spec: JobSpec, spec_cid: str) -> JobSpecRecord:
    """Record a parsed spec under its digest (idempotent)."""
    body = canonical_json(spec)
    digest = "0x" + hashlib.sha256(body).hexdigest()
    record = session.get(JobSpecRecord, digest)
    if record is None:
        record = JobSpecRecord(
            spec_digest=digest,
            spec_cid=spec_cid,
            name=spec.name[:128],
            model=spec.model.name,
            body=body.decode("ascii"),
        )
        session.add(record)
    return record


def resolve(
    session: Session, store: ContentStore, spec_digest: str, spec_cid: str
) -> JobSpecRecord | None:
    """The record for ``spec_digest``, fetching the spec from ``store`` by ``spec_cid`` if it is
    there and its sha256 matches; None when the content is unknown or does not match."""
    record = session.get(JobSpecRecord, spec_digest)
    if record is not None:
        return record
    try:
        if not store.has(spec_cid):
            return None
        data = store.get_bytes(spec_cid, expected_sha256=bytes.fromhex(spec_digest[2:]))
        spec = parse_spec(data)
    except (ContentError, SpecError, ValueError) as exc:
        log.warning("spec %s of digest %s not usable: %s", spec_cid, spec_digest, exc)
        return None
    if canonical_json(spec) != data:
        return None  # digest of non-canonical bytes: show nothing rather than a re-encoding
    return remember(session, spec, spec_cid)
