"""Limits of the HTTP service. Defaults suit one public instance; tests and benchmarks pass
their own."""

from __future__ import annotations

from dataclasses import dataclass, field

from marketplace_api.middleware import RatePolicy


@dataclass(frozen=True)
class ApiConfig:
    # A job spec is at most 1 MiB (opentrain.spec.MAX_SPEC_BYTES) and travels as JSON next to
    # its transaction; nothing else the API accepts comes close.
    max_body_bytes: int = 2 * 1024 * 1024
    reads: RatePolicy = field(default_factory=lambda: RatePolicy(rate=500.0, burst=1000))
    writes: RatePolicy = field(default_factory=lambda: RatePolicy(rate=0.2, burst=5))
    # JSON answers are cached until the indexer's cursor moves; it is re-read this often.
    cache_refresh_seconds: float = 0.5
    cache_entries: int = 4096  # 0 disables the response cache
