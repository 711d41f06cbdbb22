"""Loading a job from public data: its parameters from the chain, its spec and global model
from the content store, each checked against the digest the chain holds. Node, verifier and
auditor all start here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from opentrain.chain.client import Chain
from opentrain.chain.types import JobParams
from opentrain.chain.views import JobInfo, job_info, round_model_cid
from opentrain.content.store import ContentStore
from opentrain.spec import JobSpec, parse_spec, spec_digest
from opentrain.training.checkpoint import decode_params
from opentrain.training.data import data_source


class JobError(RuntimeError):
    """Public data about a job that is missing or does not match the chain."""


def job_params(spec: JobSpec, initial_model_digest: bytes) -> JobParams:
    """The on-chain parameters a spec implies: what ``createJob`` needs and what the market's
    bounty relay checks a signed ``createJob`` against."""
    return JobParams(
        spec_digest=spec_digest(spec),
        initial_model_digest=initial_model_digest,
        rounds=spec.rounds,
        slots_per_round=spec.slots_per_round,
        num_segments=spec.training.num_segments,
        sample_count=spec.verification.samples,
        reward_per_slot=spec.reward.reward_per_slot,
        verifier_fee=spec.reward.verifier_fee,
        reveal_window=spec.verification.reveal_window,
    )


@dataclass(frozen=True)
class LoadedJob:
    info: JobInfo
    spec: JobSpec

    @property
    def job_id(self) -> int:
        return self.info.job_id


def load_job(chain: Chain, store: ContentStore, job_id: int) -> LoadedJob:
    """The job's on-chain record and its spec, fetched by CID and checked by sha256."""
    info = job_info(chain, job_id)
    raw = store.get_bytes(info.spec_cid, expected_sha256=info.params.spec_digest)
    spec = parse_spec(raw)
    _check_spec_matches_chain(spec, info)
    data_source(spec, store)  # fetch and check the job's data once; later calls hit the cache
    return LoadedJob(info=info, spec=spec)


def _check_spec_matches_chain(spec: JobSpec, info: JobInfo) -> None:
    p = info.params
    expected = {
        "rounds": (spec.rounds, p.rounds),
        "slots_per_round": (spec.slots_per_round, p.slots_per_round),
        "segments": (spec.training.num_segments, p.num_segments),
        "samples": (spec.verification.samples, p.sample_count),
        "reward_per_slot": (spec.reward.reward_per_slot, p.reward_per_slot),
        "verifier_fee": (spec.reward.verifier_fee, p.verifier_fee),
    }
    for name, (in_spec, on_chain) in expected.items():
        if in_spec != on_chain:
            raise JobError(
                f"job {info.job_id}: spec says {name}={in_spec} but the chain says {on_chain}"
            )


def load_global_model(
    chain: Chain, store: ContentStore, job: LoadedJob, round_: int
) -> tuple[bytes, dict[str, torch.Tensor]]:
    """G_round's bytes (checked against the on-chain digest) and its decoded parameters."""
    cid, expected = round_model_cid(chain, job.info, round_)
    raw = store.get_bytes(cid, expected_sha256=expected)
    return raw, decode_params(job.spec, raw)
