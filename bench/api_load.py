"""API load: requests/s and latency of the bounty list, a contribution's proof bundle and a
keyset page of the contribution list with 10,000 contributions indexed, on SQLite and
PostgreSQL.

The database is filled directly (jobs, contributions with their four events each, nodes),
the app is served by uvicorn in its own process, and the load comes from this process over
127.0.0.1: an open-loop phase at a fixed rate (latency measured from each request's scheduled
time, so a slow server cannot hide its queue) and a closed-loop phase (N clients back to back)
for the most the server does. The server's CPU time per request (from /proc) is printed too:
on a shared host other tenants inflate latency, much less the CPU a request costs. Prints a
table and one JSON line.

    .venv/bin/python bench/api_load.py [--rate 200] [--seconds 10] [--backend sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from marketplace_api.db import make_engine, migrate  # noqa: E402
from marketplace_api.models import (  # noqa: E402
    ChainEvent,
    Contribution,
    IndexerCursor,
    Job,
    Participant,
    RoundRecord,
)
from marketplace_api.testing import (  # noqa: E402
    free_port,
    postgres_reachable,
    postgres_schema,
    stop_process,
)

CONTRIBUTIONS = 10_000
JOBS = 200
NODES = 50
TOKEN = 10**18
TARGET_P99_MS = 50.0


def _h(i: int, tag: int) -> str:
    return "0x" + (tag.to_bytes(2, "big") + i.to_bytes(30, "big")).hex()


def _addr(i: int) -> str:
    from web3 import Web3

    return str(Web3.to_checksum_address("0x" + (i + 1).to_bytes(20, "big").hex()))


def fill(url: str) -> None:
    """Jobs (a quarter open), 10,000 settled contributions and their events, nodes."""
    engine = make_engine(url)
    rng = random.Random(7)
    slots_per_job = CONTRIBUTIONS // JOBS
    jobs, rounds, contributions, events, nodes = [], [], [], [], []
    for j in range(1, JOBS + 1):
        open_ = j > JOBS * 3 // 4
        jobs.append(
            dict(
                id=j,
                sponsor=_addr(1000 + j % 20),
                spec_digest=_h(j, 1),
                initial_model_digest=_h(j, 2),
                spec_cid=f"bafkreispec{j}",
                initial_model_cid=f"bafkreig0{j}",
                rounds=2,
                slots_per_round=slots_per_job // 2,
                num_segments=8,
                sample_count=2,
                reward_per_slot=TOKEN,
                verifier_fee=TOKEN // 10,
                claim_timeout=1000,
                escrow=(slots_per_job // 2) * (TOKEN + TOKEN // 10) if open_ else 0,
                status="open" if open_ else "completed",
                current_round=1 if open_ else 2,
                current_model_digest=_h(j, 3),
                created_block=j,
                created_tx=_h(j, 4),
            )
        )
        for r in range(1 if open_ else 2):
            rounds.append(
                dict(
                    job_id=j,
                    round=r,
                    model_digest=_h(j * 10 + r, 5),
                    model_cid=f"bafkreiround{j}-{r}",
                    validation_loss_micro=2_000_000 - 300_000 * r,
                    validation_loss=2.0 - 0.3 * r,
                    poster=_addr(0),
                    block_number=j + 1000 + r,
                    tx_hash=_h(j * 10 + r, 6),
                )
            )
    log_index = 0
    for c in range(1, CONTRIBUTIONS + 1):
        job_id = (c - 1) // slots_per_job + 1
        slot = (c - 1) % slots_per_job
        node = _addr(c % NODES)
        verifier = _addr(NODES + c % 5)
        block = 10_000 + c * 4
        seed = "0x" + rng.randbytes(32).hex()
        contributions.append(
            dict(
                id=c,
                job_id=job_id,
                round=slot // (slots_per_job // 2),
                slot=slot % (slots_per_job // 2),
                node=node,
                output_digest=_h(c, 7),
                trace_root=_h(c, 8),
                output_cid=f"bafkreiout{c}",
                manifest_cid=f"bafkreiman{c}",
                status="accepted",
                submit_block=block,
                submit_tx=_h(c, 9),
                seed=seed,
                seed_block=block + 1,
                verifier=verifier,
                seed_recorded_block=block + 1,
                seed_tx=_h(c, 10),
                verdict="pass",
                report_cid=f"bafkreireport{c}",
                attest_block=block + 2,
                attest_tx=_h(c, 11),
                node_reward=TOKEN,
                verifier_payment=TOKEN // 10,
                slashed=0,
                finalize_block=block + 3,
                finalize_tx=_h(c, 12),
            )
        )
        history: list[tuple[str, str, dict[str, Any]]] = [
            ("ContributionSubmitted", "JobMarket", {"contributionId": c, "jobId": job_id}),
            ("SeedRecorded", "Settlement", {"contributionId": c, "seed": seed}),
            ("Attested", "Settlement", {"contributionId": c, "pass": True}),
            ("ContributionFinalized", "Settlement", {"contributionId": c, "accepted": True}),
        ]
        for k, (name, contract, args) in enumerate(history):
            log_index += 1
            events.append(
                dict(
                    block_number=block + k,
                    block_hash=_h(block + k, 13),
                    tx_hash=_h(c * 4 + k, 14),
                    tx_index=0,
                    log_index=log_index,
                    contract=contract,
                    address=_addr(9000),
                    name=name,
                    args=args,
                    job_id=args.get("jobId"),
                    contribution_id=c,
                )
            )
    for n in range(NODES + 5):
        is_verifier = n >= NODES
        share = CONTRIBUTIONS // NODES
        nodes.append(
            dict(
                address=_addr(n),
                staked=200 * TOKEN,
                locked=0,
                unbonding=0,
                is_verifier=is_verifier,
                submitted=0 if is_verifier else share,
                accepted=0 if is_verifier else share,
                rejected=0,
                node_earnings=0 if is_verifier else share * TOKEN,
                slashed=0,
                slash_count=0,
                attestations=CONTRIBUTIONS // 5 if is_verifier else 0,
                failed_attestations=0,
                verifier_earnings=(CONTRIBUTIONS // 5) * TOKEN // 10 if is_verifier else 0,
                withdrawn=0,
                first_block=1,
                last_block=50_000,
            )
        )
    with engine.begin() as connection:
        for model, rows in (
            (Job, jobs),
            (RoundRecord, rounds),
            (Contribution, contributions),
            (ChainEvent, events),
            (Participant, nodes),
        ):
            for start in range(0, len(rows), 2000):
                connection.execute(insert(model), rows[start : start + 2000])
        connection.execute(
            insert(IndexerCursor),
            [dict(name="main", block_number=60_000, block_hash=_h(1, 15), final_block=0)],
        )
    with engine.connect() as connection:  # statistics, as autovacuum would have by now
        connection.execute(text("ANALYZE"))
        connection.commit()
    engine.dispose()


SERVER = """
import os
from marketplace_api.app import create_app
from marketplace_api.config import ApiConfig
from marketplace_api.db import make_engine, make_session_factory
from marketplace_api.middleware import RatePolicy


def app():
    off = RatePolicy(rate=0.0, burst=0)
    engine = make_engine(os.environ["BENCH_DATABASE_URL"])
    return create_app(session_factory=make_session_factory(engine), config=ApiConfig(reads=off))
"""


@contextmanager
def serve(url: str, workers: int) -> Iterator[tuple[str, int]]:
    """uvicorn in its own process(es) on a free port; yields the base URL and its pid."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="api-load-"))
    (folder / "bench_server.py").write_text(SERVER)
    env = {
        **os.environ,
        "PYTHONPATH": f"{folder}{os.pathsep}{REPO}",
        "BENCH_DATABASE_URL": url,
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "bench_server:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    # cwd: the folder, so `python -m uvicorn` (which puts cwd first on sys.path) imports the
    # code next to this script, not whatever tree the bench was started from
    process = subprocess.Popen(command, env=env, cwd=folder, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        time.sleep(1.0 if workers > 1 else 0.0)  # every worker up, not just the first
        yield base, process.pid
    finally:
        stop_process(process)


def server_cpu_seconds(pid: int) -> float:
    """CPU (user + system) used so far by the server process and its workers, from /proc: on
    a shared host a steadier measure than latency, which other tenants' load inflates."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
        for p in pids:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    except (OSError, ValueError):
        return float("nan")
    return total


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class _Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams: a load generator in Python
    must cost far less per request than the server it measures (httpx costs about as much)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _host_port(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


async def open_loop(base: str, paths: list[str], rate: float, seconds: float) -> dict[str, Any]:
    """``rate`` requests/s on a fixed schedule, served by a pool of connections; latency is
    counted from each request's scheduled time (a queue at the server shows up in it)."""
    host, port = _host_port(base)
    connections = [_Connection(host, port) for _ in range(64)]
    for c, path in zip(connections, paths * 64, strict=False):  # connect and warm up
        await c.get(path)
    queue: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def worker(connection: _Connection) -> None:
        nonlocal errors
        while (item := await queue.get()) is not None:
            path, due = item
            try:
                if await connection.get(path) != 200:
                    errors += 1
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                connection.writer = None
            latencies.append(time.perf_counter() - due)

    workers = [asyncio.create_task(worker(c)) for c in connections]
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((paths[i % len(paths)], due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    for c in connections:
        c.close()
    return {
        "requests": total,
        "achieved_rps": round(total / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * _percentile(latencies, 0.99), 2),
        "max_ms": round(1000 * max(latencies), 2),
        "errors": errors,
    }


async def closed_loop(base: str, paths: list[str], clients: int, seconds: float) -> float:
    """Requests/s with ``clients`` connections sending back to back: the most it serves."""
    host, port = _host_port(base)
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        connection = _Connection(host, port)
        i = offset
        while time.perf_counter() < stop:
            if await connection.get(paths[i % len(paths)]) != 200:
                raise RuntimeError(f"GET {paths[i % len(paths)]} failed")
            done += 1
            i += clients
        connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    return done / (time.perf_counter() - start)


@contextmanager
def database(backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
    else:
        with postgres_schema() as url:
            yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop duration")
    parser.add_argument("--clients", type=int, default=8, help="closed-loop concurrency")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    rng = random.Random(1)
    ids = list(range(1, CONTRIBUTIONS + 1))
    rng.shuffle(ids)
    # Every proof bundle request asks for a contribution not asked for before (no cache hit);
    # the bounty list is asked again and again (cached per index version, as in production),
    # and once more with a throwaway parameter that makes every request miss the cache.
    endpoints = {
        "bounty list": [f"/jobs?status=open&limit=20&offset={20 * k}" for k in range(3)],
        "bounty list*": [f"/jobs?status=open&limit=20&n={i}" for i in range(20_000)],
        "proof bundle": [f"/contributions/{i}" for i in ids],
        # keyset pages from anywhere in the 10,000 (each a different page: no cache hit)
        "contrib. page": [f"/contributions?limit=20&before={i + 1}" for i in ids],
    }
    results: list[dict[str, Any]] = []
    for backend in backends:
        if backend == "postgresql" and (reason := postgres_reachable()) is not None:
            print(f"skipping PostgreSQL: {reason}", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
            migrate(url)
            t0 = time.perf_counter()
            fill(url)
            fill_s = time.perf_counter() - t0
            with serve(url, args.workers) as (base, pid):
                for name, paths in endpoints.items():
                    used = int(args.rate * args.seconds) + 64
                    cpu = server_cpu_seconds(pid)
                    opened = asyncio.run(open_loop(base, paths, args.rate, args.seconds))
                    cpu = server_cpu_seconds(pid) - cpu
                    rest = paths[used:] if len(paths) > 2 * used else paths
                    peak = asyncio.run(closed_loop(base, rest, args.clients, 5.0))
                    results.append(
                        {
                            "backend": backend,
                            "endpoint": name,
                            "rate": args.rate,
                            "workers": args.workers,
                            **opened,
                            "max_rps": round(peak, 1),
                            "cpu_ms_per_req": round(1000 * cpu / opened["requests"], 3),
                            "fill_s": round(fill_s, 1),
                        }
                    )
    print(
        f"\nAPI load, {CONTRIBUTIONS:,} contributions indexed; open loop {args.rate:g} req/s "
        f"for {args.seconds:g} s, closed loop {args.clients} clients for 5 s; "
        f"target p99 <= {TARGET_P99_MS:g} ms"
    )
    header = f"{'backend':<11}{'endpoint':<14}{'achieved':>10}{'p50 ms':>10}{'p99 ms':>10}"
    print(header + f"{'max ms':>10}{'errors':>8}{'max req/s':>11}{'cpu ms/req':>12}  target")
    for r in results:
        ok = "met" if r["p99_ms"] <= TARGET_P99_MS and r["errors"] == 0 else "MISSED"
        print(
            f"{r['backend']:<11}{r['endpoint']:<14}{r['achieved_rps']:>10}{r['p50_ms']:>10}"
            f"{r['p99_ms']:>10}{r['max_ms']:>10}{r['errors']:>8}{r['max_rps']:>11}"
            f"{r['cpu_ms_per_req']:>12}  {ok}"
        )
    print(
        json.dumps(
            {
                "bench": "api_load",
                "contributions": CONTRIBUTIONS,
                "target_p99_ms": TARGET_P99_MS,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
