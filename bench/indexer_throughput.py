"""Indexer throughput in events/s, on SQLite and PostgreSQL.

The chain is synthetic so the figure is the indexer's, not a node's: a JSON-RPC provider
answers eth_blockNumber, eth_getBlockByNumber and eth_getLogs from logs ABI-encoded with the
contracts' real event ABIs (so decoding is the real work), one block per contribution, eight
events each (claim, lock, submit, seed, attest, settle, unlock, finalize) plus jobs and stakes.
Two runs per backend: a backfill far below the head (no undo journal, one header per batch)
and indexing inside the reorg window (every header read and linked, every change journaled).
Prints a table and one JSON line.

    .venv/bin/python bench/indexer_throughput.py [--contributions 1000] [--backend sqlite]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import event_abi_to_log_topic, keccak, to_checksum_address
from eth_utils.abi import collapse_if_tuple
from web3 import Web3
from web3.providers.base import BaseProvider

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from marketplace_api.db import make_engine, make_session_factory, migrate  # noqa: E402
from marketplace_api.indexer import Indexer  # noqa: E402
from marketplace_api.testing import postgres_reachable, postgres_schema  # noqa: E402
from opentrain.chain.abi import artifact  # noqa: E402
from opentrain.chain.client import Deployment  # noqa: E402
from opentrain.chain.types import CONTRACT_NAMES  # noqa: E402

SLOTS = 10  # contributions per job
NODES = 20


def _address(i: int) -> str:
    return str(to_checksum_address(i.to_bytes(20, "big")))


def _block_hash(n: int) -> bytes:
    return keccak(b"block" + n.to_bytes(8, "big"))


class _Encoder:
    """Builds raw logs for any event of the ABIs from a context of the usual argument names."""

    def __init__(self, deployment: Deployment) -> None:
        self.events: dict[str, tuple[str, dict[str, Any]]] = {}
        for name in CONTRACT_NAMES:
            for item in artifact(name)["abi"]:
                if item["type"] == "event":
                    self.events.setdefault(item["name"], (getattr(deployment, name), item))

    def _value(self, spec: dict[str, Any], ctx: dict[str, Any]) -> Any:
        name, kind = spec["name"], spec["type"]
        if kind == "tuple":
            return tuple(self._value(c, ctx) for c in spec["components"])
        if name in ctx:
            return ctx[name]
        if kind.startswith("uint") or kind.startswith("int"):
            return 1
        if kind == "bool":
            return True
        if kind == "address":
            return ctx["node"]
        if kind == "bytes32":
            return keccak(name.encode())
        if kind == "string":
            return f"bafkrei{name.lower()}"
        raise ValueError(f"no value for {name}: {kind}")

    def log(self, event: str, ctx: dict[str, Any]) -> dict[str, Any] | None:
        if event not in self.events:
            return None  # the contracts no longer emit it
        address, abi = self.events[event]
        topics = ["0x" + event_abi_to_log_topic(abi).hex()]  # type: ignore[arg-type]
        data_types, data_values = [], []
        for spec in abi["inputs"]:
            value = self._value(spec, ctx)
            kind = collapse_if_tuple(spec)
            if spec.get("indexed"):
                topics.append("0x" + abi_encode([kind], [value]).hex())
            else:
                data_types.append(kind)
                data_values.append(value)
        return {"address": address, "topics": topics, "data": abi_encode(data_types, data_values)}


class SyntheticChain(BaseProvider):
    """Just enough JSON-RPC for the indexer, served from memory."""

    def __init__(self, deployment: Deployment, contributions: int) -> None:
        super().__init__()
        encoder = _Encoder(deployment)
        self.blocks: list[list[dict[str, Any]]] = [[] for _ in range(deployment.block + 1)]
        big = 10**30

        def emit(*items: tuple[str, dict[str, Any]]) -> None:
            self.blocks.append([log for e, c in items if (log := encoder.log(e, c)) is not None])

        nodes = [_address(100 + i) for i in range(NODES)]
        verifier = _address(99)
        for node in [*nodes, verifier]:
            emit(("Staked", {"account": node, "node": node, "amount": big, "total": big}))
        emit(("VerifierRegistered", {"verifier": verifier, "node": verifier}))
        for c in range(1, contributions + 1):
            job_id, slot = (c - 1) // SLOTS + 1, (c - 1) % SLOTS
            node = nodes[c % NODES]
            ctx = {
                "jobId": job_id,
                "contributionId": c,
                "round": 0,
                "slot": slot,
                "node": node,
                "account": node,
                "sponsor": _address(7),
                "verifier": verifier,
                "escrow": big,
                "rounds": 1,
                "slotsPerRound": SLOTS,
                "numSegments": 8,
                "sampleCount": 2,
                "accepted": True,
                "pass": True,
                "total": big,
                "totalLocked": 0,
                "amount": 1,
                "reward": 1,
                "fee": 1,
                "nodeReward": 1,
                "verifierPayment": 1,
                "slashed": 0,
                "validationLossMicro": 1_000_000,
                "deadline": 10**9,
                "seedBlock": len(self.blocks),
            }
            if slot == 0:
                emit(("JobCreated", ctx))
            emit(
                ("SlotClaimed", ctx),
                ("StakeLocked", ctx),
                ("ContributionSubmitted", ctx),
                ("SeedRecorded", ctx),
                ("Attested", ctx),
                ("ContributionSettled", ctx),
                ("StakeUnlocked", ctx),
                ("ContributionFinalized", ctx),
            )
        self.events = sum(len(b) for b in self.blocks)

    def extend(self, empty_blocks: int) -> None:
        self.blocks.extend([] for _ in range(empty_blocks))

    def _block(self, n: int) -> dict[str, Any]:
        return {
            "number": hex(n),
            "hash": "0x" + _block_hash(n).hex(),
            "parentHash": "0x" + (_block_hash(n - 1) if n else bytes(32)).hex(),
            "timestamp": hex(n),
            "transactions": [],
        }

    def _logs(self, first: int, last: int) -> list[dict[str, Any]]:
        out = []
        for n in range(first, min(last, len(self.blocks) - 1) + 1):
            for i, log in enumerate(self.blocks[n]):
                out.append(
                    {
                        "address": log["address"],
                        "topics": log["topics"],
                        "data": "0x" + log["data"].hex(),
                        "blockNumber": hex(n),
                        "blockHash": "0x" + _block_hash(n).hex(),
                        "transactionHash": "0x" + keccak(b"tx%d-%d" % (n, i)).hex(),
                        "transactionIndex": hex(i),
                        "logIndex": hex(i),
                        "removed": False,
                    }
                )
        return out

    def make_request(self, method: Any, params: Any) -> Any:
        if method == "eth_blockNumber":
            result: Any = hex(len(self.blocks) - 1)
        elif method == "eth_chainId":
            result = hex(31337)
        elif method == "eth_getBlockByNumber":
            result = self._block(int(params[0], 16))
        elif method == "eth_getLogs":
            query = params[0]
            result = self._logs(int(query["fromBlock"], 16), int(query["toBlock"], 16))
        else:
            raise NotImplementedError(method)
        return {"jsonrpc": "2.0", "id": 1, "result": result}

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True


@contextmanager
def database(backend: str, folder: Path, name: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / name}"
    else:
        with postgres_schema() as url:
            yield url


def run(backend: str, contributions: int, near_head: bool) -> dict[str, Any]:
    deployment = Deployment(
        chain_id=31337,
        block=1,
        **{name: _address(1000 + i) for i, name in enumerate(CONTRACT_NAMES)},  # type: ignore[arg-type]
    )
    chain = SyntheticChain(deployment, contributions)
    last_event_block = len(chain.blocks) - 1
    if not near_head:
        chain.extend(10_000)  # the events lie far below the head: a backfill
    window = len(chain.blocks) + 10 if near_head else 128
    w3 = Web3(chain)
    with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp), "i.db") as url:
        migrate(url)
        factory = make_session_factory(make_engine(url))
        indexer = Indexer(w3, deployment, factory, batch_size=500, reorg_window=window)
        start = time.perf_counter()
        stored = indexer.sync(to_block=last_event_block)
        seconds = time.perf_counter() - start
        factory.kw["bind"].dispose()
    assert stored == chain.events, (stored, chain.events)
    return {
        "backend": backend,
        "mode": "in window (journal)" if near_head else "backfill",
        "events": stored,
        "seconds": round(seconds, 2),
        "events_per_s": round(stored / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contributions", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        if backend == "postgresql" and (reason := postgres_reachable()) is not None:
            print(f"skipping PostgreSQL: {reason}", file=sys.stderr)
            continue
        for near_head in (False, True):
            results.append(run(backend, args.contributions, near_head))
    print(f"\nIndexer throughput, {args.contributions:,} contributions (synthetic chain)")
    print(f"{'backend':<11}{'mode':<22}{'events':>8}{'seconds':>9}{'events/s':>10}")
    for r in results:
        print(
            f"{r['backend']:<11}{r['mode']:<22}{r['events']:>8}{r['seconds']:>9}"
            f"{r['events_per_s']:>10}"
        )
    print(json.dumps({"bench": "indexer_throughput", "results": results}))


if __name__ == "__main__":
    main()
