"""`duet up`: the whole pair on one machine — ledger API, eval worker and trainer as separate
processes on CPU, with the tiny local model, the ones_digit task, local SQLite and offline W&B.

It is the embedded default and the first thing people run, so it owns the user-facing glue:
free-port and directory checks, live progress, a clean Ctrl-C, and the final scores table.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from shared.tables import scores_table

# Wide enough for the scores table when stdout is a file or a pipe (rich assumes 80 columns there).
console = Console(width=None if sys.stdout.isatty() else 160)
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "tiny.yaml"


class UpError(Exception):
    """A setup problem with a one-line explanation for the user."""


@dataclass
class Service:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child for its whole life
        # Own process group: Ctrl-C reaches `duet up` only, which then stops each child in order.
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None:
            return
        # SIGTERM to the service itself, not its group: the worker must stop its own engine
        # processes after releasing its job; killing those first would fail the job.
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Then nothing of the service may outlive it (stuck service, orphaned engine processes).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class Progress:
    step: int = 0
    loss: float | None = None
    checkpoints: int = 0
    jobs: dict[str, int] = field(default_factory=dict)
    latest: tuple[int, float] | None = None  # (step, accuracy)

    def table(self, run: str, trainer_alive: bool) -> Table:
        t = Table(title=f"duet up — run {run}", show_header=False, box=None)
        t.add_row(
            "trainer",
            f"step {self.step}"
            + (f"  loss {self.loss:.4f}" if self.loss is not None else "")
            + ("" if trainer_alive else "  (finished)"),
        )
        t.add_row("checkpoints seen", str(self.checkpoints))
        t.add_row("jobs", "  ".join(f"{k} {v}" for k, v in sorted(self.jobs.items())) or "-")
        if self.latest:
            t.add_row("latest accuracy", f"{self.latest[1]:.3f} at step {self.latest[0]}")
        return t


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def duet_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "shared.cli", *args]


def up(
    ctx: typer.Context,
    config: Path = typer.Option(DEFAULT_CONFIG, help="train config (YAML, TRL key names)"),
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
    try:
        code = _up(ctx.args, config, workdir, run, port, task, limit, backend, max_tokens)
    except UpError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _up(
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
    from shared.client import LedgerClient, LedgerError, LedgerUnavailable

    if not config.is_file():
        raise UpError(f"config file {config} not found")
    host = "127.0.0.1"
    if not port_free(host, port):
        raise UpError(f"port {port} is in use (another `duet up` or `duet serve`?); pick one with --port")
    workdir = workdir.resolve()
    try:
        for sub in ("checkpoints", "wandb", "logs", "models"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UpError(f"cannot create work directory {workdir}: {e.strerror}") from None

    run = run or datetime.now().strftime("tiny-%Y%m%d-%H%M%S")
    url = f"http://{host}:{port}"
    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("DUET_API_TOKEN", "duet-dev-token")
    env.setdefault("DUET_ADMIN_TOKEN", "duet-dev-admin")
    env.update(
        {
            "DUET_API_URL": url,
            "DUET_DB_URL": f"sqlite:///{workdir / 'duet.db'}",
            # The root holds the checkpoints and the base model (registered as the step-0 baseline).
            "DUET_CHECKPOINT_ROOT": str(workdir),
            "DUET_WORKER_SPOOL_PATH": str(workdir / "spool" / f"worker-{run}.db"),
            "DUET_WANDB_DIR": str(workdir / "wandb"),
            "VLLM_CPU_KVCACHE_SPACE": env.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
        }
    )
    logs = workdir / "logs"
    model = workdir / "models" / f"tiny-{task}"
    ckpts = workdir / "checkpoints" / run

    if not (model / "config.json").is_file():
        console.print(f"building the tiny local model in {model} …")
        built = subprocess.run(
            duet_argv("init-tiny-model", str(model), "--task", task), env=env, capture_output=True, text=True
        )
        if built.returncode != 0:
            raise UpError(f"could not build the tiny model:\n{built.stderr[-2000:]}")

    api = Service("api", duet_argv("serve", "--host", host, "--port", str(port)), logs / "api.log", env)
    worker = Service(
        "worker",
        duet_argv(
            "worker",
            "--watch",
            str(ckpts),
            "--run",
            run,
            "--task",
            task,
            "--limit",
            str(limit),
            "--backend",
            backend,
            "--max-tokens",
            str(max_tokens),
            "--base-model",
            str(model),
        ),
        logs / f"worker-{run}.log",
        env,
    )
    trainer = Service(
        "trainer",
        duet_argv(
            "train",
            "--config",
            str(config),
            "--model",
            str(model),
            "--output_dir",
            str(ckpts),
            "--run_name",
            run,
            "--resume",
            *train_args,
        ),
        logs / f"trainer-{run}.log",
        env,
    )
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
                _poll(client, run, progress)
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
                    if _all_scored(client, run, ckpts):
                        break
                    if time.monotonic() - trainer_done_at > 300:
                        raise UpError(
                            f"checkpoints still unscored 5 min after training ended; see {worker.log}"
                        )
                time.sleep(1.0)  # refresh rate of the live view, not synchronisation
        if interrupted:
            console.print("stopping (Ctrl-C)…")
            return 130
        _final_report(client, run, workdir)
        return 0
    except (LedgerUnavailable, LedgerError) as e:
        raise UpError(f"ledger API problem: {e}") from None
    finally:
        for svc in (trainer, worker, api):
            svc.stop()
        client.close()
        signal.signal(signal.SIGINT, previous)


def _wait_healthy(api: Service, client, deadline_s: float = 60.0) -> None:
    from shared.client import LedgerUnavailable

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


def _poll(client, run: str, p: Progress) -> None:
    from shared.client import LedgerError

    try:
        losses = client.train_metrics(run, key="train/loss")
        if losses:
            p.step, p.loss = losses[-1].step, losses[-1].value
        p.checkpoints = len(client.list_checkpoints(run))
        jobs = client.list_jobs(run=run)
        p.jobs = {}
        for j in jobs:
            p.jobs[j.status.value] = p.jobs.get(j.status.value, 0) + 1
        rows = [r for r in client.scores(run) if "eval/accuracy" in r.metrics]
        if rows:
            p.latest = (rows[-1].step, rows[-1].metrics["eval/accuracy"])
    except LedgerError:
        pass  # e.g. no results yet for `scores`; the next poll retries


def _all_scored(client, run: str, ckpts: Path) -> bool:
    """Every published checkpoint (marker present) plus the baseline has a finished job."""
    from shared.checkpoint import published_checkpoints

    published = {step for step, _ in published_checkpoints(ckpts)}
    jobs = client.list_jobs(run=run)
    finished = {j.step for j in jobs if j.status.value in ("done", "dead", "cancelled")}
    pending = any(j.status.value in ("queued", "leased") for j in jobs)
    return not pending and 0 in finished and published <= finished


def _final_report(client, run: str, workdir: Path) -> None:
    rows = client.scores(run)
    best = client.best(run, metric="eval/accuracy") if rows else None
    console.print(scores_table(rows, best_step=best.row.step if best else None))
    if best:
        base = next((r for r in rows if r.step == 0), None)
        base_acc = f"{base.metrics.get('eval/accuracy', float('nan')):.3f}" if base else "n/a"
        console.print(
            f"best checkpoint: step {best.row.step}  accuracy {best.row.metrics['eval/accuracy']:.3f}"
            f"  (baseline step 0: {base_acc})  {best.row.path}"
        )
    info = client.get_run(run)
    console.print(
        f"W&B run id {info.wandb_run_id} (offline files in {workdir / 'wandb'}; `wandb sync` uploads them)"
    )
    console.print(f"database {workdir / 'duet.db'}   logs {workdir / 'logs'}")


def register(app: typer.Typer) -> None:
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(up)
