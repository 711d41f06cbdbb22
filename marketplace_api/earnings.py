"""Payouts per account, from the indexed events: every credit, slash and withdrawal with its
contribution, reason, transaction and CID (``opentrain.chain.ledger``, the same rules as
``opentrain node earnings``), as JSON (``GET /accounts/{address}/earnings``) and as a dashboard
page (``/ui/accounts/{address}/earnings``).

The total is checked against the chain's own numbers: each ``Credited`` event carries the
account's credits after it (``total``) and ``withdraw`` empties them, so the events say what
``creditsOf`` is; the ledger's credited total must equal that plus everything withdrawn.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import select
from web3 import Web3

from marketplace_api.deps import SessionDep
from marketplace_api.models import ChainEvent
from marketplace_api.schemas import Address, Amount
from opentrain.chain.ledger import LEDGER_EVENTS, Ledger, LogRecord, build_ledger

__all__ = ["account_ledger", "page_router", "router"]

router = APIRouter()
page_router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

ADDRESS_PATTERN = "^0x[0-9a-fA-F]{40}$"
AddressPath = Annotated[
    str,
    Path(description="an address, any case", pattern=ADDRESS_PATTERN),
    AfterValidator(lambda v: str(Web3.to_checksum_address(v.lower()))),
]


class EarningsEntry(BaseModel):
    kind: str = Field(description="credit, slash or withdrawal")
    amount: str = Field(
        pattern="^-?[0-9]+$",
        description="token base units, signed: credits positive, slashes and withdrawals negative",
    )
    reason: str
    block: int
    tx_hash: str
    job_id: int | None
    contribution_id: int | None
    cid: str = Field(description="the output (reward), report (fee) or vote report CID")


class EarningsOut(BaseModel):
    """An account's payouts; ``credited`` = ``withdrawn`` + ``chain_credits`` when they agree."""

    address: Address
    credited: Amount = Field(description="every credit: rewards, fees, slash shares")
    withdrawn: Amount
    unwithdrawn: Amount = Field(description="credited - withdrawn, from the ledger")
    chain_credits: Amount = Field(description="creditsOf, as the chain's own events report it")
    matches_chain: bool
    slashed: Amount = Field(description="stake this account lost")
    total: int = Field(description="entries in the ledger")
    limit: int
    offset: int
    entries: list[EarningsEntry]


def _records(session: SessionDep) -> list[LogRecord]:
    names = [name for _, name in LEDGER_EVENTS]
    rows = session.execute(
        select(ChainEvent)
        .where(ChainEvent.name.in_(names))
        .order_by(ChainEvent.block_number, ChainEvent.log_index)
    ).scalars()
    return [
        LogRecord(
            name=row.name,
            args=row.args,
            block=int(row.block_number),
            tx_hash=row.tx_hash,
            log_index=int(row.log_index),
        )
        for row in rows
    ]


def chain_credits(address: str, records: list[LogRecord]) -> int:
    """``creditsOf(address)`` as the chain's events say: the last ``Credited.total``, zero after
    a ``CreditsWithdrawn``."""
    credits = 0
    for r in sorted(records, key=lambda r: (r.block, r.log_index)):
        if str(r.args.get("account", "")).lower() != address.lower():
            continue
        if r.name == "Credited":
            credits = int(r.args["total"])
        elif r.name == "CreditsWithdrawn":
            credits = 0
    return credits


def account_ledger(session: SessionDep, address: str) -> tuple[Ledger, int]:
    records = _records(session)
    return build_ledger(address, records), chain_credits(address, records)


@router.get("/accounts/{address}/earnings", tags=["participants"])
def get_earnings(
    address: AddressPath,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100, description="page size")] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31, description="items to skip")] = 0,
) -> EarningsOut:
    """Every credit, slash, fee and withdrawal of an account with its contribution, reason,
    transaction hash and CID; totals over the whole ledger, entries paginated."""
    ledger, credits = account_ledger(session, address)  # an unknown address: an empty ledger
    entries = [EarningsEntry(**e.to_dict()) for e in ledger.entries[offset : offset + limit]]
    return EarningsOut(
        address=address,
        credited=ledger.credited,
        withdrawn=ledger.withdrawn,
        unwithdrawn=ledger.unwithdrawn,
        chain_credits=credits,
        matches_chain=credits == ledger.unwithdrawn,
        slashed=ledger.slashed,
        total=len(ledger.entries),
        limit=limit,
        offset=offset,
        entries=entries,
    )


@page_router.get("/ui/accounts/{address}/earnings")
def earnings_page(request: Request, address: str, session: SessionDep) -> HTMLResponse:
    from marketplace_api import dashboard

    if not Web3.is_address(address):
        return dashboard.not_found(request, f"{address} is not an address.")
    checked = str(Web3.to_checksum_address(address.lower()))
    ledger, credits = account_ledger(session, checked)
    return dashboard.render(
        request,
        session,
        "earnings.html",
        address=checked,
        ledger=ledger,
        chain_credits=credits,
        matches=credits == ledger.unwithdrawn,
    )
