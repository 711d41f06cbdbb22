"""Small ASGI middlewares: a request body size limit, a per-client rate limit (token buckets)
and request metrics. Plain ASGI (no ``BaseHTTPMiddleware``) so they add microseconds, not
a task per request."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace_api.metrics import Metrics


async def _send_json(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """413 for a body over ``max_bytes``: refused on its Content-Length before it is read, or
    cut off while streaming when it has none (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, "invalid Content-Length", [])
                    return
                if declared > self.max_bytes:
                    await _send_json(send, 413, self._message(), [])
                    return
        seen = 0
        started = rejected = False

        async def limited_receive() -> Message:
            nonlocal seen, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer now and make the app see a client that left: frameworks turn
                    # exceptions raised while reading a body into their own 400s.
                    if not started:
                        await _send_json(send, 413, self._message(), [])
                    rejected = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return  # the 413 is the answer
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            if not rejected:
                raise

    def _message(self) -> str:
        return f"request body too large (limit {self.max_bytes} bytes)"


@dataclass(frozen=True)
class RatePolicy:
    """``rate`` requests per second on average, bursts of up to ``burst``; rate 0 disables."""

    rate: float
    burst: int


class _Buckets:
    """Token buckets per client, the least recently seen forgotten past ``max_clients``."""

    def __init__(self, policy: RatePolicy, max_clients: int = 10_000) -> None:
        self.policy = policy
        self.max_clients = max_clients
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, now: float) -> float:
        """0 when the request may go ahead, else the seconds until it could."""
        rate, burst = self.policy.rate, float(self.policy.burst)
        with self._lock:
            tokens, last = self._state.pop(client, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / rate
            self._state[client] = (tokens, now)
            while len(self._state) > self.max_clients:
                self._state.popitem(last=False)
            return wait


class RateLimit:
    """429 with Retry-After when a client (by peer address) exceeds its policy; writes
    (anything but GET/HEAD/OPTIONS) have their own, stricter bucket."""

    def __init__(self, app: ASGIApp, reads: RatePolicy, writes: RatePolicy) -> None:
        self.app = app
        self._reads = _Buckets(reads) if reads.rate > 0 else None
        self._writes = _Buckets(writes) if writes.rate > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_read = scope["method"] in ("GET", "HEAD", "OPTIONS")
        buckets = self._reads if is_read else self._writes
        if buckets is not None:
            client = scope.get("client")
            wait = buckets.take(client[0] if client else "?", time.monotonic())
            if wait > 0:
                retry = str(max(1, math.ceil(wait))).encode()
                kind = "reads" if is_read else "writes"
                detail = f"rate limit exceeded for {kind}: retry in {retry.decode()} s"
                await _send_json(send, 429, detail, [(b"retry-after", retry)])
                return
        await self.app(scope, receive, send)


class RequestMetrics:
    """Counts requests and times them by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], path, status, time.perf_counter() - start)
