"""The chain: connection, deployment and one typed wrapper per contract.

Owns the connection (``client``: in-process EVM or any JSON-RPC endpoint, plus the deployed
contracts), ``deployment``, the contract calls of one signer split by contract (``registry``,
``market``, ``settlement``, ``disputes``, composed in ``account``), typed read-only snapshots
(``views``), the journaled transaction sender (``tx``), keystores (``keys``) and the shipped
contract artifacts (``abi`` and ``artifacts/``).

May import: ``opentrain.settings`` and third-party libraries only.
"""
