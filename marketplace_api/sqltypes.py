"""Column types shared by the ORM models and the migrations.

Kept apart from ``models`` so a migration can import a type without importing today's models:
migrations are frozen history, models keep changing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

UINT256_MAX = 2**256 - 1


class Uint256(TypeDecorator[int]):
    """A Solidity ``uint256`` stored exactly: ``NUMERIC(78, 0)`` on PostgreSQL, a decimal
    string elsewhere (SQLite has no exact 256-bit numbers and would round through a float)."""

    impl = String(78)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(String(78))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = int(value)
        if not 0 <= value <= UINT256_MAX:
            raise ValueError(f"{value} does not fit in a uint256")
        return Decimal(value) if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)
