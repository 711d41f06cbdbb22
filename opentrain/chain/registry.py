"""TrainToken and StakeRegistry (the vault) calls: balances, stake, unbonding, the verifier set,
credits."""

from __future__ import annotations

from web3.types import TxReceipt

from opentrain.chain.calls import ContractCalls


class RegistryCalls(ContractCalls):
    """Token and vault calls of one signer."""

    # -- token ------------------------------------------------------------------------------

    def balance(self, address: str | None = None) -> int:
        return int(self.chain.token.functions.balanceOf(address or self.address).call())

    def transfer(self, to: str, amount: int) -> TxReceipt:
        return self.send(self.chain.token.functions.transfer(to, amount), "transfer")

    def approve(self, spender: str, amount: int) -> TxReceipt:
        return self.send(self.chain.token.functions.approve(spender, amount), "approve")

    # -- stake (StakeRegistry: the vault) -------------------------------------------------

    def stake(self, amount: int) -> TxReceipt:
        self.approve(self.chain.stakes.address, amount)
        return self.send(self.chain.stakes.functions.stake(amount), "stake")

    def request_unbond(self, amount: int) -> TxReceipt:
        """Move ``amount`` of free stake to unbonding (withdrawable after the delay)."""
        return self.send(self.chain.stakes.functions.requestUnbond(amount), "requestUnbond")

    def withdraw_unbonded(self) -> TxReceipt:
        """Withdraw all unbonding stake once its ready time is reached."""
        return self.send(self.chain.stakes.functions.withdrawUnbonded(), "withdrawUnbonded")

    def register_verifier(self) -> TxReceipt:
        return self.send(self.chain.stakes.functions.registerVerifier(), "registerVerifier")

    def deregister_verifier(self) -> TxReceipt:
        return self.send(self.chain.stakes.functions.deregisterVerifier(), "deregisterVerifier")

    def stake_of(self, address: str | None = None) -> int:
        return int(self.chain.stakes.functions.stakeOf(address or self.address).call())

    def locked_of(self, address: str | None = None) -> int:
        return int(self.chain.stakes.functions.lockedOf(address or self.address).call())

    def free_stake_of(self, address: str | None = None) -> int:
        return int(self.chain.stakes.functions.freeStakeOf(address or self.address).call())

    def unbonding_of(self, address: str | None = None) -> tuple[int, int]:
        """(amount unbonding, unix time from which it can be withdrawn)."""
        amount, ready = self.chain.stakes.functions.unbondingOf(address or self.address).call()
        return int(amount), int(ready)

    def withdraw(self) -> TxReceipt:
        """Withdraw every credited token (rewards, fees, slash shares) from the vault."""
        return self.send(self.chain.stakes.functions.withdraw(), "withdraw")

    def credits(self, address: str | None = None) -> int:
        return int(self.chain.stakes.functions.creditsOf(address or self.address).call())
