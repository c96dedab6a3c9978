"""Worker settings: one class, env prefix `DUET_WORKER_` (the ledger URL/token come from
`shared.config.ClientSettings`, i.e. `DUET_API_URL` / `DUET_API_TOKEN`)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.lora import check_max_lora_rank


class WorkerSettings(BaseSettings):
    # An empty DUET_WORKER_* means "the default" (compose passes `${DUET_EVAL_LIMIT:-}`: all examples).
    model_config = SettingsConfigDict(env_prefix="DUET_WORKER_", extra="ignore", env_ignore_empty=True)

    # what to watch and for which run
    watch: Path | None = None  # checkpoint root; None = only serve jobs already queued
    run: str | None = None
    base_model: Path | None = None  # evaluated first as the step-0 baseline; base of LoRA adapters
    base_priority: int = 10
    poll: bool = False  # no file-system events, timed rescans only (NFS, Docker Desktop)
    rescan_interval_s: float = Field(10.0, gt=0)
    reconcile_interval_s: float = Field(60.0, gt=0)
    settle_s: float = Field(1.0, ge=0)  # debounce after a file event before rescanning
    # "auto": once any checkpoint under the root carries duet's marker, unmarked dirs are partial
    # writes; "never": HF/TRL dirs without marker count once complete and unchanged across two scans
    require_marker: Literal["auto", "always", "never"] = "auto"
    scan_depth: int = Field(3, ge=1)

    # what to evaluate on (the spec of the jobs this worker enqueues)
    # A suite file (shared.suite): several named evals per checkpoint, each with its own sampling
    # and cadence; replaces task/limit/sampling below for the jobs this worker enqueues.
    suite: Path | None = None
    task: str = "ones_digit"
    # Options of that task, e.g. {"answer_format": "r1_zero"} to grade like the trainer trains
    # (DUET_WORKER_TASK_OPTIONS is JSON; `duet worker --task-option answer_format=r1_zero`).
    task_options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)
    n: int = Field(1, ge=1)
    seed: int = 0

    # engine
    backend: Literal["vllm", "hf"] = "vllm"
    dtype: str = "auto"
    gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    max_model_len: int | None = None
    # vLLM parallelism on one node: shard the model over GPUs (tensor) and/or run whole replicas
    # side by side (data); e.g. 4 GPUs = tp 2 x dp 2. One worker then uses them all.
    tensor_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1)
    # None: LoRA on only when the run evaluates adapters (a LoRA checkpoint under --watch at start,
    # or the first adapter job, which rebuilds the engine once with LoRA on). Off keeps full-weight
    # reload on the plain model path.
    enable_lora: bool | None = None
    max_lora_rank: int = 64  # one of shared.lora.VLLM_LORA_RANKS
    # None: CUDA graphs on CUDA (eager off), eager on CPU; see `resolved_enforce_eager`.
    enforce_eager: bool | None = None
    verify_swaps: bool = True  # parameter probes + the end-to-end canary after every swap
    # An engine without in-place reload (vLLM < 0.16) refuses to start unless this is set; then
    # every checkpoint rebuilds the engine, and each job records that.
    allow_rebuild: bool = False
    top_logprobs: int = Field(5, ge=1)  # top-k logprobs per token for the entropy metric
    hf_batch_size: int = Field(32, ge=1)
    hf_device: str = "auto"  # HF backend: "auto" = cuda when available, else cpu; or "cuda:1", "cpu"
    gen_chunk: int = Field(512, ge=1)  # prompts per generate call; SIGTERM is honoured between chunks

    # job loop
    worker_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-worker")
    lease_seconds: float = Field(120.0, gt=0)
    claim_interval_s: float = Field(2.0, gt=0)
    any_run: bool = False  # claim jobs of every run, not only --run
    spool_path: Path = Path(".duet/worker_spool.db")
    exit_when_idle: bool = False  # exit once nothing is queued (batch mode, tests)

    @field_validator("max_lora_rank")
    @classmethod
    def _vllm_rank(cls, v: int) -> int:
        return check_max_lora_rank(v)

    def resolved_enforce_eager(self) -> bool:
        """The configured value, else eager only where there is no CUDA (CUDA graphs are several
        times faster to decode with; the CPU backend has none)."""
        if self.enforce_eager is not None:
            return self.enforce_eager
        return not cuda_available()


def cuda_available() -> bool:
    import torch  # here, not at module level: the CLI imports these settings without torch

    return torch.cuda.is_available()
