"""One conformance suite for every ContentStore backend available on this machine.

Backends:
- embedded: EmbeddedStore on a temporary folder.
- gateway: GatewayClient reading, over real HTTP, from our trustless gateway (uvicorn on a
  random 127.0.0.1 port in a thread) in front of an EmbeddedStore that takes the writes.
- kubo-fake: KuboStore talking to FakeKubo below, a FAKE OF KUBO'S RPC SHAPE (paths,
  POST-only, parameters, JSON/NDJSON answers, error bodies) over an EmbeddedStore. It checks
  our client's requests and parsing, not kubo's behaviour.
- kubo: KuboStore on a real daemon, only when OPENTRAIN_IPFS_API points at one (no kubo
  binary installs on these machines). That is the run that proves kubo conformance.

The kubo client's own tests (request shapes, retries, timeouts, error mapping, lying
answers) follow the suite and use FakeKubo with fault injection.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn

from opentrain.content.backends import store_from_settings
from opentrain.content.builder import CHUNK_SIZE, compute_cid
from opentrain.content.car import export_car, import_car
from opentrain.content.embedded import EmbeddedStore
from opentrain.content.errors import ContentError
from opentrain.content.gateway_client import GatewayClient
from opentrain.content.gateway_server import create_gateway_app
from opentrain.content.kubo import ADD_PARAMS, KuboError, KuboStore, api_base
from opentrain.content.store import ContentReader, ContentStore
from opentrain.content.unixfs import parse_cid
from opentrain.settings import Settings

HELLO_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
MIB_CID = "bafybeiedpcapwld4tkgtzwahfofgn4wex5ryysf4se6hwpmlrsh4ntnrau"
KUBO_API = os.environ.get("OPENTRAIN_IPFS_API")
NO_KUBO = (
    "OPENTRAIN_IPFS_API is not set: no kubo daemon to run the suite against (no kubo binary "
    "installs here); run `ipfs daemon` and set OPENTRAIN_IPFS_API=http://127.0.0.1:5001"
)


def data_of(size: int, seed: int) -> bytes:
    """Random bytes unique to (size, seed): tests sharing one gateway store never collide."""
    return random.Random(f"{size}-{seed}").randbytes(size)


# ---------------------------------------------------------------------------
# FakeKubo: a fake of the RPC shape, NOT kubo


def _multipart_file(request: httpx.Request) -> tuple[str, bytes]:
    """(filename, bytes) of the one file part kubo's add / dag import expect."""
    ctype = request.headers["content-type"]
    assert ctype.startswith("multipart/form-data; boundary="), ctype
    boundary = ctype.split("boundary=", 1)[1].encode()
    body = request.read()
    head, _, rest = body.partition(b"\r\n\r\n")
    assert head.startswith(b"--" + boundary + b"\r\n")
    assert b'Content-Disposition: form-data; name="file"; filename="' in head
    name = head.split(b'filename="', 1)[1].split(b'"', 1)[0].decode()
    closing = b"\r\n--" + boundary + b"--\r\n"
    assert rest.endswith(closing)
    return name, rest[: -len(closing)]


def _kubo_error(message: str, status: int = 500) -> httpx.Response:
    return httpx.Response(status, json={"Message": message, "Code": 0, "Type": "error"})


@dataclass
class FakeKubo:
    """httpx MockTransport handler shaped like kubo's /api/v0 (a fake: see module doc).

    `faults` injects answers before the real handling: an int is an HTTP status, an
    exception class is raised as a transport error. `lie` makes it return wrong data.
    """

    store: EmbeddedStore
    calls: list[httpx.Request] = field(default_factory=list)
    faults: list[int | type[httpx.TransportError]] = field(default_factory=list)
    lie: str | None = None  # "add-cid" | "export-block" | "cat-bytes"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, int):
                return httpx.Response(fault, text=f"{fault} injected")
            raise fault("injected fault", request=request)
        if request.method != "POST":
            return httpx.Response(405, text="405 - Method Not Allowed")
        if not request.url.path.startswith("/api/v0/"):
            return httpx.Response(404, text="404 page not found")
        name = request.url.path.removeprefix("/api/v0/").replace("/", "_")
        handler = getattr(self, f"rpc_{name}", None)
        if handler is None:
            return httpx.Response(404, text="404 page not found")
        try:
            response: httpx.Response = handler(request, request.url.params)
            return response
        except ContentError as exc:
            return _kubo_error(self._kubo_message(str(exc), request.url.params.get("arg", "")))

    @staticmethod
    def _kubo_message(message: str, arg: str) -> str:
        if message.startswith("missing block"):
            return f"block was not found locally (offline): ipld: could not find {arg}"
        if message.startswith("not pinned"):
            return "not pinned or pinned indirectly"
        return message

    def rpc_version(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        return httpx.Response(200, json={"Version": "0.0.0-fake", "Commit": "", "Repo": "16"})

    def rpc_add(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        for key in ("cid-version", "raw-leaves", "chunker", "pin"):
            if params.get(key) != ADD_PARAMS[key]:
                return _kubo_error(f"fake kubo: add without {key}={ADD_PARAMS[key]}", 400)
        name, data = _multipart_file(request)
        cid = self.store.put_bytes(data)
        if self.lie == "add-cid":
            cid = compute_cid(data + b"!")
        line = {"Name": name, "Hash": cid, "Size": str(len(data))}
        return httpx.Response(200, text=json.dumps(line) + "\n")

    def rpc_cat(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        data = self.store.get_bytes(params["arg"])
        if self.lie == "cat-bytes" and data:
            data = data[:-1] + bytes([data[-1] ^ 1])
        return httpx.Response(
            200, content=iter([data[i : i + 65536] for i in range(0, len(data), 65536)])
        )

    def rpc_dag_export(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        """Streams like kubo: a block missing mid-walk just ends the body (kubo puts the
        error in an HTTP trailer, which clients cannot rely on seeing)."""
        if not self.store.has_block(parse_cid(params["arg"])):
            raise ContentError("missing block")

        def body() -> Iterator[bytes]:
            chunks = export_car(self.store, params["arg"])
            held = b""
            try:
                for chunk in chunks:
                    if held:
                        yield held
                    held = chunk
            except ContentError:
                return
            if self.lie == "export-block":
                held = bytes([held[0] ^ 1]) + held[1:]
            yield held

        return httpx.Response(200, content=body())

    def rpc_block_get(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        return httpx.Response(200, content=self.store.get_block(params["arg"]))

    def rpc_files_stat(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        assert params["with-local"] == "true" and params["offline"] == "true"
        cid = params["arg"].removeprefix("/ipfs/")
        if not self.store.has_block(parse_cid(cid)):
            raise ContentError("missing block")
        return httpx.Response(200, json={"Hash": cid, "Local": self.store.has(cid)})

    def rpc_pin_add(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        assert params["recursive"] == "true"
        self.store.pin(params["arg"])
        return httpx.Response(200, json={"Pins": [params["arg"]]})

    def rpc_pin_rm(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        self.store.unpin(params["arg"])
        return httpx.Response(200, json={"Pins": [params["arg"]]})

    def rpc_pin_ls(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        assert params["type"] == "recursive"
        keys = {cid: {"Type": "recursive"} for cid in self.store.pins()}
        return httpx.Response(200, json={"Keys": keys})

    def rpc_dag_import(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        assert params["pin-roots"] == "true"
        _, car = _multipart_file(request)
        roots = import_car(self.store, [car])
        lines = [{"Root": {"Cid": {"/": root}, "PinErrorMsg": ""}} for root in roots]
        return httpx.Response(200, text="".join(json.dumps(line) + "\n" for line in lines))


def fake_kubo(root: Path, *, retries: int = 3, offline: bool = False) -> tuple[KuboStore, FakeKubo]:
    """Our KuboStore wired to a FakeKubo (no sockets), backoff 0 so retry tests are instant."""
    fake = FakeKubo(EmbeddedStore(root))
    transport = httpx.MockTransport(fake)
    client = KuboStore(
        "http://127.0.0.1:5001", transport=transport, backoff=0, retries=retries, offline=offline
    )
    return client, fake


# ---------------------------------------------------------------------------
# a live gateway


@dataclass
class LiveGateway:
    store: EmbeddedStore
    url: str
    server: uvicorn.Server
    thread: threading.Thread


def start_gateway(store: EmbeddedStore) -> LiveGateway:
    """uvicorn in a thread on 127.0.0.1, port chosen by the OS."""
    config = uvicorn.Config(create_gateway_app(store), host="127.0.0.1", port=0, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("gateway did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return LiveGateway(store, f"http://127.0.0.1:{port}", server, thread)


def stop_gateway(gateway: LiveGateway) -> None:
    gateway.server.should_exit = True
    gateway.thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    gateway = start_gateway(EmbeddedStore(tmp_path_factory.mktemp("gateway") / "store"))
    yield gateway
    stop_gateway(gateway)


# ---------------------------------------------------------------------------
# the backends


@dataclass
class Backend:
    """A reader under test, the store that takes writes for it, and what it supports."""

    name: str
    reader: ContentReader
    writer: ContentStore
    make_reader: Callable[[int | None], ContentReader]  # same backend, another size limit
    disk: EmbeddedStore | None  # the blocks behind it, when a test may damage them
    read_only: bool = False


BACKENDS = ["embedded", "gateway", "kubo-fake", "kubo"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name = request.param
    if name == "embedded":
        store = EmbeddedStore(tmp_path / "store")
        yield Backend(name, store, store, lambda m: EmbeddedStore(store.root, m), store)
    elif name == "gateway":
        gateway: LiveGateway = request.getfixturevalue("live_gateway")
        client = GatewayClient(gateway.url)
        yield Backend(
            name,
            client,
            gateway.store,
            lambda m: GatewayClient(gateway.url, max_bytes=m),
            gateway.store,
            read_only=True,
        )
        client.close()
    elif name == "kubo-fake":
        kubo, fake = fake_kubo(tmp_path / "fake")
        transport = httpx.MockTransport(fake)

        def limited(m: int | None) -> ContentReader:
            return KuboStore(kubo.base, transport=transport, backoff=0, max_bytes=m)

        yield Backend(name, kubo, kubo, limited, fake.store)
    else:
        if not KUBO_API:
            pytest.skip(NO_KUBO)
        kubo = KuboStore(KUBO_API, offline=True, timeout=30)
        yield Backend(
            name, kubo, kubo, lambda m: KuboStore(KUBO_API, offline=True, max_bytes=m), None
        )


def leaf_cid(data: bytes, index: int) -> str:
    return compute_cid(data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE])


# ---------------------------------------------------------------------------
# the suite


def test_known_cids(backend: Backend) -> None:
    assert backend.writer.put_bytes(b"hello world\n") == HELLO_CID
    mib = bytes(i % 251 for i in range(1 << 20))
    assert backend.writer.put_bytes(mib) == MIB_CID
    assert backend.reader.get_bytes(HELLO_CID) == b"hello world\n"
    assert backend.reader.get_bytes(MIB_CID, hashlib.sha256(mib).digest()) == mib


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE - 17])
def test_round_trip(backend: Backend, size: int) -> None:
    data = data_of(size, 1)
    cid = backend.writer.put_bytes(data)
    assert cid == compute_cid(data)
    assert backend.reader.has(cid)
    assert backend.reader.get_bytes(cid, hashlib.sha256(data).digest()) == data
    pieces = list(backend.reader.iter_content(cid))
    assert b"".join(pieces) == data and all(len(p) <= CHUNK_SIZE for p in pieces)


def test_put_file_streams_to_same_cid(backend: Backend, tmp_path: Path) -> None:
    data = data_of(2 * CHUNK_SIZE + 3, 2)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    cid = backend.writer.put_file(src)
    assert cid == compute_cid(data) == backend.writer.put_bytes(data)
    out = tmp_path / "out.bin"
    backend.reader.get_to_file(cid, out, hashlib.sha256(data).digest())
    assert out.read_bytes() == data


def test_repeated_chunks(backend: Backend) -> None:
    """Equal chunks are one block: readers must handle a DAG that links it many times."""
    data = bytes(3 * CHUNK_SIZE) + data_of(10, 3)
    cid = backend.writer.put_bytes(data)
    assert backend.reader.get_bytes(cid) == data


def test_sha256_mismatch_returns_nothing_whole(backend: Backend, tmp_path: Path) -> None:
    data = data_of(CHUNK_SIZE + 9, 4)
    cid = backend.writer.put_bytes(data)
    wrong = hashlib.sha256(b"other").digest()
    with pytest.raises(ContentError, match="content mismatch"):
        backend.reader.get_bytes(cid, wrong)
    received = []
    with pytest.raises(ContentError, match="content mismatch"):
        for piece in backend.reader.iter_content(cid, wrong):
            received.append(piece)
    assert len(b"".join(received)) < len(data)  # the last piece is withheld
    out = tmp_path / "out.bin"
    out.write_bytes(b"previous")
    with pytest.raises(ContentError, match="content mismatch"):
        backend.reader.get_to_file(cid, out, wrong)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []


def test_unknown_content(backend: Backend, tmp_path: Path) -> None:
    cid = compute_cid(data_of(CHUNK_SIZE * 2, 5))  # never stored anywhere
    assert not backend.reader.has(cid)
    with pytest.raises(ContentError, match="missing block"):
        backend.reader.get_bytes(cid)
    with pytest.raises(ContentError, match="missing block"):
        backend.reader.get_to_file(cid, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize("bad", ["", "not a cid", "bafkreifjjcie6lypi6ny7amx", "Qm123"])
def test_bad_cid(backend: Backend, bad: str) -> None:
    with pytest.raises(ContentError, match="bad CID string"):
        backend.reader.get_bytes(bad)
    with pytest.raises(ContentError, match="bad CID string"):
        backend.reader.iter_content(bad)  # eager: before any request
    with pytest.raises(ContentError, match="bad CID string"):
        backend.reader.has(bad)


def test_missing_leaf(backend: Backend) -> None:
    if backend.disk is None:
        pytest.skip("cannot remove a pinned block from a real kubo")
    data = data_of(3 * CHUNK_SIZE, 6)
    cid = backend.writer.put_bytes(data)
    backend.disk.block_path(leaf_cid(data, 1)).unlink()
    assert not backend.reader.has(cid)
    with pytest.raises(ContentError):
        backend.reader.get_bytes(cid)


def test_corrupt_leaf_is_an_error_never_data(backend: Backend) -> None:
    if backend.disk is None:
        pytest.skip("cannot damage a real kubo's blocks")
    data = data_of(3 * CHUNK_SIZE, 7)
    cid = backend.writer.put_bytes(data)
    path = backend.disk.block_path(leaf_cid(data, 2))
    block = bytearray(path.read_bytes())
    block[7] ^= 0xFF
    path.write_bytes(bytes(block))
    with pytest.raises(ContentError):
        backend.reader.get_bytes(cid)


def test_size_limit(backend: Backend) -> None:
    data = data_of(2 * CHUNK_SIZE + 1, 8)
    cid = backend.writer.put_bytes(data)
    small = backend.make_reader(CHUNK_SIZE)
    with pytest.raises(ContentError, match="size limit"):
        small.get_bytes(cid)
    assert backend.make_reader(len(data)).get_bytes(cid) == data


def test_pins(backend: Backend) -> None:
    if backend.read_only:
        pytest.skip("a gateway client is read-only: no pins")
    store = backend.writer
    cid = store.put_bytes(data_of(CHUNK_SIZE + 2, 9))
    assert cid in store.pins()  # a put pins, as `ipfs add` does
    store.unpin(cid)
    assert cid not in store.pins()
    with pytest.raises(ContentError, match="not pinned"):
        store.unpin(cid)
    store.pin(cid)
    assert cid in store.pins()
    assert store.get_bytes(cid) == data_of(CHUNK_SIZE + 2, 9)


def test_car_round_trip(backend: Backend, tmp_path: Path) -> None:
    """Export through the backend's own block walk, import into a fresh store: same root."""
    data = bytes(2 * CHUNK_SIZE) + data_of(CHUNK_SIZE, 10)
    cid = backend.writer.put_bytes(data)
    source = backend.reader
    assert isinstance(source, EmbeddedStore | KuboStore | GatewayClient)
    car = b"".join(export_car(source, cid))
    fresh = EmbeddedStore(tmp_path / "fresh")
    assert import_car(fresh, [car]) == [cid]
    assert fresh.get_bytes(cid) == data and fresh.pins() == [cid]


# ---------------------------------------------------------------------------
# the kubo client against FakeKubo: request shapes, retries, errors (fake RPC shape only)


def test_kubo_add_request_shape(tmp_path: Path) -> None:
    kubo, fake = fake_kubo(tmp_path)
    src = tmp_path / "model.bin"
    src.write_bytes(data_of(CHUNK_SIZE + 1, 11))
    assert kubo.put_file(src) == compute_cid(src.read_bytes())
    (request,) = fake.calls
    assert request.method == "POST" and request.url.path == "/api/v0/add"
    assert dict(request.url.params) == ADD_PARAMS
    assert request.headers.get("transfer-encoding") == "chunked"  # streamed, not buffered
    assert _multipart_file(request) == ("model.bin", src.read_bytes())
    assert kubo.version() == "0.0.0-fake"


def test_kubo_reads_use_export_and_offline_flag(tmp_path: Path) -> None:
    kubo, fake = fake_kubo(tmp_path, offline=True)
    data = bytes(2 * CHUNK_SIZE) + b"tail"  # repeated leaf: kubo's export sends it once
    cid = kubo.put_bytes(data)
    fake.calls.clear()
    assert kubo.get_bytes(cid) == data
    paths = [call.url.path for call in fake.calls]
    assert paths == ["/api/v0/dag/export", "/api/v0/block/get"]  # the skipped duplicate
    assert all(call.url.params["offline"] == "true" for call in fake.calls)
    assert b"".join(kubo.cat(cid)) == data


def test_kubo_retries_transient_failures(tmp_path: Path) -> None:
    kubo, fake = fake_kubo(tmp_path, retries=3)
    fake.faults = [503, httpx.ConnectError, httpx.ReadTimeout]
    assert kubo.put_bytes(b"hello world\n") == HELLO_CID
    assert len(fake.calls) == 4
    assert fake.store.get_bytes(HELLO_CID) == b"hello world\n"  # the body was re-sent whole


def test_kubo_gives_up_in_one_line(tmp_path: Path) -> None:
    kubo, fake = fake_kubo(tmp_path, retries=2)
    fake.faults = [httpx.ConnectError] * 3
    with pytest.raises(KuboError, match=r"kubo version: cannot reach .*3 attempts") as info:
        kubo.version()
    assert "\n" not in str(info.value)
    fake.faults = [httpx.ReadTimeout] * 3
    with pytest.raises(KuboError, match=r"no answer from .* within 60s"):
        kubo.version()
    fake.faults = [502] * 3
    with pytest.raises(KuboError, match="HTTP 502 after 3 attempts"):
        kubo.version()


def test_kubo_does_not_retry_command_errors(tmp_path: Path) -> None:
    kubo, fake = fake_kubo(tmp_path, retries=3)
    with pytest.raises(ContentError, match="not pinned") as info:
        kubo.unpin(HELLO_CID)
    assert not isinstance(info.value, KuboError) and len(fake.calls) == 1
    with pytest.raises(ContentError, match="missing block"):
        kubo.get_bytes(HELLO_CID)
    assert not kubo.has(HELLO_CID)


def test_kubo_error_mapping(tmp_path: Path) -> None:
    kubo, fake = fake_kubo(tmp_path)
    fake.faults = [404]
    with pytest.raises(KuboError, match=r"HTTP 404: 404 injected \(is this kubo's RPC port"):
        kubo.version()
    fake.lie = None
    fake.store.put_bytes(b"x")

    def refuse(request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        return _kubo_error("pin: operation refused by policy")

    fake.rpc_pin_add = refuse  # type: ignore[method-assign]
    with pytest.raises(KuboError, match="kubo pin/add: HTTP 500: pin: operation refused"):
        kubo.pin(compute_cid(b"x"))


@pytest.mark.parametrize("lie", ["add-cid", "export-block", "cat-bytes"])
def test_kubo_lies_are_caught(tmp_path: Path, lie: str) -> None:
    kubo, fake = fake_kubo(tmp_path)
    data = data_of(2 * CHUNK_SIZE + 5, 12)
    cid = kubo.put_bytes(data)
    fake.lie = lie
    with pytest.raises(ContentError, match="content mismatch"):
        if lie == "add-cid":
            kubo.put_bytes(data)
        elif lie == "export-block":
            kubo.get_bytes(cid)
        else:
            b"".join(kubo.cat(cid))


def test_kubo_import_checks_car_first(tmp_path: Path) -> None:
    kubo, fake = fake_kubo(tmp_path)
    source = EmbeddedStore(tmp_path / "src")
    data = data_of(2 * CHUNK_SIZE, 13)
    cid = source.put_bytes(data)
    car = tmp_path / "x.car"
    car.write_bytes(b"".join(export_car(source, cid)))
    assert kubo.import_car(car) == [cid]
    assert kubo.get_bytes(cid) == data and cid in kubo.pins()
    chunks = list(export_car(source, cid))
    car.write_bytes(b"".join(chunks[:-2]))  # drop the last block
    fake.calls.clear()
    with pytest.raises(ContentError, match="missing block"):
        kubo.import_car(car)
    assert fake.calls == []  # refused before anything was sent


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("http://127.0.0.1:5001", "http://127.0.0.1:5001/api/v0"),
        ("http://node:5001/api/v0/", "http://node:5001/api/v0"),
        ("/ip4/10.1.2.3/tcp/5001", "http://10.1.2.3:5001/api/v0"),
        ("/dns/kubo/tcp/5001/http", "http://kubo:5001/api/v0"),
        ("/ip6/::1/tcp/5001", "http://[::1]:5001/api/v0"),
    ],
)
def test_kubo_api_address_forms(given: str, base: str) -> None:
    assert api_base(given) == base


def test_store_from_settings(tmp_path: Path) -> None:
    embedded = store_from_settings(Settings(home=tmp_path, max_content_bytes=10))
    assert isinstance(embedded, EmbeddedStore)
    assert embedded.root == tmp_path / "store" and embedded.max_bytes == 10
    kubo = store_from_settings(Settings(home=tmp_path, ipfs_api="http://127.0.0.1:5999"))
    assert isinstance(kubo, KuboStore) and kubo.base == "http://127.0.0.1:5999/api/v0"
