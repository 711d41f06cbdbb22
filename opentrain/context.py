"""Wiring a role from settings: the chain (RPC + deployment), the signer, the content store.
The node and verifier CLIs both start here."""

from __future__ import annotations

from dataclasses import dataclass

from opentrain.chain.account import ChainAccount
from opentrain.chain.client import Chain, Deployment, connect
from opentrain.chain.keys import load_signer
from opentrain.chain.types import ChainError
from opentrain.content.backends import store_from_settings
from opentrain.content.store import ContentStore
from opentrain.settings import IN_PROCESS, Settings


@dataclass(frozen=True)
class RoleContext:
    settings: Settings
    chain: Chain
    account: ChainAccount
    store: ContentStore


def connect_chain(settings: Settings) -> Chain:
    if settings.rpc_url == IN_PROCESS:
        raise ChainError(
            "this command needs a shared chain: set OPENTRAIN_RPC_URL "
            "(e.g. http://127.0.0.1:8545 after `make chain` and `opentrain chain deploy`)"
        )
    return Chain(connect(settings.rpc_url), Deployment.load(settings.resolved_deployment_file))


def role_context(settings: Settings | None = None) -> RoleContext:
    settings = settings or Settings()
    chain = connect_chain(settings)
    account = chain.account(load_signer(settings))
    store = store_from_settings(settings)
    return RoleContext(settings, chain, account, store)
