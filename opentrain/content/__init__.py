"""Content addressing: every checkpoint, manifest, spec and report, by kubo-identical CID.

Owns the ``ContentStore`` interface (``store``), the UnixFS codec and DAG builder, the embedded
store, CAR import and export, the trustless gateway server and its verifying client, the kubo
RPC client, and ``backends``, which picks one of them from settings (kept apart so the interface
imports no backend: no cycle).

May import: ``opentrain.settings`` and third-party libraries only.
"""
