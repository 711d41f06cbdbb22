"""Embedded content store: kubo-identical CIDs, verified reads, atomic writes, size limit."""

from __future__ import annotations

import gc
import hashlib
import os
import random
import shutil
import subprocess
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar

import pytest
from multiformats import CID

from opentrain.content import builder, embedded, unixfs
from opentrain.content.builder import CHUNK_SIZE, compute_cid
from opentrain.content.embedded import EmbeddedStore
from opentrain.content.errors import ContentError

REPO = Path(__file__).resolve().parents[1]
NODE = REPO / "node_modules" / ".bin" / "node"
JS_SCRIPT = REPO / "tests" / "js" / "unixfs_cid.mjs"
HELLO_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
T = TypeVar("T")
MIB_CID = "bafybeiedpcapwld4tkgtzwahfofgn4wex5ryysf4se6hwpmlrsh4ntnrau"

HAVE_NODE = NODE.exists() and (REPO / "node_modules" / "ipfs-unixfs-importer").is_dir()
needs_node = pytest.mark.skipif(
    not HAVE_NODE,
    reason="node_modules (node + ipfs-unixfs-importer) absent: run `npm ci` to compare with JS",
)


def mib_pattern() -> bytes:
    return bytes(i % 251 for i in range(1 << 20))


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(scope="module")
def big() -> bytes:
    """45 MiB = 180 chunks (> 174: two-level tree); cheap: random prefix + period-251 pattern.

    The period is coprime with the chunk size, so no two chunks are equal.
    """
    size = 45 << 20
    prefix = random_bytes(4096, 7)
    return prefix + (bytes(range(251)) * (size // 251 + 1))[: size - len(prefix)]


@pytest.fixture()
def es(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


def js_cids(paths: list[Path], *options: str) -> list[str]:
    """Root CIDs the npm reference importer computes, one per path."""
    out = subprocess.run(
        [str(NODE), str(JS_SCRIPT), *options, *map(str, paths)],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout.split()


def streamed(action: Callable[[], T]) -> T:
    """Run action and check that it never held more than a few chunks in memory.

    The garbage collector is off meanwhile, so chunks pinned by reference cycles count too.
    """
    gc.disable()
    tracemalloc.start()
    try:
        result = action()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gc.enable()
    assert peak < 5 * CHUNK_SIZE, f"peak {peak} bytes: content is not streamed"
    return result


def block_files(es: EmbeddedStore) -> list[Path]:
    return [p for p in (es.root / "blocks").rglob("*") if p.is_file()]


def leftovers(es: EmbeddedStore) -> list[Path]:
    tmp = es.root / "tmp"
    return list(tmp.rglob("*")) if tmp.exists() else []


# -- known CIDs and the reference importer --------------------------------------------


def test_known_cids(es: EmbeddedStore) -> None:
    assert compute_cid(b"hello world\n") == HELLO_CID
    assert es.put_bytes(b"hello world\n") == HELLO_CID
    assert compute_cid(mib_pattern()) == MIB_CID
    assert es.put_bytes(mib_pattern()) == MIB_CID


SIZES = [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 1 << 20, 3 * CHUNK_SIZE - 17]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(es: EmbeddedStore, size: int) -> None:
    data = random_bytes(size, size)
    cid = es.put_bytes(data)
    assert cid == compute_cid(data)
    assert es.has(cid)
    assert es.get_bytes(cid, expected_sha256=hashlib.sha256(data).digest()) == data
    assert CID.decode(cid).codec.name == ("raw" if size <= CHUNK_SIZE else "dag-pb")


def test_big_file_two_level_tree(es: EmbeddedStore, big: bytes, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(big)
    cid = streamed(lambda: es.put_file(src))
    assert cid == compute_cid(big)
    assert len(block_files(es)) == 180 + 2 + 1  # leaves, two level-1 nodes, the root
    pieces = list(es.iter_content(cid))
    assert len(pieces) == 180 and all(len(p) <= CHUNK_SIZE for p in pieces)
    out = tmp_path / "out.bin"
    streamed(lambda: es.get_to_file(cid, out, expected_sha256=hashlib.sha256(big).digest()))
    assert out.read_bytes() == big
    if HAVE_NODE:  # the one (slow-ish) JS comparison of the 45 MiB file
        assert js_cids([src]) == [cid]


@needs_node
def test_cids_match_js_importer(tmp_path: Path) -> None:
    datas = [random_bytes(size, size) for size in SIZES] + [b"hello world\n", mib_pattern()]
    paths = []
    for i, data in enumerate(datas):
        paths.append(tmp_path / f"f{i}")
        paths[-1].write_bytes(data)
    assert js_cids(paths) == [compute_cid(d) for d in datas]


@needs_node
def test_deep_tree_shapes_match_js_importer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every tree shape up to four levels, with tiny chunks and fan-out 3 to keep it fast."""
    monkeypatch.setattr(builder, "CHUNK_SIZE", 4)
    monkeypatch.setattr(builder, "MAX_LINKS", 3)
    datas = [random_bytes(size, size) for size in range(0, 4 * 3**3 + 9)]
    paths = []
    for i, data in enumerate(datas):
        paths.append(tmp_path / f"f{i}")
        paths[-1].write_bytes(data)
    expected = js_cids(paths, "--chunk-size", "4", "--max-children", "3")
    assert [compute_cid(d) for d in datas] == expected
    es = EmbeddedStore(tmp_path / "store")
    for size in [0, 4, 5, 12, 13, 36, 37, 108, 109, len(datas) - 1]:  # level boundaries
        assert es.put_bytes(datas[size]) == expected[size]
        assert es.get_bytes(expected[size]) == datas[size]


# -- puts ----------------------------------------------------------------------------


def test_put_is_idempotent(es: EmbeddedStore, tmp_path: Path) -> None:
    data = random_bytes(2 * CHUNK_SIZE + 5, 1)
    cid = es.put_bytes(data)
    before = sorted(block_files(es))
    src = tmp_path / "same.bin"
    src.write_bytes(data)
    assert es.put_file(src) == cid
    assert es.put_bytes(data) == cid
    assert sorted(block_files(es)) == before and len(before) == 4
    assert leftovers(es) == []


def test_size_limit(tmp_path: Path) -> None:
    es = EmbeddedStore(tmp_path / "store", max_bytes=CHUNK_SIZE + 10)
    ok = random_bytes(CHUNK_SIZE + 10, 2)
    too_big = random_bytes(3 * CHUNK_SIZE, 3)
    src = tmp_path / "big.bin"
    src.write_bytes(too_big)
    with pytest.raises(ContentError, match="size limit"):
        es.put_bytes(too_big)
    with pytest.raises(ContentError, match="size limit"):
        es.put_file(src)
    assert block_files(es) == [] and leftovers(es) == []
    assert es.get_bytes(es.put_bytes(ok)) == ok
    big_cid = EmbeddedStore(tmp_path / "other").put_bytes(too_big)
    shutil.copytree(tmp_path / "other" / "blocks", es.root / "blocks", dirs_exist_ok=True)
    with pytest.raises(ContentError, match="size limit"):
        es.get_bytes(big_cid)


def test_size_limit_mid_stream_writes_nothing(tmp_path: Path) -> None:
    """A file that grows past the limit after the size check still leaves nothing behind."""
    es = EmbeddedStore(tmp_path / "store", max_bytes=2 * CHUNK_SIZE)
    src = tmp_path / "grows.bin"
    src.write_bytes(random_bytes(3 * CHUNK_SIZE, 4))
    real_stat = os.stat

    def stat_before_growth(path: Path, *args: object, **kwargs: object) -> object:
        return SimpleNamespace(st_size=1) if Path(path) == src else real_stat(path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "stat", stat_before_growth)
        with pytest.raises(ContentError, match="size limit"):
            es.put_file(src)
    assert block_files(es) == [] and leftovers(es) == []


# -- verified reads --------------------------------------------------------------------


def test_corrupted_block_raises(es: EmbeddedStore, tmp_path: Path) -> None:
    data = random_bytes(2 * CHUNK_SIZE + 1, 5)
    cid = es.put_bytes(data)
    leaf = compute_cid(data[CHUNK_SIZE : 2 * CHUNK_SIZE])
    path = es.block_path(leaf)
    block = bytearray(path.read_bytes())
    block[100] ^= 1
    path.write_bytes(bytes(block))
    with pytest.raises(ContentError, match="content mismatch"):
        es.get_bytes(cid)
    pieces = es.iter_content(cid)
    assert next(pieces) == data[:CHUNK_SIZE]
    with pytest.raises(ContentError, match="content mismatch"):
        next(pieces)
    with pytest.raises(ContentError, match="content mismatch"):
        es.get_to_file(cid, tmp_path / "out.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_corrupted_root_node_raises(es: EmbeddedStore) -> None:
    cid = es.put_bytes(random_bytes(CHUNK_SIZE + 1, 6))
    es.block_path(cid).write_bytes(b"\x12\x03abc")
    with pytest.raises(ContentError, match="content mismatch"):
        es.get_bytes(cid)
    assert not es.has(cid)


def test_missing_block_raises(es: EmbeddedStore) -> None:
    data = random_bytes(2 * CHUNK_SIZE, 8)
    cid = es.put_bytes(data)
    es.block_path(compute_cid(data[:CHUNK_SIZE])).unlink()
    assert not es.has(cid)
    with pytest.raises(ContentError, match="missing block"):
        es.get_bytes(cid)
    assert not es.has(HELLO_CID)
    with pytest.raises(ContentError, match="missing block"):
        es.get_bytes(HELLO_CID)


def test_expected_sha256_mismatch(es: EmbeddedStore, tmp_path: Path) -> None:
    data = random_bytes(CHUNK_SIZE + 3, 9)
    cid = es.put_bytes(data)
    wrong = hashlib.sha256(b"something else").digest()
    with pytest.raises(ContentError, match="content mismatch"):
        es.get_bytes(cid, expected_sha256=wrong)
    out = tmp_path / "out.bin"
    out.write_bytes(b"previous")
    with pytest.raises(ContentError, match="content mismatch"):
        es.get_to_file(cid, out, expected_sha256=wrong)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "store"]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not a cid",
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei!",
        "bafkreifjjcie6lypi6ny7amx",
        # well-formed CIDs, but dag-cbor / identity hash: nothing this store can verify
        str(CID("base32", 1, "dag-cbor", ("sha2-256", hashlib.sha256(b"x").digest()))),
        str(CID("base32", 1, "raw", ("identity", b"hello"))),
    ],
)
def test_malformed_cid_raises(es: EmbeddedStore, tmp_path: Path, bad: str) -> None:
    with pytest.raises(ContentError, match="bad CID string"):
        es.get_bytes(bad)
    with pytest.raises(ContentError, match="bad CID string"):
        es.iter_content(bad)
    with pytest.raises(ContentError, match="bad CID string"):
        es.has(bad)
    with pytest.raises(ContentError, match="bad CID string"):
        es.get_to_file(bad, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


def test_cidv0_string_reads_same_content(es: EmbeddedStore) -> None:
    data = random_bytes(CHUNK_SIZE + 1, 10)
    cid = CID.decode(es.put_bytes(data))
    v0 = str(cid.set(version=0, base="base58btc"))
    assert v0.startswith("Qm")
    assert es.get_bytes(v0) == data


def test_repeated_chunks_stored_once(es: EmbeddedStore) -> None:
    cid = es.put_bytes(bytes(3 * CHUNK_SIZE))
    assert len(block_files(es)) == 2  # one zero chunk, one parent
    assert es.get_bytes(cid) == bytes(3 * CHUNK_SIZE)


def put_block(es: EmbeddedStore, codec: int, block: bytes) -> str:
    """Store a hand-made block under its true CID (what a foreign writer could leave)."""
    cid = unixfs.BlockCid.of(codec, block).text
    es.block_path(cid).parent.mkdir(parents=True, exist_ok=True)
    es.block_path(cid).write_bytes(block)
    return cid


def test_reads_kubo_nodes_with_inline_data(es: EmbeddedStore) -> None:
    """Without --raw-leaves kubo puts content inside UnixFS Data; reads must follow it too."""
    leaf = put_block(es, unixfs.DAG_PB, b"\x0a\x09\x08\x02\x12\x03abc\x18\x03")
    link = b"\x0a\x24" + bytes(CID.decode(leaf)) + b"\x12\x00\x18\x0d"
    root = put_block(es, unixfs.DAG_PB, b"\x12\x2a" + link + b"\x0a\x06\x08\x02\x18\x03\x20\x03")
    assert es.get_bytes(root) == b"abc"
    assert es.has(root)


@pytest.mark.parametrize(
    "block",
    [b"\x12\x03abc", b"\x0a\x02\x08\x01", b"\x0a\x05\x08", b"\x0b", b"\x12\x02\x12\x00"],
    ids=["no-data", "directory", "truncated", "bad-wire-type", "link-without-hash"],
)
def test_malformed_node_raises(es: EmbeddedStore, block: bytes) -> None:
    cid = put_block(es, unixfs.DAG_PB, block)
    with pytest.raises(ContentError, match="malformed dag-pb block"):
        es.get_bytes(cid)
    assert not es.has(cid)


# -- pins, the staging writer, settings ---------------------------------------------------


def test_put_pins_and_pin_needs_the_whole_dag(es: EmbeddedStore) -> None:
    data = random_bytes(2 * CHUNK_SIZE, 11)
    cid = es.put_bytes(data)
    assert es.pins() == [cid]
    es.unpin(cid)
    assert es.pins() == []
    with pytest.raises(ContentError, match="not pinned"):
        es.unpin(cid)
    es.block_path(compute_cid(data[CHUNK_SIZE:])).unlink()
    with pytest.raises(ContentError, match="missing block"):
        es.pin(cid)
    assert es.pins() == []
    with pytest.raises(ContentError, match="bad CID string"):
        es.pin("nope")


def test_writer_thread_failure_writes_nothing(
    es: EmbeddedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error in the helper thread surfaces from the put; nothing is published."""
    calls = []

    def failing_write(path: str, block: bytes) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        with open(path, "xb") as out:
            out.write(block)

    monkeypatch.setattr(embedded, "_write_new", failing_write)
    with pytest.raises(OSError, match="No space left"):
        es.put_bytes(random_bytes(4 * CHUNK_SIZE, 12))
    assert block_files(es) == [] and leftovers(es) == [] and es.pins() == []


def test_sha256_checked_stream_withholds_the_last_piece(es: EmbeddedStore) -> None:
    data = random_bytes(3 * CHUNK_SIZE, 13)
    cid = es.put_bytes(data)
    pieces = es.iter_content(cid, expected_sha256=hashlib.sha256(b"other").digest())
    received = [next(pieces), next(pieces)]
    with pytest.raises(ContentError, match="content mismatch"):
        next(pieces)
    assert b"".join(received) == data[: 2 * CHUNK_SIZE]
    good = es.iter_content(cid, expected_sha256=hashlib.sha256(data).digest())
    assert b"".join(good) == data


def test_open_store_is_embedded(tmp_path: Path) -> None:
    opened = embedded.open_store(tmp_path / "s", max_bytes=5)
    assert isinstance(opened, EmbeddedStore) and opened.max_bytes == 5
