"""`duet worker`: the persistent eval worker. Heavy imports happen inside the command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

app = typer.Typer()


@app.command("worker")
def worker(
    watch: Path | None = typer.Option(None, help="Checkpoint root to watch for new checkpoints."),
    run: str | None = typer.Option(None, help="Run the checkpoints belong to (created if new)."),
    task: str | None = typer.Option(
        None, help="Eval task of the jobs this worker enqueues (default ones_digit)."
    ),
    suite: Path | None = typer.Option(
        None, help="Suite file (YAML): several named evals per checkpoint, each with its cadence."
    ),
    limit: int | None = typer.Option(None, help="Eval examples per checkpoint (default: all)."),
    backend: str | None = typer.Option(None, help="vllm (default) or hf."),
    poll: bool = typer.Option(
        False, "--poll", help="No file events: rescan on a timer only (NFS, Docker Desktop)."
    ),
    base_model: Path | None = typer.Option(
        None, help="Base model: evaluated first as step 0; base of LoRA adapters."
    ),
    max_tokens: int | None = typer.Option(None, help="Max new tokens per answer."),
    temperature: float | None = typer.Option(None, help="Sampling temperature (0 = greedy)."),
    n: int | None = typer.Option(None, help="Samples per example."),
    dtype: str | None = typer.Option(None, help="Engine dtype (auto, float32, bfloat16, ...)."),
    tensor_parallel_size: int | None = typer.Option(
        None, "--tensor-parallel-size", "--tp", min=1, help="vLLM: GPUs one model is sharded over."
    ),
    data_parallel_size: int | None = typer.Option(
        None, "--data-parallel-size", "--dp", min=1, help="vLLM: model replicas on this node."
    ),
    worker_id: str | None = typer.Option(None, help="Worker id written on leases."),
    spool_path: Path | None = typer.Option(None, help="Local outbox for results while the ledger is down."),
    rescan_interval_s: float | None = typer.Option(None, help="Seconds between timed rescans."),
    exit_when_idle: bool = typer.Option(False, "--exit-when-idle", help="Exit once no job is left."),
    task_option: list[str] = typer.Option(
        [], help="Task option KEY=VALUE (repeatable), e.g. answer_format=r1_zero; value parsed as YAML."
    ),
    lora: bool | None = typer.Option(
        None, "--lora/--no-lora", help="Engine LoRA on/off (default: on only when the run has adapters)."
    ),
    allow_rebuild: bool = typer.Option(
        False, "--allow-rebuild", help="Start even if the engine cannot hot-swap (rebuild per checkpoint)."
    ),
    log_level: str = typer.Option("INFO", help="Logging level."),
) -> None:
    """Watch a checkpoint root and evaluate every complete checkpoint exactly once (settings also
    from DUET_WORKER_* env vars; the ledger from DUET_API_URL / DUET_API_TOKEN)."""
    from eval_service.worker.config import WorkerSettings
    from eval_service.worker.main import run_worker, setup_logging

    given: dict[str, Any] = {
        k: v
        for k, v in {
            "watch": watch,
            "run": run,
            "task": task,
            "suite": suite,
            "limit": limit,
            "backend": backend,
            "base_model": base_model,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "n": n,
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "data_parallel_size": data_parallel_size,
            "worker_id": worker_id,
            "spool_path": spool_path,
            "rescan_interval_s": rescan_interval_s,
        }.items()
        if v is not None
    }
    if poll:
        given["poll"] = True
    if exit_when_idle:
        given["exit_when_idle"] = True
    if allow_rebuild:
        given["allow_rebuild"] = True
    if lora is not None:
        given["enable_lora"] = lora
    if task_option:
        given["task_options"] = _task_options(task_option)
    setup_logging(log_level.upper())
    try:
        settings = WorkerSettings(**given)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    raise typer.Exit(run_worker(settings))


def _task_options(pairs: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--task-option")
        out[key] = yaml.safe_load(value) if value else ""
    return out
