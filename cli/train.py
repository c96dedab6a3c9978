"""`duet train`, `duet train-sync`, `duet init-tiny-model`. Heavy imports stay inside the commands."""

from __future__ import annotations

import logging
from pathlib import Path

import typer


def _setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("duet").setLevel(logging.INFO)


app = typer.Typer()


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help="SFT-train a model (TRL), publishing checkpoints for the eval worker. Any config key can be "
    "overridden: --max_steps 20 --save_steps 10 --lora.r 8 ...",
)
def train_cmd(
    ctx: typer.Context,
    config: Path = typer.Option(None, "--config", "-c", help="YAML train config"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last published checkpoint"),
) -> None:
    from trainer_service.config import ConfigError, load_config, parse_overrides

    _setup_logging()
    try:
        cfg = load_config(config, parse_overrides(list(ctx.args)))
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None

    from trainer_service.train import train

    try:
        result = train(cfg, resume=resume)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"trained {result.run_name} to step {result.global_step}")
    typer.echo(f"  checkpoints: {result.output_dir} ({len(result.checkpoints)} kept after retention)")
    if result.resumed_from:
        typer.echo(f"  resumed from: {result.resumed_from}")
    if cfg.report:
        url = cfg.client_settings().api_url
        if result.run_id is not None:
            typer.echo(f"  ledger: {url} run id {result.run_id} (duet runs / duet scores {result.run_name})")
        if result.spool_pending:
            typer.echo(
                f"  WARNING: ledger at {url} unreachable; {result.spool_pending} records kept in "
                f"{result.spool_path}; send them with: duet train-sync {result.output_dir}",
                err=True,
            )


@app.command("train-sync", help="Send train metrics an earlier `duet train` left in its spool.")
def train_sync_cmd(
    output_dir: Path = typer.Argument(..., help="the run's output_dir"),
    timeout: float = typer.Option(60.0, help="seconds to keep trying"),
) -> None:
    from shared.config import ClientSettings
    from trainer_service.train import spool_path, sync_spool

    _setup_logging()
    if not spool_path(output_dir).is_file():
        typer.echo(f"error: no spool at {spool_path(output_dir)}", err=True)
        raise typer.Exit(2)
    summary = sync_spool(output_dir, ClientSettings(), timeout)
    typer.echo(f"sent {summary.sent} records; {summary.pending} still pending")
    if summary.pending:
        raise typer.Exit(1)


@app.command(
    "init-tiny-model", help="Build a tiny random-init Llama or Qwen2 + task tokenizer (seconds, CPU)."
)
def init_tiny_cmd(
    out: Path = typer.Argument(..., help="output dir"),
    task: str = typer.Option("ones_digit", help="shared.tasks task whose text trains the tokenizer"),
    seed: int = typer.Option(0),
    arch: str = typer.Option("llama", help="llama or qwen2 (Qwen2ForCausalLM, ChatML, tied embeddings)"),
    verify_vllm: bool = typer.Option(False, help="also load it in vLLM (spawned process) and generate"),
) -> None:
    from trainer_service.tiny_model import TinyArch, build_tiny_model, verify_with_vllm

    try:
        family = TinyArch(arch)
    except ValueError:
        raise typer.BadParameter(f"{arch!r}: one of {', '.join(TinyArch)}", param_hint="--arch") from None
    _setup_logging()
    path = build_tiny_model(out, task=task, seed=seed, arch=family)
    typer.echo(f"tiny model written to {path}")
    if verify_vllm:
        text = verify_with_vllm(path)
        typer.echo(f"vLLM loaded it and generated: {text!r}")
