"""The auditor re-checks a job from public data: nothing on an honest job, a finding for a
checkpoint tampered with after the fact."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from opentrain.chain.views import contribution_info, verification_info
from opentrain.cli.demo import run_demo
from opentrain.content.embedded import EmbeddedStore
from opentrain.protocol.manifest import TraceManifest
from opentrain.protocol.presets import mlp_demo_spec
from opentrain.protocol.sampling import sample_indices
from verifier.audit import Auditor, write_report


def test_honest_job_has_no_findings_and_a_tampered_checkpoint_is_found(tmp_path: Path) -> None:
    spec = mlp_demo_spec()
    result = run_demo(tmp_path, spec=spec, console=Console(quiet=True))
    assert result.chain is not None
    store = EmbeddedStore(tmp_path / "store")
    auditor = Auditor(result.chain, store)

    honest = auditor.job(result.job_id)
    assert honest.findings == []
    assert len(honest.checks) > 20
    names = {c.name for c in honest.checks}
    assert "vault escrow equals the sum of every job's open escrow plus the canary pool" in names
    assert "verifier report holds what re-execution computes (not lazy)" in names
    assert len(honest.losses) == spec.rounds + 1 and honest.losses[-1] < honest.losses[0]
    json_path, html_path = write_report(honest, tmp_path / "audit")
    assert "no findings" in html_path.read_text() and json_path.exists()

    info = contribution_info(result.chain, 1)
    seed = verification_info(result.chain, 1).seed
    sampled = sample_indices(seed, spec.training.num_segments, spec.verification.samples)
    manifest = TraceManifest.from_json(store.get_bytes(info.manifest_cid))
    block = store.block_path(manifest.checkpoints[sampled[0] + 1].cid)
    data = bytearray(block.read_bytes())
    data[-1] ^= 0xFF
    block.write_bytes(bytes(data))

    tampered = auditor.contribution(1)
    assert any("checkpoints available" in c.name for c in tampered.findings)
