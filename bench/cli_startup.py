"""How long ``opentrain … --help`` takes, for every command (issue 15: under 0.5 s each).

    python bench/cli_startup.py [--repeat 3] [--limit 0.5]

Runs the ``opentrain`` script next to this interpreter (``python -m opentrain.cli.main`` when
there is none) as a fresh process per call, takes the median of ``--repeat`` runs per command,
and prints a JSON line and a table: wall seconds and CPU seconds (user + system; on a shared,
loaded machine the wall time grows with the load average, which the JSON line records, while
the CPU time stays what the command costs). Exits non-zero when any wall median is over
``--limit``.
Heavy modules (torch, web3, FastAPI, SQLAlchemy) are imported only inside the commands that
use them; the figure left is Python's start, Typer (which imports pydantic) and Rich.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def command_paths() -> list[list[str]]:
    """Every group and command of the CLI, as argument lists."""
    import typer

    from opentrain.cli.main import app

    paths: list[list[str]] = []

    def walk(cmd: Any, prefix: list[str]) -> None:  # a (Typer-vendored) click command
        paths.append(prefix)
        for name in sorted(getattr(cmd, "commands", {})):
            walk(cmd.commands[name], [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


def launcher() -> list[str]:
    script = Path(sys.executable).parent / "opentrain"
    return [str(script)] if script.exists() else [sys.executable, "-m", "opentrain.cli.main"]


def time_help(args: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user + system) of ``--help``. On a shared
    machine the wall time grows with the load; the CPU time is what the command costs."""
    runs, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        done = subprocess.run(
            [*launcher(), *args, "--help"], env=env, capture_output=True, text=True, timeout=60
        )
        runs.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"opentrain {' '.join(args)} --help failed: {done.stderr.strip()}")
    return statistics.median(runs), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=float, default=0.5)
    args = parser.parse_args()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    timed = {" ".join(p) or "(root)": time_help(p, args.repeat, env) for p in command_paths()}
    results = {name: wall for name, (wall, _) in timed.items()}
    cpu = {name: c for name, (_, c) in timed.items()}
    worst = max(results, key=results.__getitem__)
    print(
        json.dumps(
            {
                "bench": "cli_startup",
                "commands": len(results),
                "median_s": round(statistics.median(results.values()), 3),
                "max_s": round(results[worst], 3),
                "slowest": worst,
                "median_cpu_s": round(statistics.median(cpu.values()), 3),
                "max_cpu_s": round(max(cpu.values()), 3),
                "load_1min": round(os.getloadavg()[0], 2),
                "limit_s": args.limit,
                "ok": results[worst] < args.limit,
            }
        )
    )
    width = max(len(k) for k in results)
    print(f"{'opentrain … --help'.ljust(width)}  wall s   cpu s")
    for name, seconds in results.items():
        flag = "" if seconds < args.limit else "  OVER"
        print(f"{name.ljust(width)}  {seconds:6.3f}  {cpu[name]:6.3f}{flag}")
    if results[worst] >= args.limit:
        sys.exit(1)


if __name__ == "__main__":
    main()
