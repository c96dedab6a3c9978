"""`duet up`: the whole pair on one machine — ledger API, eval worker and trainer as separate
processes on CPU, with the tiny local model, the ones_digit task, local SQLite and offline W&B.

It is the embedded default and the first thing people run, so it owns the user-facing glue:
free-port and directory checks, live progress, a clean Ctrl-C, and the final scores table. The
processes are `cli.supervisor`'s, what is shown is `cli.up_view`'s.
"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import datetime
from importlib.resources import files
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live

from cli.supervisor import Service, duet_argv, port_free, service_env
from cli.tables import console as table_console
from cli.up_view import Progress, all_scored, final_report, poll
from shared.client import DuetClientError, LedgerClient, LedgerUnavailable

# Shipped inside the package, so `duet up` works from any directory and any kind of install.
DEFAULT_CONFIG = Path(str(files("cli") / "configs" / "tiny.yaml"))
HOST = "127.0.0.1"
UNSCORED_AFTER_TRAINING_S = 300.0

app = typer.Typer()


class UpError(Exception):
    """A setup problem with a one-line explanation for the user."""


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def up(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, help="train config (YAML, TRL key names); default: the built-in tiny config"
    ),
    workdir: Path = typer.Option(Path(".duet"), help="database, W&B files, checkpoints, logs, tiny model"),
    run: str | None = typer.Option(None, help="run name; an existing one is resumed (default: a new run)"),
    port: int = typer.Option(8477, help="port of the ledger API on 127.0.0.1"),
    task: str = typer.Option("ones_digit", help="eval task"),
    limit: int = typer.Option(200, help="eval examples per checkpoint"),
    backend: str = typer.Option("vllm", help="eval backend: vllm or hf"),
    max_tokens: int = typer.Option(64, help="max new tokens per eval answer (ones_digit answers need ~35)"),
) -> None:
    """Run trainer, eval worker and ledger together on this machine (CPU, tiny model).

    Extra `--key value` flags go to `duet train` (e.g. `duet up --max_steps 60`).
    """
    console = table_console()
    try:
        code = _up(
            console, ctx.args, config or DEFAULT_CONFIG, workdir, run, port, task, limit, backend, max_tokens
        )
    except UpError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _prepare_workdir(workdir: Path) -> Path:
    workdir = workdir.resolve()
    try:
        for sub in ("checkpoints", "wandb", "logs", "models"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UpError(f"cannot create work directory {workdir}: {e.strerror}") from None
    return workdir


def _up(
    console: Console,
    train_args: list[str],
    config: Path,
    workdir: Path,
    run: str | None,
    port: int,
    task: str,
    limit: int,
    backend: str,
    max_tokens: int,
) -> int:
    if not config.is_file():
        raise UpError(f"config file {config} not found")
    if not port_free(HOST, port):
        raise UpError(f"port {port} is in use (another `duet up` or `duet serve`?); pick one with --port")
    workdir = _prepare_workdir(workdir)
    run = run or datetime.now().strftime("tiny-%Y%m%d-%H%M%S")
    url = f"http://{HOST}:{port}"
    env = service_env(workdir, run, url)
    logs = workdir / "logs"
    model = workdir / "models" / f"tiny-{task}"
    checkpoints = workdir / "checkpoints" / run

    if not (model / "config.json").is_file():
        console.print(f"building the tiny local model in {model} …")
        built = subprocess.run(
            duet_argv("init-tiny-model", str(model), "--task", task), env=env, capture_output=True, text=True
        )
        if built.returncode != 0:
            raise UpError(f"could not build the tiny model:\n{built.stderr[-2000:]}")

    api = Service("api", duet_argv("serve", "--host", HOST, "--port", str(port)), logs / "api.log", env)
    worker = Service(
        "worker",
        duet_argv(
            "worker", "--watch", str(checkpoints), "--run", run, "--task", task, "--limit", str(limit),
            "--backend", backend, "--max-tokens", str(max_tokens), "--base-model", str(model),
        ),
        logs / f"worker-{run}.log",
        env,
    )  # fmt: skip
    trainer = Service(
        "trainer",
        duet_argv(
            "train", "--config", str(config), "--model", str(model), "--output_dir", str(checkpoints),
            "--run_name", run, "--resume", *train_args,
        ),
        logs / f"trainer-{run}.log",
        env,
    )  # fmt: skip
    interrupted = False

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, on_sigint)
    client = LedgerClient(url, env["DUET_API_TOKEN"], retry_for_s=0)
    try:
        api.start()
        _wait_healthy(api, client)
        console.print(f"ledger API on {url} (log {api.log})")
        client.create_run(run, base_model=str(model), primary_task=task)
        worker.start()
        trainer.start()
        console.print(f"worker and trainer started (logs in {logs}); Ctrl-C stops everything")
        progress = Progress()
        trainer_done_at: float | None = None
        with Live(progress.table(run, True), console=console, refresh_per_second=2, transient=False) as live:
            while not interrupted:
                poll(client, run, progress)
                live.update(progress.table(run, trainer.running()))
                for svc in (api, worker):
                    if not svc.running():
                        raise UpError(f"the {svc.name} exited unexpectedly; last log lines:\n{svc.tail()}")
                if not trainer.running():
                    if trainer.proc and trainer.proc.returncode != 0:
                        raise UpError(
                            f"training failed (exit {trainer.proc.returncode}); last log lines:\n"
                            f"{trainer.tail()}"
                        )
                    trainer_done_at = trainer_done_at or time.monotonic()
                    if all_scored(client, run, checkpoints):
                        break
                    if time.monotonic() - trainer_done_at > UNSCORED_AFTER_TRAINING_S:
                        raise UpError(
                            f"checkpoints still unscored 5 min after training ended; see {worker.log}"
                        )
                time.sleep(1.0)  # refresh rate of the live view, not synchronisation
        if interrupted:
            console.print("stopping (Ctrl-C)…")
            return 130
        final_report(console, client, run, workdir)
        return 0
    except DuetClientError as e:
        raise UpError(f"ledger API problem: {e}") from None
    finally:
        for svc in (trainer, worker, api):
            svc.stop()
        client.close()
        signal.signal(signal.SIGINT, previous)


def _wait_healthy(api: Service, client: LedgerClient, deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not api.running():
            raise UpError(f"the ledger API failed to start; last log lines:\n{api.tail()}")
        try:
            client.health()
            return
        except LedgerUnavailable:
            time.sleep(0.2)  # polling interval while the server boots
    raise UpError(f"the ledger API did not answer within {deadline_s:.0f}s; see {api.log}")
