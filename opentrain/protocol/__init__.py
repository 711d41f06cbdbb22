"""The protocol: the rules node, verifier, committee and auditor must compute identically.

Owns the sampling rule (seed -> segment indices, mirrored in ``contracts/libraries/Sampling.sol``)
and the hash of the recomputed digests a verifier attests to, the stake-weighted verifier draw
(``draws``, mirrored from ``StakeRegistry``), getting a contribution a verifier (``assignment``:
seeds, queued draws, takeovers),
the trace commitment (Merkle leaves and proofs, OpenZeppelin-compatible), the trace manifest, the
check of one segment and of a whole contribution, aggregation (the outer Nesterov step), the
economics rule of ``createJob`` (mirrored in ``contracts/libraries/Economics.sol``; its model with
tolerance exploits, colluding stake and challenges, ``minimum_stake`` for ``job init`` and the
canary guard, validated by ``bench/economics.py``), loading a job from public data, moving a
dispute along, and the ready-made job specs.

May import: ``opentrain.training``, ``opentrain.content``, ``opentrain.chain``, ``opentrain.spec``
and ``opentrain.settings``; never the CLI nor a role (node, verifier, marketplace_api).
"""
