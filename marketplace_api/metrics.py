"""Prometheus metrics in the text exposition format (0.0.4), without a client library: request
counters and latency histograms kept in memory, plus gauges read from the database on scrape."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable

from marketplace_api.queries import MarketStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


class Metrics:
    """Thread-safe counters for one app instance (each uvicorn worker has its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._latency: dict[tuple[str, str], list[int]] = {}
        self._latency_sum: dict[tuple[str, str], float] = defaultdict(float)
        self._latency_count: dict[tuple[str, str], int] = defaultdict(int)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route)
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            counts = self._latency.setdefault(key, [0] * len(BUCKETS))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            self._latency_sum[key] += seconds
            self._latency_count[key] += 1

    def render(self, stats: MarketStats | None) -> str:
        lines: list[str] = []
        with self._lock:
            lines += [
                "# HELP opentrain_api_requests_total HTTP requests by method, route and status.",
                "# TYPE opentrain_api_requests_total counter",
            ]
            for (method, route, status), count in sorted(self._requests.items()):
                labels = _labels((("method", method), ("route", route), ("status", status)))
                lines.append(f"opentrain_api_requests_total{labels} {count}")
            lines += [
                "# HELP opentrain_api_request_duration_seconds HTTP request latency.",
                "# TYPE opentrain_api_request_duration_seconds histogram",
            ]
            for (method, route), counts in sorted(self._latency.items()):
                base = (("method", method), ("route", route))
                name = "opentrain_api_request_duration_seconds"
                for bound, count in zip(BUCKETS, counts, strict=True):
                    labels = _labels((*base, ("le", repr(bound))))
                    lines.append(f"{name}_bucket{labels} {count}")
                total = self._latency_count[(method, route)]
                lines.append(f"{name}_bucket{_labels((*base, ('le', '+Inf')))} {total}")
                lines.append(f"{name}_sum{_labels(base)} {self._latency_sum[(method, route)]}")
                lines.append(f"{name}_count{_labels(base)} {total}")
        if stats is not None:
            gauges = {
                "indexed_block": ("Last block the indexer fully applied.", stats.indexed_block),
                "chain_events": ("Raw chain events stored.", stats.events),
                "jobs": ("Jobs indexed.", stats.jobs),
                "open_jobs": ("Jobs still open.", stats.open_jobs),
                "contributions": ("Contributions indexed.", stats.contributions),
                "contributions_pending": ("Contributions not settled yet.", stats.pending),
                "nodes": ("Addresses that submitted work.", stats.nodes),
                "verifiers": ("Registered verifiers.", stats.verifiers),
            }
            for name, (help_text, value) in gauges.items():
                if value is None:
                    continue
                lines += [
                    f"# HELP opentrain_{name} {help_text}",
                    f"# TYPE opentrain_{name} gauge",
                    f"opentrain_{name} {value}",
                ]
        return "\n".join(lines) + "\n"
