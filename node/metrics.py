"""Optional Prometheus metrics of the node daemon (off unless ``--metrics-port`` is given)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

REGISTRY = CollectorRegistry()
SEGMENTS = Counter(
    "opentrain_node_segments_total", "segments trained and published", registry=REGISTRY
)
SLOTS = Counter("opentrain_node_slots_submitted_total", "slots submitted", registry=REGISTRY)
ERRORS = Counter("opentrain_node_errors_total", "errors while working a slot", registry=REGISTRY)
STEPS_PER_SECOND = Gauge(
    "opentrain_node_steps_per_second", "inner steps per second", registry=REGISTRY
)
EARNED = Gauge(
    "opentrain_node_tokens_earned", "credits not yet withdrawn (TRAIN)", registry=REGISTRY
)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics on ``host:port`` from a background thread."""
    start_http_server(port, addr=host, registry=REGISTRY)
