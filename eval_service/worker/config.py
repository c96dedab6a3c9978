"""Worker settings: one class, env prefix `DUET_WORKER_` (the ledger URL/token come from
`shared.config.ClientSettings`, i.e. `DUET_API_URL` / `DUET_API_TOKEN`)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    task: str = "ones_digit"
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
    enable_lora: bool = True
    max_lora_rank: int = 64
    enforce_eager: bool = True
    verify_swaps: bool = True
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
