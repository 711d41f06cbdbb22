"""CAR files, the trustless gateway (server and client), the `store` CLI, and the checks
against code we did not write: npm ipfs-car (pack/unpack) and @helia/verified-fetch.

The JS checks run Node 22 from node_modules/.bin/node on packages found in the repo's
node_modules or, until they are devDependencies, in the node_modules folder named by
OPENTRAIN_JS_MODULES; each is skipped with the reason when its packages are missing.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from opentrain.cli.store import store_app
from opentrain.content import builder as builder_module
from opentrain.content.builder import CHUNK_SIZE, compute_cid
from opentrain.content.car import (
    MAX_BLOCK,
    CarError,
    CarReader,
    car_chunks,
    check_car,
    encode_header,
    export_car,
    file_chunks,
    import_car,
)
from opentrain.content.embedded import EmbeddedStore
from opentrain.content.errors import ContentError, RemoteError
from opentrain.content.gateway_client import GatewayClient
from opentrain.content.gateway_server import create_gateway_app
from opentrain.content.unixfs import DAG_PB, RAW, BlockCid, parse_cid

REPO = Path(__file__).resolve().parents[1]
NODE = REPO / "node_modules" / ".bin" / "node"
JS = REPO / "tests" / "js"
JS_ROOTS = [Path(p) for p in (os.environ.get("OPENTRAIN_JS_MODULES"), REPO / "node_modules") if p]
HELLO_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"


def data_of(size: int, seed: int) -> bytes:
    return random.Random(f"{size}/{seed}").randbytes(size)


def block_files(es: EmbeddedStore) -> list[Path]:
    return [p for p in (es.root / "blocks").rglob("*") if p.is_file()]


def nothing_written(es: EmbeddedStore) -> bool:
    tmp = es.root / "tmp"
    return (
        block_files(es) == [] and es.pins() == [] and (not tmp.exists() or not any(tmp.iterdir()))
    )


def car_of(es: EmbeddedStore, cid: str, dups: bool = False) -> bytes:
    return b"".join(export_car(es, cid, dups))


def sections(car: bytes) -> list[tuple[BlockCid, bytes]]:
    return list(CarReader([car]))


@pytest.fixture()
def es(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


@pytest.fixture()
def fresh(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "fresh")


# ---------------------------------------------------------------------------
# CAR export and import


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 7])
def test_car_round_trip(es: EmbeddedStore, fresh: EmbeddedStore, size: int) -> None:
    data = data_of(size, 1)
    cid = es.put_bytes(data)
    car = car_of(es, cid)
    assert CarReader([car]).roots == [parse_cid(cid)]
    assert [c for c, _ in sections(car)] == [c for c, _ in es.iter_dag(cid)]
    assert check_car([car]) == [cid]
    assert import_car(fresh, [car]) == [cid]
    assert fresh.get_bytes(cid) == data and fresh.pins() == [cid]
    assert import_car(fresh, [car]) == [cid]  # idempotent


def test_car_header_is_canonical_dag_cbor() -> None:
    root = parse_cid(HELLO_CID)
    header = encode_header([root.wire])
    body = b"\xa2eroots\x81\xd8\x2aX\x25\x00" + root.binary + b"gversion\x01"
    assert header == bytes([len(body)]) + body


def test_car_dups_and_order(es: EmbeddedStore, fresh: EmbeddedStore) -> None:
    data = bytes(3 * CHUNK_SIZE) + b"tail"
    cid = es.put_bytes(data)
    assert len(sections(car_of(es, cid))) == 3  # root, zero chunk once, tail
    with_dups = car_of(es, cid, dups=True)
    assert len(sections(with_dups)) == 5
    assert import_car(fresh, [with_dups]) == [cid]  # repeated sections are fine
    assert fresh.get_bytes(cid) == data


def carv2(v1: bytes, padding: int = 5) -> bytes:
    """Wrap a CARv1 as a CARv2 (pragma, 40-byte header, padding, data, a fake index)."""
    pragma = bytes.fromhex("0aa16776657273696f6e02")
    offset = len(pragma) + 40 + padding
    header = bytes(16) + struct.pack("<QQQ", offset, len(v1), offset + len(v1))
    return pragma + header + bytes(padding) + v1 + b"index bytes that are ignored"


def test_carv2_import(es: EmbeddedStore, fresh: EmbeddedStore) -> None:
    data = data_of(2 * CHUNK_SIZE + 3, 2)
    cid = es.put_bytes(data)
    assert import_car(fresh, [carv2(car_of(es, cid))]) == [cid]
    assert fresh.get_bytes(cid) == data


def test_car_streamed_import_from_file(
    es: EmbeddedStore, fresh: EmbeddedStore, tmp_path: Path
) -> None:
    data = data_of(5 * CHUNK_SIZE, 3)
    cid = es.put_bytes(data)
    path = tmp_path / "x.car"
    path.write_bytes(car_of(es, cid))
    with open(path, "rb") as stream:
        assert import_car(fresh, file_chunks(stream, size=1000)) == [cid]  # odd chunk size
    assert fresh.get_bytes(cid) == data


def _section(cid: BlockCid, block: bytes) -> bytes:
    return b"".join(car_chunks([], [(cid, block)]))[len(encode_header([])) :]


def _bad_cars(es: EmbeddedStore) -> dict[str, tuple[bytes, str]]:
    data = data_of(3 * CHUNK_SIZE, 4)
    cid = es.put_bytes(data)
    root = parse_cid(cid)
    blocks = list(es.iter_dag(cid))
    header = encode_header([root.wire])
    body = [_section(c, b) for c, b in blocks]
    stranger = _section(BlockCid.of(RAW, b"stranger"), b"stranger")
    tampered = blocks[2][1][:-1] + bytes([blocks[2][1][-1] ^ 1])
    cbor_cid = BlockCid.of(0x71, b"\xa0")  # dag-cbor: not a block this store verifies
    cbor = b"\x01\x71" + cbor_cid.binary[2:]
    whole = header + b"".join(body)
    return {
        "missing-leaf": (header + b"".join(body[:2] + body[3:]), "missing block"),
        "missing-root": (header + b"".join(body[1:]), "missing block .* \\(a root\\)"),
        "extra-block": (whole + stranger, "not reachable from its roots"),
        "tampered": (
            header + b"".join(body[:2]) + _section(blocks[2][0], tampered),
            "content mismatch",
        ),
        "truncated": (whole[:-100], "truncated CAR"),
        "empty": (b"", "it is empty"),
        "not-a-car": (b"\x05hello world", "not a CAR file"),
        "no-roots": (encode_header([]) + b"".join(body), "names no root"),
        "version-3": (b"\x0a\xa1gversion\x03", "unsupported CAR version 3"),
        "dag-cbor-block": (whole + bytes([len(cbor) + 1]) + cbor + b"\xa0", "cannot verify"),
        "huge-section": (header + b"\xff\xff\xff\xff\x0f", f"over the {MAX_BLOCK}-byte limit"),
        "carv2-truncated": (carv2(whole)[:80], "truncated CAR"),
    }


BAD_KINDS = [
    "missing-leaf",
    "missing-root",
    "extra-block",
    "tampered",
    "truncated",
    "empty",
    "not-a-car",
    "no-roots",
    "version-3",
    "dag-cbor-block",
    "huge-section",
    "carv2-truncated",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_car_writes_nothing(es: EmbeddedStore, fresh: EmbeddedStore, kind: str) -> None:
    car, message = _bad_cars(es)[kind]
    with pytest.raises(CarError, match=message):
        import_car(fresh, [car])
    assert nothing_written(fresh)
    with pytest.raises(CarError, match=message):
        check_car([car])


def test_car_import_size_limit(es: EmbeddedStore, tmp_path: Path) -> None:
    cid = es.put_bytes(data_of(3 * CHUNK_SIZE, 5))
    small = EmbeddedStore(tmp_path / "small", max_bytes=2 * CHUNK_SIZE)
    with pytest.raises(ContentError, match="size limit"):
        import_car(small, [car_of(es, cid)])
    assert nothing_written(small)


def test_directory_car_imports_but_is_not_a_file(es: EmbeddedStore, fresh: EmbeddedStore) -> None:
    """A wrapped CAR (a UnixFS directory) moves intact; reading it as a file is a clear error."""
    leaf = BlockCid.of(RAW, b"abc")
    link = b"\x0a\x24" + leaf.binary + b"\x12\x05a.txt\x18\x03"
    directory = b"\x12" + bytes([len(link)]) + link + b"\x0a\x02\x08\x01"
    root = BlockCid.of(DAG_PB, directory)
    car = b"".join(car_chunks([root], [(root, directory), (leaf, b"abc")]))
    assert import_car(fresh, [car]) == [root.text]
    assert fresh.has_dag(root) and fresh.pins() == [root.text]
    with pytest.raises(ContentError, match="UnixFS type 1 is not a file"):
        fresh.get_bytes(root.text)
    assert sections(car_of(fresh, root.text)) == sections(car)


# ---------------------------------------------------------------------------
# the gateway server


@pytest.fixture()
def gw(es: EmbeddedStore) -> TestClient:
    return TestClient(create_gateway_app(es))


def test_gateway_raw(es: EmbeddedStore, gw: TestClient) -> None:
    data = data_of(2 * CHUNK_SIZE, 6)
    cid = es.put_bytes(data)
    for response in (
        gw.get(f"/ipfs/{cid}?format=raw"),
        gw.get(f"/ipfs/{cid}", headers={"Accept": RAW_TYPE}),
        gw.get(f"/ipfs/{cid}?format=raw", headers={"Accept": CAR_TYPE}),  # format wins
        gw.get(f"/ipfs/{cid}", headers={"Accept": f"{CAR_TYPE};q=0.5, {RAW_TYPE}"}),
    ):
        assert response.status_code == 200
        assert response.content == es.get_block(cid)
        assert response.headers["content-type"] == RAW_TYPE
        assert response.headers["etag"] == f'"{cid}.raw"'
        assert response.headers["content-disposition"] == f'attachment; filename="{cid}.bin"'
        assert "immutable" in response.headers["cache-control"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert int(response.headers["content-length"]) == len(response.content)
    assert "content-location" not in gw.get(f"/ipfs/{cid}?format=raw").headers
    accept_only = gw.get(f"/ipfs/{cid}", headers={"Accept": RAW_TYPE})
    assert accept_only.headers["content-location"] == f"/ipfs/{cid}?format=raw"


def test_gateway_car(es: EmbeddedStore, gw: TestClient) -> None:
    data = bytes(2 * CHUNK_SIZE) + data_of(10, 7)
    cid = es.put_bytes(data)
    response = gw.get(f"/ipfs/{cid}?format=car")
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{CAR_TYPE}; version=1; order=dfs; dups=n"
    assert response.headers["content-disposition"] == f'attachment; filename="{cid}.car"'
    assert response.headers["etag"].startswith(f'W/"{cid}.car.')
    assert response.content == car_of(es, cid)
    dups = gw.get(f"/ipfs/{cid}", headers={"Accept": f"{CAR_TYPE}; version=1; order=dfs; dups=y"})
    assert dups.headers["content-type"].endswith("dups=y")
    assert response.headers["etag"] != dups.headers["etag"]
    assert len(sections(dups.content)) == 4
    assert len(sections(gw.get(f"/ipfs/{cid}?format=car&car-dups=y").content)) == 4
    block = gw.get(f"/ipfs/{cid}?format=car&dag-scope=block")
    assert [c.text for c, _ in sections(block.content)] == [cid]
    entity = gw.get(f"/ipfs/{cid}?format=car&dag-scope=entity")
    assert entity.content == response.content  # a file's entity is all of it


def test_gateway_conditional_and_head(es: EmbeddedStore, gw: TestClient) -> None:
    cid = es.put_bytes(b"hello world\n")
    etag = gw.get(f"/ipfs/{cid}?format=raw").headers["etag"]
    assert gw.get(f"/ipfs/{cid}?format=raw", headers={"If-None-Match": etag}).status_code == 304
    head = gw.head(f"/ipfs/{cid}?format=raw")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "12"
    assert gw.head(f"/ipfs/{cid}?format=car").status_code == 200
    assert gw.head(f"/ipfs/{compute_cid(b'nope')}?format=raw").status_code == 404


def test_gateway_not_found(es: EmbeddedStore, gw: TestClient) -> None:
    assert gw.get(f"/ipfs/{compute_cid(b'nope')}?format=raw").status_code == 404
    data = data_of(2 * CHUNK_SIZE, 8)
    cid = es.put_bytes(data)
    es.block_path(compute_cid(data[:CHUNK_SIZE])).unlink()
    assert gw.get(f"/ipfs/{cid}?format=raw").status_code == 200  # the root block is here
    missing_child = gw.get(f"/ipfs/{cid}?format=car")
    assert missing_child.status_code == 404 and "some blocks" in missing_child.text


@pytest.mark.parametrize(
    ("url", "headers", "status", "text"),
    [
        ("/ipfs/not-a-cid?format=raw", {}, 400, "bad CID string"),
        (f"/ipfs/{HELLO_CID}", {"Accept": ""}, 400, "ask for ?format=raw|car"),
        (f"/ipfs/{HELLO_CID}", {"Accept": "*/*"}, 400, "ask for ?format=raw|car"),
        (f"/ipfs/{HELLO_CID}", {"Accept": "text/html"}, 406, "not acceptable"),
        (f"/ipfs/{HELLO_CID}?format=tar", {}, 400, "unsupported format 'tar'"),
        (f"/ipfs/{HELLO_CID}/a/b?format=car", {}, 400, "content paths are not supported"),
        (f"/ipfs/{HELLO_CID}?format=car&car-version=2", {}, 400, "unsupported CAR version"),
        (f"/ipfs/{HELLO_CID}?format=car&car-order=bfs", {}, 400, "unsupported CAR order"),
        (f"/ipfs/{HELLO_CID}?format=car&dag-scope=some", {}, 400, "bad dag-scope"),
        (f"/ipfs/{HELLO_CID}?format=car&entity-bytes=0:9", {}, 400, "entity-bytes"),
    ],
)
def test_gateway_rejects(
    es: EmbeddedStore, gw: TestClient, url: str, headers: dict[str, str], status: int, text: str
) -> None:
    es.put_bytes(b"hello world\n")
    response = gw.get(url, headers=headers)
    assert response.status_code == status and text in response.text
    assert response.text.count("\n") == 1


def test_gateway_identity_probe(gw: TestClient) -> None:
    raw = gw.get("/ipfs/bafkqaaa?format=raw")
    assert raw.status_code == 200 and raw.content == b""
    car = gw.get("/ipfs/bafkqaaa", headers={"Accept": CAR_TYPE})
    assert car.status_code == 200 and car.content == encode_header([b"\x01\x55\x00\x00"])


def test_gateway_corrupt_store_is_a_500(es: EmbeddedStore, gw: TestClient) -> None:
    cid = es.put_bytes(b"hello world\n")
    es.block_path(cid).write_bytes(b"hello w0rld\n")
    response = gw.get(f"/ipfs/{cid}?format=raw")
    assert response.status_code == 500 and "does not hash to its CID" in response.text


# ---------------------------------------------------------------------------
# the gateway client against honest and lying gateways

Mutate = Callable[[httpx.Request, httpx.Response], httpx.Response]


def proxied(es: EmbeddedStore, mutate: Mutate | None = None) -> tuple[GatewayClient, list[str]]:
    """A GatewayClient whose requests reach our gateway app through `mutate` (a liar)."""
    inner = TestClient(create_gateway_app(es))
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params.get("format", ""))
        answer = inner.request(request.method, str(request.url), headers=dict(request.headers))
        headers = {k: v for k, v in answer.headers.items() if k not in ("content-length",)}
        response = httpx.Response(answer.status_code, headers=headers, content=answer.content)
        return mutate(request, response) if mutate else response

    return GatewayClient("http://gateway", transport=httpx.MockTransport(handler)), seen


def _replace(response: httpx.Response, content: bytes, **headers: str) -> httpx.Response:
    merged = {**dict(response.headers), **headers}
    merged.pop("content-length", None)
    return httpx.Response(response.status_code, headers=merged, content=content)


def _flip_last_byte(request: httpx.Request, response: httpx.Response) -> httpx.Response:
    body = response.content
    return _replace(response, body[:-1] + bytes([body[-1] ^ 1]))


def test_client_honest_gateway_streams_one_car(es: EmbeddedStore) -> None:
    data = bytes(2 * CHUNK_SIZE) + data_of(CHUNK_SIZE, 9)
    cid = es.put_bytes(data)
    client, seen = proxied(es)
    assert client.get_bytes(cid) == data
    assert seen == ["car"]  # dups=y: one request, the repeated block re-sent in the stream
    assert client.get_block(cid) == es.get_block(cid)


@pytest.mark.parametrize("fmt", ["car", "raw"])
def test_client_catches_tampered_blocks(es: EmbeddedStore, fmt: str) -> None:
    cid = es.put_bytes(data_of(2 * CHUNK_SIZE, 10))
    client, _ = proxied(es, _flip_last_byte)
    with pytest.raises(ContentError, match="content mismatch"):
        client.get_bytes(cid) if fmt == "car" else client.get_block(cid)
    assert not client.has(cid)


def test_client_catches_wrong_order_and_truncation(es: EmbeddedStore) -> None:
    data = data_of(3 * CHUNK_SIZE, 11)
    cid = es.put_bytes(data)
    car = car_of(es, cid)
    parts = sections(car)
    swapped = b"".join(car_chunks([parse_cid(cid)], [parts[0], parts[2], parts[1], parts[3]]))
    client, _ = proxied(es, lambda q, r: _replace(r, swapped))
    with pytest.raises(CarError, match="where .* was expected"):
        client.get_bytes(cid)
    client, _ = proxied(es, lambda q, r: _replace(r, car[: -CHUNK_SIZE - 40]))
    with pytest.raises(CarError, match="incomplete CAR|truncated CAR"):
        client.get_bytes(cid)


def test_client_copes_with_unordered_and_dedup_gateways(es: EmbeddedStore) -> None:
    data = bytes(2 * CHUNK_SIZE) + b"tail"
    cid = es.put_bytes(data)

    def no_order(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.params.get("format") == "car":
            return _replace(response, response.content, **{"content-type": CAR_TYPE})
        return response

    client, seen = proxied(es, no_order)
    assert client.get_bytes(cid) == data
    assert seen == ["car", "raw", "raw", "raw", "raw"]  # block by block, all verified

    def dups_n(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.params.get("format") == "car":
            car = car_of(es, cid)  # a gateway that ignores dups=y
            return _replace(response, car, **{"content-type": f"{CAR_TYPE}; order=dfs; dups=n"})
        return response

    client, seen = proxied(es, dups_n)
    assert client.get_bytes(cid) == data
    assert seen == ["car", "raw"]  # only the skipped repeat fetched alone


def test_client_remote_errors(es: EmbeddedStore) -> None:
    cid = es.put_bytes(b"hello world\n")
    html = proxied(es, lambda q, r: _replace(r, b"<html>", **{"content-type": "text/html"}))[0]
    with pytest.raises(RemoteError, match="is it a trustless gateway"):
        html.get_bytes(cid)
    broken = proxied(es, lambda q, r: httpx.Response(502, text="bad gateway\nmore"))[0]
    with pytest.raises(RemoteError, match="HTTP 502 .*: bad gateway$"):
        broken.has(cid)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    down = GatewayClient("http://gateway", transport=httpx.MockTransport(refuse))
    with pytest.raises(RemoteError, match="ConnectError"):
        down.has(cid)


# ---------------------------------------------------------------------------
# the CLI


@pytest.fixture()
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith("OPENTRAIN_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OPENTRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return tmp_path / "home"


def run_cli(*args: str, stdin: bytes | None = None) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(store_app, list(args), input=stdin)
    return result.exit_code, result.stdout_bytes, result.stderr


def test_cli_put_get(cli_home: Path, tmp_path: Path) -> None:
    data = data_of(CHUNK_SIZE + 3, 12)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    code, out, err = run_cli("put", str(src))
    assert (code, err) == (0, "") and out == (compute_cid(data) + "\n").encode()
    cid = out.decode().strip()
    assert run_cli("get", cid) == (0, data, "")
    digest = hashlib.sha256(data).hexdigest()
    assert run_cli("get", cid, "-o", str(tmp_path / "out.bin"), "--sha256", digest)[0] == 0
    assert (tmp_path / "out.bin").read_bytes() == data
    assert run_cli("pins")[1] == out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["get", "nonsense"], "error: bad CID string 'nonsense'"),
        (["get", HELLO_CID], f"error: missing block {HELLO_CID}"),
        (["get", HELLO_CID, "--sha256", "abc"], "error: --sha256 wants 64 hex digits"),
        (["put", "no/such/file"], "error: not a file: no/such/file"),
        (["import", "no.car"], "error: not a file: no.car"),
        (["export", HELLO_CID], "error: missing block"),
        (["unpin", HELLO_CID], f"error: not pinned: {HELLO_CID}"),
    ],
)
def test_cli_errors_are_one_line(cli_home: Path, args: list[str], message: str) -> None:
    code, out, err = run_cli(*args)
    assert code == 1 and out == b""
    assert err.startswith(message) and err.count("\n") == 1, err


def test_cli_sha256_mismatch_writes_nothing(cli_home: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"checkpoint")
    cid = run_cli("put", str(src))[1].decode().strip()
    code, _, err = run_cli("get", cid, "-o", str(tmp_path / "out.bin"), "--sha256", "0" * 64)
    assert code == 1 and err.startswith("error: content mismatch")
    assert not (tmp_path / "out.bin").exists()


def test_cli_export_import(cli_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(data_of(2 * CHUNK_SIZE, 13))
    cid = run_cli("put", str(src))[1].decode().strip()
    code, car, _ = run_cli("export", cid)
    assert code == 0 and CarReader([car]).roots == [parse_cid(cid)]
    assert run_cli("export", cid, "-o", str(tmp_path / "x.car"))[0] == 0
    assert (tmp_path / "x.car").read_bytes() == car
    other = tmp_path / "other"
    monkeypatch.setenv("OPENTRAIN_HOME", str(other))
    assert run_cli("import", str(tmp_path / "x.car")) == (0, f"{cid}\n".encode(), "")
    assert run_cli("import", "-", stdin=car) == (0, f"{cid}\n".encode(), "")
    (tmp_path / "bad.car").write_bytes(car[:-10])
    monkeypatch.setenv("OPENTRAIN_HOME", str(tmp_path / "third"))
    code, _, err = run_cli("import", str(tmp_path / "bad.car"))
    assert code == 1 and err.startswith("error: truncated CAR")
    assert nothing_written(EmbeddedStore(tmp_path / "third" / "store"))


def test_cli_subprocess_never_tracebacks(cli_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "opentrain.cli.store", "get", "bafy-not-a-cid"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: bad CID string") and "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_serve_and_get_through_gateway(
    cli_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "in.bin"
    data = bytes(CHUNK_SIZE) * 2 + data_of(100, 14)
    src.write_bytes(data)
    cid = run_cli("put", str(src))[1].decode().strip()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "opentrain.cli.store", "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/ipfs/bafkqaaa?format=raw").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        monkeypatch.setenv("OPENTRAIN_HOME", str(tmp_path / "elsewhere"))  # empty local store
        assert run_cli("get", cid, "--gateway", url) == (0, data, "")
    finally:
        server.terminate()
        server.wait(timeout=10)


# ---------------------------------------------------------------------------
# code we did not write: ipfs-car and @helia/verified-fetch


def js_package(*names: str) -> pytest.MarkDecorator:
    missing = [
        name
        for name in names
        if not any((root / name / "package.json").exists() for root in JS_ROOTS)
    ]
    return pytest.mark.skipif(
        not NODE.exists() or bool(missing),
        reason=f"npm packages missing ({', '.join(missing) or 'node'}): add them as "
        "devDependencies or set OPENTRAIN_JS_MODULES to a node_modules folder that has them",
    )


def node(*args: str | Path, env: dict[str, str] | None = None) -> list[str]:
    return node_run(*args, env=env).stdout.split("\n")[:-1]


def node_run(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(NODE), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def package_file(name: str, file: str) -> Path:
    return next(root / name / file for root in JS_ROOTS if (root / name / file).exists())


@js_package("ipfs-car")
def test_ipfs_car_unpacks_our_cars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny chunks and fan-out 3 make a four-level tree with repeated leaves, quickly."""
    monkeypatch.setattr(builder_module, "CHUNK_SIZE", 4)
    monkeypatch.setattr(builder_module, "MAX_LINKS", 3)
    es = EmbeddedStore(tmp_path / "store")
    data = data_of(150, 15) + bytes(40) + b"end"
    cases = {"deep": data, "empty": b""}
    bin_js = package_file("ipfs-car", "bin.js")
    for name, content in cases.items():
        car = tmp_path / f"{name}.car"
        car.write_bytes(car_of(es, es.put_bytes(content)))
        out = tmp_path / f"{name}.out"
        node(bin_js, "unpack", car, "--output", out)
        assert out.read_bytes() == content, name


SIZES = [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 1 << 20, 45 << 20]


@js_package("ipfs-car", "@ipld/unixfs")
def test_ipfs_car_packs_import_with_kubo_cids(tmp_path: Path) -> None:
    """ipfs-car's pack pipeline at kubo's settings: same roots as ours, CARs import whole."""
    pairs: list[str | Path] = []
    datas = [data_of(size, 16) for size in SIZES]
    for i, data in enumerate(datas):
        (tmp_path / f"f{i}").write_bytes(data)
        pairs += [tmp_path / f"f{i}", tmp_path / f"f{i}.car"]
    roots = node(JS / "car_pack.mjs", *pairs)
    assert roots == [compute_cid(data) for data in datas]
    es = EmbeddedStore(tmp_path / "store")
    for i, data in enumerate(datas):
        with open(tmp_path / f"f{i}.car", "rb") as stream:
            assert import_car(es, file_chunks(stream)) == [roots[i]]
        assert hashlib.sha256(es.get_bytes(roots[i])).digest() == hashlib.sha256(data).digest()


@js_package("ipfs-car")
def test_ipfs_car_cli_pack_imports(tmp_path: Path) -> None:
    """`ipfs-car pack` with its own defaults (1 MiB chunks, 1024 links; not kubo's CIDs),
    --no-wrap and wrapped in a directory: both import with ipfs-car's root."""
    data = data_of(3 << 20, 17)
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    bin_js = package_file("ipfs-car", "bin.js")
    (root,) = node(bin_js, "pack", src, "--no-wrap", "--output", tmp_path / "file.car")
    es = EmbeddedStore(tmp_path / "store")
    with open(tmp_path / "file.car", "rb") as stream:
        assert import_car(es, file_chunks(stream)) == [root]
    assert es.get_bytes(root) == data
    assert root != compute_cid(data)  # ipfs-car's chunking differs from kubo's
    (wrapped,) = node(bin_js, "pack", src, "--output", tmp_path / "dir.car")
    with open(tmp_path / "dir.car", "rb") as stream:
        assert import_car(es, file_chunks(stream)) == [wrapped]
    assert wrapped in es.pins()


def start_server(app: FastAPI) -> tuple[str, Callable[[], None]]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}", stop


def lying_gateway(es: EmbeddedStore) -> FastAPI:
    """Answers like a trustless gateway, but every block has its last byte flipped."""
    app = FastAPI()

    def lie(block: bytes) -> bytes:
        return block[:-1] + bytes([block[-1] ^ 1]) if block else b"x"

    @app.get("/ipfs/{cid}")
    def ipfs(cid: str, request: Request) -> Response:
        car = request.query_params.get("format") == "car" or CAR_TYPE in request.headers.get(
            "accept", ""
        )
        blocks = [(c, lie(b)) for c, b in es.iter_dag(cid)]
        if car:
            body = b"".join(car_chunks([parse_cid(cid)], blocks))
            return Response(body, media_type=f"{CAR_TYPE}; version=1; order=dfs; dups=n")
        return Response(blocks[0][1], media_type=RAW_TYPE)

    return app


@js_package("@helia/verified-fetch", "helia", "@helia/http")
def test_verified_fetch_reads_our_gateway(tmp_path: Path) -> None:
    es = EmbeddedStore(tmp_path / "store")
    datas = [b"", b"hello world\n", data_of(CHUNK_SIZE + 1, 18), bytes(2 * CHUNK_SIZE) + b"x"]
    cids = [es.put_bytes(data) for data in datas]
    liar_data = data_of(CHUNK_SIZE * 2, 19)
    liar_cid = es.put_bytes(liar_data)
    honest, stop_honest = start_server(create_gateway_app(es))
    liar, stop_liar = start_server(lying_gateway(es))
    try:
        result = node_run(
            JS / "verified_fetch.mjs",
            honest,
            *cids,
            "--timeout",
            "1500",
            liar,
            liar_cid,
            env={"DEBUG": "helia:trustless-gateway:session:*:error"},  # its verification log
        )
    finally:
        stop_honest()
        stop_liar()
    lines = result.stdout.split("\n")[:-1]
    assert lines[: len(datas)] == [f"{hashlib.sha256(d).hexdigest()} {len(d)}" for d in datas]
    assert [line.split(":")[0] for line in lines[len(datas) :]] == ["error AbortError"], lines
    assert "Hash of downloaded block did not match multihash" in result.stderr
