"""A verifier that holds none of a node's content reads it through the node's gateway: every
block verified against its CID, the DAG kept locally under the same CID, lying gateways skipped,
and nothing half-copied when every gateway fails."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from conftest import Market
from fastapi.testclient import TestClient

from node.daemon import NodeDaemon
from opentrain.chain.types import TOKEN
from opentrain.cli.demo import post_bounty
from opentrain.content.backends import store_from_settings
from opentrain.content.embedded import EmbeddedStore
from opentrain.content.errors import ContentError
from opentrain.content.gateway_client import GatewayClient, GatewayFallbackStore
from opentrain.content.gateway_server import create_gateway_app
from opentrain.protocol.presets import mlp_demo_spec
from opentrain.settings import Settings
from verifier.worker import VerifierWorker


def gateway_to(store: EmbeddedStore, lie: bool = False) -> tuple[GatewayClient, list[str]]:
    """A client of ``store``'s gateway app; ``lie`` flips a byte in every response body."""
    app = TestClient(create_gateway_app(store))
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        answer = app.request(request.method, str(request.url), headers=dict(request.headers))
        body = answer.content
        if lie and body:
            body = body[:-1] + bytes([body[-1] ^ 1])
        headers = {k: v for k, v in answer.headers.items() if k != "content-length"}
        return httpx.Response(answer.status_code, headers=headers, content=body)

    return GatewayClient("http://node-gateway", transport=httpx.MockTransport(handler)), seen


def test_missing_content_comes_verified_from_the_first_honest_gateway(tmp_path: Path) -> None:
    node = EmbeddedStore(tmp_path / "node")
    data = os.urandom(600 * 1024)  # three chunks and a root: a real DAG
    cid = node.put_bytes(data)
    liar, _ = gateway_to(node, lie=True)
    honest, seen = gateway_to(node)
    local = EmbeddedStore(tmp_path / "verifier")
    store = GatewayFallbackStore(local, [liar, honest])
    assert store.get_bytes(cid) == data
    assert local.has(cid) and local.get_bytes(cid) == data  # same CID, kept locally
    requests = len(seen)
    assert store.get_bytes(cid) == data and len(seen) == requests  # second read is local


def test_no_gateway_serving_it_is_one_clear_error_and_nothing_is_kept(tmp_path: Path) -> None:
    node = EmbeddedStore(tmp_path / "node")
    cid = node.put_bytes(os.urandom(300 * 1024))
    liar, _ = gateway_to(node, lie=True)
    local = EmbeddedStore(tmp_path / "verifier")
    store = GatewayFallbackStore(local, [liar])
    with pytest.raises(ContentError, match=r"not in the local store and no gateway served it") as e:
        store.get_bytes(cid)
    assert "\n" not in str(e.value)
    assert not store.has(cid) and not local.has(cid)
    assert not any((tmp_path / "verifier" / "blocks").rglob("*"))


def test_settings_with_gateways_give_the_fallback_store(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, gateways="http://a:8080, http://b:8080")
    store = store_from_settings(settings)
    assert isinstance(store, GatewayFallbackStore)
    assert [g.url for g in store.gateways] == ["http://a:8080", "http://b:8080"]
    assert isinstance(store_from_settings(Settings(home=tmp_path)), EmbeddedStore)


def test_a_verifier_with_an_empty_store_verifies_through_the_nodes_gateway(
    market: Market, tmp_path: Path
) -> None:
    sponsor, node, verifier = market.new_account(), market.new_account(), market.new_account()
    node.stake(200 * TOKEN)
    verifier.stake(200 * TOKEN)
    verifier.register_verifier()
    post_bounty(sponsor, market.store, mlp_demo_spec(rounds=1, slots_per_round=1))
    contribution = NodeDaemon(node, market.store, market.home / "node").run_once()
    assert contribution is not None
    client, seen = gateway_to(market.store)
    store = GatewayFallbackStore(EmbeddedStore(tmp_path / "verifier"), [client])
    market.chain.mine(1)
    worker = VerifierWorker(verifier, store)
    assert worker.ensure_seed(contribution)
    report = worker.verify_and_attest(contribution)
    assert report.passed, report.reason
    assert seen  # spec, G_0, manifest and the sampled checkpoints came over the gateway
