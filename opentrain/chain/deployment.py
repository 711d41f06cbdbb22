"""Deploying and wiring the six contracts."""

from __future__ import annotations

import threading

from eth_account.signers.local import LocalAccount
from web3 import Web3

from opentrain.chain.account import ChainAccount
from opentrain.chain.client import Chain, Deployment, ProtocolParams


def deploy(w3: Web3, deployer: LocalAccount, params: ProtocolParams = ProtocolParams()) -> Chain:
    """Deploy and wire the six contracts; the deployer holds the whole token supply and the
    canary authority (``Canaries.CANARY_ROLE``; grant it to an operator and renounce it)."""
    bootstrap = ChainAccount(_BootstrapChain(w3), deployer)  # type: ignore[arg-type]
    start = int(w3.eth.block_number)
    token = bootstrap.deploy("TrainToken", deployer.address, params.token_supply)
    stakes_addr = bootstrap.deploy(
        "StakeRegistry",
        token,
        deployer.address,
        params.min_node_stake,
        params.min_verifier_stake,
        params.verifier_lock,
        params.dispute_bond,
        params.unbonding_delay,
        params.draw_lag,
        params.slash_reward_bps,
        params.committee_reward_bps,
    )
    market_addr = bootstrap.deploy(
        "JobMarket", stakes_addr, deployer.address, params.challenge_window
    )
    settlement_addr = bootstrap.deploy(
        "Settlement", stakes_addr, market_addr, deployer.address, params.attest_window
    )
    disputes_addr = bootstrap.deploy(
        "Disputes",
        stakes_addr,
        market_addr,
        settlement_addr,
        deployer.address,
        params.committee_size,
        params.vote_window,
        params.quorum,
    )
    canaries_addr = bootstrap.deploy(
        "Canaries", stakes_addr, market_addr, settlement_addr, deployer.address
    )
    deployment = Deployment(
        chain_id=int(w3.eth.chain_id),
        block=start,
        TrainToken=token,
        StakeRegistry=stakes_addr,
        JobMarket=market_addr,
        Settlement=settlement_addr,
        Disputes=disputes_addr,
        Canaries=canaries_addr,
    )
    chain = Chain(w3, deployment)
    _wire_roles(chain.account(deployer), chain)
    return chain


def _wire_roles(admin: ChainAccount, chain: Chain) -> None:
    """Grant each contract exactly the roles contracts/README.md lists."""
    stakes, market, settlement = (
        chain.stakes.functions,
        chain.market.functions,
        chain.settlement.functions,
    )
    locker, slasher, treasurer = (
        stakes.LOCKER_ROLE().call(),
        stakes.SLASHER_ROLE().call(),
        stakes.TREASURER_ROLE().call(),
    )
    grants = [
        (stakes, locker, chain.market.address, "LOCKER_ROLE to JobMarket"),
        (stakes, treasurer, chain.market.address, "TREASURER_ROLE to JobMarket"),
        (stakes, locker, chain.settlement.address, "LOCKER_ROLE to Settlement"),
        (stakes, slasher, chain.settlement.address, "SLASHER_ROLE to Settlement"),
        (stakes, treasurer, chain.settlement.address, "TREASURER_ROLE to Settlement"),
        (stakes, locker, chain.disputes.address, "LOCKER_ROLE to Disputes"),
        (stakes, slasher, chain.disputes.address, "SLASHER_ROLE to Disputes"),
        (market, market.SETTLEMENT_ROLE().call(), chain.settlement.address, "SETTLEMENT_ROLE"),
        (market, market.DISPUTES_ROLE().call(), chain.disputes.address, "market DISPUTES_ROLE"),
        (settlement, settlement.DISPUTES_ROLE().call(), chain.disputes.address, "DISPUTES_ROLE"),
        (stakes, slasher, chain.canaries.address, "SLASHER_ROLE to Canaries"),
        (stakes, treasurer, chain.canaries.address, "TREASURER_ROLE to Canaries"),
        (settlement, settlement.CANARIES_ROLE().call(), chain.canaries.address, "CANARIES_ROLE"),
        (
            chain.canaries.functions,
            chain.canaries.functions.CANARY_ROLE().call(),
            admin.address,
            "CANARY_ROLE to the deployer",
        ),
    ]
    for functions, role, grantee, what in grants:
        admin.send(functions.grantRole(role, grantee), f"grant {what}")


class _BootstrapChain:
    """Just enough of ``Chain`` to deploy before any address exists."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self._lock = threading.Lock()
        self.in_process = getattr(w3.provider, "ethereum_tester", None) is not None
