"""Training: what one slot computes, bit for bit the same wherever it runs.

Owns the models, the data (synthetic and corpus shards, batch order), ``train_segment`` and
``evaluate_loss``, the canonical safetensors checkpoints (parameters, AdamW state, step) and the
determinism settings.

May import: ``opentrain.spec``, ``opentrain.content`` (to fetch a corpus by CID) and third-party
libraries; never ``protocol``, ``chain`` or the CLI.
"""
