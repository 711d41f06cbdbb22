"""Which backend a role gets from its settings (kept apart so the interface imports no backend)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentrain.settings import Settings
from opentrain.content.embedded import EmbeddedStore
from opentrain.content.store import ContentStore


def store_from_settings(settings: Settings) -> ContentStore:
    """kubo over its RPC when `ipfs_api` is set (kubo finds content on the IPFS network
    itself), else the embedded store under `store_dir`, reading what it lacks from the
    `gateways` when any are set."""
    if settings.ipfs_api:
        from opentrain.content.kubo import KuboStore

        return KuboStore(settings.ipfs_api, max_bytes=settings.max_content_bytes)
    local = EmbeddedStore(settings.resolved_store_dir, max_bytes=settings.max_content_bytes)
    urls = [u.strip() for u in settings.gateways.split(",") if u.strip()]
    if not urls:
        return local
    from opentrain.content.gateway_client import GatewayClient, GatewayFallbackStore

    clients = [GatewayClient(u, max_bytes=settings.max_content_bytes) for u in urls]
    return GatewayFallbackStore(local, clients)
