"""Pseudo-gradient codecs (none | int8 | topk): canonical bytes, deterministic selection and
arithmetic on any thread count, error feedback that the verifier recomputes byte for byte, and
the cheat of uploading another sparse update than the checkpoint implies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import Market
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from opentrain.protocol.aggregation import aggregate
from opentrain.protocol.codecs import (
    codec_of,
    decode_pseudo_gradient,
    decode_residual,
    encode_pseudo_gradient,
    encode_residual,
    has_residual,
    pseudo_gradient,
    slot_update,
    zero_residual,
)
from opentrain.protocol.manifest import ContentRef, TraceManifest
from opentrain.protocol.presets import mlp_demo_spec
from opentrain.protocol.updates import check_update
from opentrain.spec import DilocoSpec, JobSpec, SpecError, canonical_json, parse_spec
from opentrain.training.checkpoint import (
    CheckpointError,
    digest,
    encode_checkpoint,
    encode_params,
    fresh_state,
)
from opentrain.training.models import build_model, model_params

Tensors = dict[str, torch.Tensor]


def _topk(spec: JobSpec, **fields: object) -> JobSpec:
    codec = DilocoSpec(compression="topk", **fields)  # type: ignore[arg-type]
    return spec.model_copy(update={"diloco": codec})


@pytest.fixture(scope="module")
def spec() -> JobSpec:
    # hidden 64 x depth 2: tensors of 1024, 4096 and 64 elements; chunk 512 cuts the big ones
    return _topk(mlp_demo_spec(), density=0.05, bits=2, chunk=512)


def _params(spec: JobSpec) -> Tensors:
    return model_params(build_model(spec.model))


def _moved(params: Tensors, seed: int) -> Tensors:
    gen = torch.Generator().manual_seed(seed)
    return {n: t - 0.01 * torch.randn(t.shape, generator=gen) for n, t in params.items()}


# --- spec ------------------------------------------------------------------------------------


def test_codec_spec_is_backward_compatible() -> None:
    legacy = mlp_demo_spec()
    assert b"diloco" not in canonical_json(legacy)  # old specs keep their bytes and digests
    int8 = legacy.model_copy(
        update={"training": legacy.training.model_copy(update={"pseudo_gradient": "int8"})}
    )
    assert codec_of(int8) == "int8" and codec_of(legacy) == "none" and not has_residual(int8)
    topk = _topk(legacy, density=0.02, bits=4)
    assert has_residual(topk) and parse_spec(canonical_json(topk)) == topk
    doc = (
        canonical_json(int8)
        .decode()
        .replace('"version"', '"diloco":{"compression":"topk"},"version"')
    )
    with pytest.raises(SpecError, match="conflicts"):
        parse_spec(doc)
    with pytest.raises(SpecError, match="bits"):
        parse_spec(canonical_json(topk).decode().replace('"bits":4', '"bits":3'))


# --- encoding --------------------------------------------------------------------------------


def _chunks(numel: int, longest: int) -> tuple[int, int]:
    """(count, length) of a tensor's equal chunks: as few as ``longest`` allows."""
    count = -(-numel // longest)
    return count, -(-numel // count)


@pytest.mark.parametrize("longest", [512, 600])
def test_topk_keeps_the_density_per_chunk_and_is_canonical(spec: JobSpec, longest: int) -> None:
    """Per equal chunk (600 cuts the 4096-element tensor into 7 of 586, the last padded by
    6), the k largest magnitudes with their signs; a short last chunk keeps no more."""
    spec = _topk(spec, density=0.05, bits=2, chunk=longest)
    g = _params(spec)
    delta = pseudo_gradient(g, _moved(g, 1))
    raw = encode_pseudo_gradient(spec, delta)
    assert encode_pseudo_gradient(spec, {n: t.clone() for n, t in delta.items()}) == raw
    back = decode_pseudo_gradient(spec, raw)
    for name, t in delta.items():
        rows, chunk = _chunks(t.numel(), longest)
        k = max(1, round(0.05 * chunk))
        kept = back[name].reshape(-1) != 0
        assert int(kept.sum()) == rows * k  # k per chunk
        assert rows * k <= 0.05 * t.numel() + rows  # the density asked for, not more
        # what is kept are the largest magnitudes of each chunk, with their signs
        flat, dec = t.reshape(-1), back[name].reshape(-1)
        for r in range(rows):
            part, sel = flat[r * chunk : (r + 1) * chunk], kept[r * chunk : (r + 1) * chunk]
            rest = part.abs()[~sel]
            assert float(part.abs()[sel].min()) >= (float(rest.max()) if rest.numel() else 0.0)
        assert bool((torch.sign(dec[kept]) == torch.sign(flat[kept])).all())
    four = _topk(spec, density=0.05, bits=4, chunk=longest)
    assert (
        len(raw)
        < len(encode_pseudo_gradient(four, delta))
        < 4 * sum(t.numel() for t in delta.values()) / 10
    )


def test_topk_values_decode_within_one_level_of_what_was_kept(spec: JobSpec) -> None:
    """A kept value decodes to the middle of its level under the chunk's bfloat16 scales:
    within one step of the value itself, give or take the scales' rounding."""
    g = _params(spec)
    delta = pseudo_gradient(g, _moved(g, 8))
    raw = encode_pseudo_gradient(spec, delta)
    scales = load_safetensors(raw)["pg.scales"]
    assert scales.dtype == torch.bfloat16
    back = decode_pseudo_gradient(spec, raw)
    at = 0
    for name, t in delta.items():
        rows, chunk = _chunks(t.numel(), 512)
        steps = scales[at : at + rows, 1].float().repeat_interleave(chunk)[: t.numel()]
        at += rows
        flat, dec = t.reshape(-1), back[name].reshape(-1)
        kept = dec != 0
        bound = steps + flat.abs() * 2**-7  # a step, and the bfloat16 rounding of the scales
        assert bool(((dec - flat).abs()[kept] <= bound[kept]).all()), name
    assert at == scales.shape[0]


def test_topk_ties_go_to_the_lower_index(spec: JobSpec) -> None:
    g = _params(spec)
    delta = {n: torch.ones_like(t) for n, t in g.items()}  # every magnitude ties
    back = decode_pseudo_gradient(spec, encode_pseudo_gradient(spec, delta))
    for t in back.values():
        _, chunk = _chunks(t.numel(), 512)
        k = max(1, round(0.05 * chunk))
        first = t.reshape(-1)[:chunk]
        assert bool((first[:k] == 1).all()) and bool((first[k:] == 0).all())


def test_error_feedback_residual_is_what_was_not_sent(spec: JobSpec) -> None:
    g = _params(spec)
    out = _moved(g, 2)
    residual = {n: 0.003 * torch.ones_like(t) for n, t in g.items()}
    update, new = slot_update(spec, g, out, residual)
    sent, left = decode_pseudo_gradient(spec, update), decode_residual(spec, new)
    decay = torch.tensor(spec.diloco.error_decay, dtype=torch.float32)  # 0.95 by default
    for name, d in pseudo_gradient(g, out).items():
        v = d + residual[name] * decay
        assert torch.equal(left[name], v - sent[name])
    again = slot_update(spec, g, out, residual)
    assert again == (update, new)
    assert slot_update(spec, g, out, zero_residual(spec))[0] != update  # the residual counts


def _resave(raw: bytes, edit: dict[str, torch.Tensor]) -> bytes:
    tensors = dict(load_safetensors(raw))
    tensors.update(edit)
    return save_safetensors(tensors)


def _stream_parts(spec: JobSpec) -> tuple[int, int]:
    """Byte lengths of the codes and the remainders at the head of ``pg.bits`` (2 bits per
    code; Rice shift floor(log2((C - k) // k)) per tensor)."""
    kept = rem_bits = 0
    for t in _params(spec).values():
        rows, chunk = _chunks(t.numel(), spec.diloco.chunk)
        k = max(1, round(spec.diloco.density * chunk))
        kept += rows * k
        rem_bits += rows * k * max(0, ((chunk - k) // k).bit_length() - 1)
    return -(-kept * spec.diloco.bits // 8), -(-rem_bits // 8)


def test_malformed_topk_uploads_are_refused(spec: JobSpec) -> None:
    g = _params(spec)
    raw = encode_pseudo_gradient(spec, pseudo_gradient(g, _moved(g, 3)))
    tensors = load_safetensors(raw)
    stream = tensors["pg.bits"]
    codes, rem = _stream_parts(spec)
    gaps = codes + rem  # where the unary quotients start
    one_more = stream.clone()
    one_more[gaps] &= 0xFE  # a unary 1 turned 0: one index code too many
    padded = torch.cat([stream, torch.full((1,), 0xFF, dtype=torch.uint8)])
    # every remainder bit set: the gaps of the first chunk add up past its end
    past_end = stream.clone()
    past_end[codes:gaps] = 0xFF
    longest = torch.cat([stream, torch.full((len(stream) * 4,), 0xFF, dtype=torch.uint8)])
    negative = tensors["pg.scales"].clone()
    negative[0, 1] = -1.0
    infinite = tensors["pg.scales"].clone()
    infinite[1, 0] = float("inf")
    for edit, match in (
        ({"pg.bits": one_more}, "index stream holds"),
        ({"pg.bits": padded}, "index stream holds"),  # a whole byte of padding
        ({"pg.bits": past_end}, "out of range"),
        ({"pg.bits": longest}, "pg.bits"),  # longer than any gaps can be
        ({"pg.bits": stream[:gaps].clone()}, "not more than"),  # no quotients at all
        ({"pg.scales": negative}, "non-negative"),
        ({"pg.scales": infinite}, "finite"),
        ({"pg.scales": tensors["pg.scales"].float()}, "pg.scales"),  # float32, not bfloat16
        ({"pg.scales": tensors["pg.scales"][:-1].clone()}, "pg.scales"),
    ):
        with pytest.raises(CheckpointError, match=match):
            decode_pseudo_gradient(spec, _resave(raw, edit))
    with pytest.raises(CheckpointError):
        decode_pseudo_gradient(mlp_demo_spec(), raw)  # a topk upload where float32 is expected


def test_index_gaps_cost_a_fraction_of_16_bit_indices(spec: JobSpec) -> None:
    """The Rice-coded gaps take about log2(1 / density) + 1.5 bits per kept index (5.8 at
    density 0.05), not the 16 of an int16 index, and decode to exactly the kept positions;
    besides, the upload holds only the scales (4 bytes a chunk) and a header under 160 bytes."""
    g = _params(spec)
    delta = pseudo_gradient(g, _moved(g, 4))
    raw = encode_pseudo_gradient(spec, delta)
    tensors = load_safetensors(raw)
    stream = tensors["pg.bits"]
    kept = sum(
        _chunks(t.numel(), 512)[0] * max(1, round(0.05 * _chunks(t.numel(), 512)[1]))
        for t in delta.values()
    )
    codes, _ = _stream_parts(spec)
    index_bits = 8 * (stream.numel() - codes) / kept
    assert index_bits < 8, index_bits
    header = len(raw) - stream.numel() - 2 * tensors["pg.scales"].numel()
    assert header < 160, header


def test_topk_aggregates_only_from_updates(spec: JobSpec) -> None:
    g = _params(spec)
    g_bytes = encode_params(g)
    out = encode_checkpoint(fresh_state(spec, _moved(g, 4)), 0, 0)
    with pytest.raises(ValueError, match="committed updates"):
        aggregate(spec, g_bytes, [out])


# --- determinism across thread counts ----------------------------------------------------------

_CODECS = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(int(sys.argv[2]))
    from opentrain.protocol.aggregation import aggregate_pseudo_gradients
    from opentrain.protocol.codecs import (
        decode_pseudo_gradient, decode_residual, encode_pseudo_gradient, pseudo_gradient,
        slot_update,
    )
    from opentrain.spec import parse_spec
    from opentrain.training.checkpoint import decode_global
    folder = Path(sys.argv[1])
    g0 = (folder / "g0").read_bytes()
    print(torch.get_num_threads())
    for path in sorted(folder.glob("spec-*.json")):
        spec = parse_spec(path.read_bytes())
        g, _ = decode_global(spec, g0)
        outs = [decode_global(spec, (folder / f"out{i}").read_bytes())[0] for i in range(2)]
        uploads = []
        for i, out in enumerate(outs):
            if spec.diloco.compression == "topk":
                res = decode_residual(spec, (folder / f"res{i}").read_bytes())
                up, new = slot_update(spec, g, out, res)
                print(hashlib.sha256(new).hexdigest())
            else:
                up = encode_pseudo_gradient(spec, pseudo_gradient(g, out))
            dec = decode_pseudo_gradient(spec, up)
            print(hashlib.sha256(up).hexdigest(), hashlib.sha256(
                b"".join(dec[n].numpy().tobytes() for n in g)).hexdigest())
            uploads.append(up)
        print(hashlib.sha256(aggregate_pseudo_gradients(spec, g0, uploads)).hexdigest())
    """
)


def test_encode_decode_aggregate_are_identical_on_1_and_2_threads(tmp_path: Path) -> None:
    """Every codec's update, residual, decoded values and aggregate digest agree between a
    1-thread and a 2-thread process (OMP_NUM_THREADS and torch.set_num_threads)."""
    base = mlp_demo_spec().model_copy(
        update={"model": mlp_demo_spec().model.model_copy(update={"hidden_dim": 256})}
    )
    g = _params(base)
    (tmp_path / "g0").write_bytes(encode_params(g))
    for i in range(2):
        (tmp_path / f"out{i}").write_bytes(encode_params(_moved(g, 10 + i)))
        res = {
            n: 0.004 * torch.randn(t.shape, generator=torch.Generator().manual_seed(20 + i))
            for n, t in g.items()
        }
        (tmp_path / f"res{i}").write_bytes(encode_residual(base, res))
    specs = {
        "none": base,
        "int8": base.model_copy(update={"diloco": DilocoSpec(compression="int8")}),
        "topk2": _topk(base, density=0.01, bits=2, chunk=4096),
        "topk4": _topk(base, density=0.03, bits=4, chunk=1024, error_decay=0.95),
    }
    for name, job in specs.items():
        (tmp_path / f"spec-{name}.json").write_bytes(canonical_json(job))
    outs = {}
    for threads in (1, 2):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        proc = subprocess.run(
            [sys.executable, "-c", _CODECS, str(tmp_path), str(threads)],
            env=env,
            text=True,
            capture_output=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        outs[threads] = proc.stdout.split()
    assert outs[1][0] == "1" and outs[2][0] == "2"
    assert outs[1][1:] == outs[2][1:] and len(outs[1]) == 1 + 2 * 5 + 2 * 7
    assert len(set(outs[1][1:])) == len(outs[1]) - 1  # every codec gives its own bytes


# --- the verifier's check of a committed update ------------------------------------------------


def _manifest(spec: JobSpec, update: bytes, residual: bytes) -> TraceManifest:
    return TraceManifest(
        job_id=1,
        round=1,
        slot=0,
        spec_digest=b"\0" * 32,
        checkpoints=(),
        seal=bytes(32),
        update=ContentRef("cid-u", digest(update)),
        residual=ContentRef("cid-r", digest(residual)),
    )


def test_check_update_catches_any_other_update_than_the_output_implies(spec: JobSpec) -> None:
    g = _params(spec)
    moved = _moved(g, 5)
    output = encode_checkpoint(fresh_state(spec, moved), 1, 0)
    residual = decode_residual(spec, slot_update(spec, g, _moved(g, 6), zero_residual(spec))[1])
    update, new = slot_update(spec, g, moved, residual)
    assert check_update(spec, g, output, residual, _manifest(spec, update, new)).passed
    scales = load_safetensors(update)["pg.scales"]
    stream = load_safetensors(update)["pg.bits"]
    flipped = stream.clone()
    flipped[0] ^= 0x01  # the first kept entry's level: a value the output does not imply
    cheats = {
        "one level off": (_resave(update, {"pg.bits": flipped}), new),
        "amplified": (_resave(update, {"pg.scales": scales * 2}), new),
        "no error feedback": slot_update(spec, g, moved, zero_residual(spec)),
        "residual dropped": (update, encode_residual(spec, zero_residual(spec))),
    }
    for name, (up, res) in cheats.items():
        check = check_update(spec, g, output, residual, _manifest(spec, up, res))
        assert not check.passed, name
        assert "committed" in check.reason, name
    other = encode_checkpoint(fresh_state(spec, _moved(g, 7)), 1, 0)
    assert not check_update(spec, g, other, residual, _manifest(spec, update, new)).passed


# --- end to end on the in-process chain --------------------------------------------------------


def test_node_uploading_another_update_than_its_checkpoint_is_caught(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round 0 is honest and aggregated from the committed updates; in round 1 slot 0 starts
    from its committed residual and passes, slot 1 amplifies its sparse update and fails."""
    import node.worker
    from node.daemon import NodeDaemon
    from opentrain.chain.types import TOKEN
    from opentrain.chain.views import aggregate_info, contribution_info, verification_info
    from opentrain.cli.demo import post_bounty
    from opentrain.protocol.jobs import load_job
    from opentrain.protocol.updates import committed_update, residual_in
    from verifier.daemon import VerifierDaemon
    from verifier.worker import VerifierWorker

    job_spec = _topk(mlp_demo_spec(rounds=2, slots_per_round=2), density=0.05, bits=2, chunk=512)
    sponsor, verifier = market.new_account(), market.new_account()
    nodes = [market.new_account(), market.new_account()]
    for n in nodes:
        n.stake(200 * TOKEN)
    verifier.stake(200 * TOKEN)
    verifier.register_verifier()
    job_id = post_bounty(sponsor, market.store, job_spec)
    chain = market.chain
    daemons = [NodeDaemon(n, market.store, market.home / f"node{i}") for i, n in enumerate(nodes)]
    assert [d.run_once() for d in daemons] == [1, 2]
    vd = VerifierDaemon(verifier, market.store, market.home / "verifier.json")
    chain.mine(2)
    vd.step()
    assert [verification_info(chain, c).verdict for c in (1, 2)] == [1, 1]  # both pass
    chain.advance_to(max(verification_info(chain, c).challenge_deadline for c in (1, 2)) + 1)
    vd.step()  # finalize both, post the aggregate (from the committed updates)
    chain.advance_to(aggregate_info(chain, job_id, 0).challenge_deadline + 1)
    vd.step()
    job = load_job(chain, market.store, job_id)
    # round 1 slot 0 starts from what round 0 slot 0 left unsent
    assert any(bool(t.any()) for t in residual_in(chain, market.store, job, 1, 0).values())

    assert daemons[0].run_once() == 3
    honest = node.worker.slot_update

    def amplified(*args: object, **kwargs: object) -> tuple[bytes, bytes]:
        update, residual = honest(*args, **kwargs)  # type: ignore[arg-type]
        scales = load_safetensors(update)["pg.scales"]
        return _resave(update, {"pg.scales": scales * 4}), residual

    monkeypatch.setattr(node.worker, "slot_update", amplified)
    assert daemons[1].run_once() == 4
    chain.mine(2)
    worker = VerifierWorker(verifier, market.store)
    for c in (3, 4):
        worker.ensure_seed(c)
    good, bad = worker.verify_and_attest(3), worker.verify_and_attest(4)
    assert good.passed and good.update is not None and good.update.passed, good.reason
    assert not bad.passed and bad.update is not None and not bad.update.passed
    assert bad.reason.startswith("update: committed update is not the encoding")
    assert all(c.passed for c in bad.checks)  # its training was honest: only the upload lies
    assert [verification_info(chain, c).verdict for c in (3, 4)] == [1, 2]  # pass, fail

    from opentrain.chain.types import Verdict
    from verifier.audit.auditor import Auditor
    from verifier.audit.report import AuditReport

    audit = Auditor(chain, market.store, reexecute=False)
    named = "committed update and residual recompute from the output"
    for c in (1, 3, 4):  # right verdicts: nothing to flag (4's mismatch is what its fail says)
        checks = [k for k in audit.contribution(c).checks if k.name == named]
        assert [k.ok for k in checks] == [True], c
    assert "as the fail verdict says" in checks[0].detail
    lazy = AuditReport("a pass on contribution 4 would be flagged")
    assert not audit._check_update(lazy, "c4", job, contribution_info(chain, 4), Verdict.PASS)
    assert lazy.findings
    info = contribution_info(chain, 4)
    assert (
        len(committed_update(market.store, info))
        < 4 * sum(t.numel() for t in residual_in(chain, market.store, job, 1, 1).values()) / 10
    )
