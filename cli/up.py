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
from shared.schemas import Algorithm

# Shipped inside the package, so `duet up` works from any directory and any kind of install.
DEFAULT_CONFIG = Path(str(files("cli") / "configs" / "tiny.yaml"))
# The GRPO stage of `duet up --algorithm grpo`, from SFT step 300 (init_from_step) of the run.
DEFAULT_GRPO_CONFIG = Path(str(files("cli") / "configs" / "tiny-grpo.yaml"))
# Two entries: the full ones_digit eval on every checkpoint, a 50-question sampled probe every 2nd.
DEFAULT_SUITE = Path(str(files("cli") / "configs" / "suite-tiny.yaml"))
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
    task: str | None = typer.Option(None, help="eval task (given: this task alone, no suite); ones_digit"),
    limit: int | None = typer.Option(None, help="eval examples per checkpoint (given: no suite); 200"),
    backend: str = typer.Option("vllm", help="eval backend: vllm or hf"),
    max_tokens: int | None = typer.Option(
        None, help="max new tokens per eval answer (given: no suite); 64, ones_digit answers need ~35"
    ),
    suite: Path | None = typer.Option(
        None,
        help="eval suite (YAML); default: the built-in two-entry tiny suite (unless --task/--limit/--max-tokens)",
    ),
    single_task: bool = typer.Option(False, "--single-task", help="no suite: evaluate only --task/--limit"),
    algorithm: Algorithm = typer.Option(
        Algorithm.sft,
        help="sft, or grpo: SFT, then GRPO on the same run from an SFT checkpoint (the GRPO config's "
        "init_from_step, else the best)",
    ),
    grpo_config: Path | None = typer.Option(
        None, help="GRPO stage config (YAML); default: the built-in tiny GRPO config"
    ),
    grpo_set: list[str] = typer.Option(
        [], help="a GRPO stage override KEY=VALUE (repeatable), e.g. --grpo-set max_steps=20"
    ),
) -> None:
    """Run trainer, eval worker and ledger together on this machine (CPU, tiny model).

    Extra `--key value` flags go to `duet train` (e.g. `duet up --max_steps 60`); with
    `--algorithm grpo`, to its SFT stage (the GRPO stage takes --grpo-config / --grpo-set).
    """
    console = table_console()
    # One eval alone when asked for (--single-task, or one of its settings given without --suite).
    single = suite is None and (single_task or any(v is not None for v in (task, limit, max_tokens)))
    suite = None if single else (suite or DEFAULT_SUITE)
    task, limit, max_tokens = task or "ones_digit", limit or 200, max_tokens or 64
    try:
        grpo = _grpo_stage(algorithm, grpo_config, grpo_set)
        code = _up(
            console,
            ctx.args,
            config or DEFAULT_CONFIG,
            workdir,
            run,
            port,
            task,
            limit,
            backend,
            max_tokens,
            suite,
            grpo,
        )
    except UpError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _grpo_stage(algorithm: Algorithm, config: Path | None, overrides: list[str]) -> list[str] | None:
    """The GRPO stage's config and overrides as `duet train` arguments (None: SFT alone)."""
    if algorithm is not Algorithm.grpo:
        if config is not None or overrides:
            raise UpError("--grpo-config / --grpo-set: only with --algorithm grpo")
        return None
    config = config or DEFAULT_GRPO_CONFIG
    if not config.is_file():
        raise UpError(f"GRPO config file {config} not found (--grpo-config)")
    if bad := [o for o in overrides if "=" not in o or o.startswith("=")]:
        raise UpError(f"--grpo-set {bad[0]!r}: expected KEY=VALUE, e.g. max_steps=20")
    return ["--config", str(config), *(f"--{o}" for o in overrides)]


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
    suite: Path | None = None,
    grpo: list[str] | None = None,
) -> int:
    if not config.is_file():
        raise UpError(f"config file {config} not found")
    if not port_free(HOST, port):
        raise UpError(f"port {port} is in use (another `duet up` or `duet serve`?); pick one with --port")
    headline = task
    if suite is not None:
        from shared.suite import SuiteError, check_tasks, load_suite

        try:
            loaded = load_suite(suite)
            check_tasks(loaded, str(suite))
        except SuiteError as e:
            raise UpError(str(e)) from None
        headline = loaded.headline.name
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
            *(["--suite", str(suite)] if suite is not None else []),
        ),
        logs / f"worker-{run}.log",
        env,
    )  # fmt: skip
    # Retention asks for a final result of each suite entry due (by cadence) before it deletes.
    retention_suite = ["--retention.suite", str(suite)] if suite is not None else []
    trainer = Service(
        "trainer",
        duet_argv(
            "train", "--config", str(config), "--model", str(model), "--output_dir", str(checkpoints),
            "--run_name", run, "--resume", *train_args, *retention_suite,
        ),
        logs / f"trainer-{run}.log",
        env,
    )  # fmt: skip
    # (stage, its trainer, where it publishes): SFT, then with --algorithm grpo a GRPO stage that
    # continues the run's step axis from an SFT checkpoint the ledger names once every SFT checkpoint
    # is scored: the GRPO config's `init_from_step` of the run, else the run's best. Its checkpoints
    # go under the SFT dir, so the one worker watching it scores both.
    stages = [(Algorithm.sft, trainer, checkpoints)]
    if grpo is not None:
        grpo_dir = checkpoints / "grpo"
        stages.append((Algorithm.grpo, Service(
            "GRPO trainer",
            duet_argv(
                "train", *grpo, "--model", str(model), "--output_dir", str(grpo_dir), "--run_name", run,
                "--init_from_best", run, "--resume", *retention_suite,
            ),
            logs / f"trainer-grpo-{run}.log",
            env,
        ), grpo_dir))  # fmt: skip
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
        console.print(f"dashboard: {url}/runs/{run} (live; all runs at {url}/)")
        client.create_run(run, base_model=str(model), primary_task=headline)
        worker.start()
        trainer.start()
        console.print(f"worker and trainer started (logs in {logs}); Ctrl-C stops everything")
        progress = Progress()
        trainer_done_at: float | None = None
        current = 0  # index into stages
        with Live(progress.table(run, True), console=console, refresh_per_second=2, transient=False) as live:
            while not interrupted:
                stage, trainer, _ = stages[current]
                progress.stage = stage
                poll(client, run, progress)
                live.update(progress.table(run, trainer.running()))
                for svc in (api, worker):
                    if not svc.running():
                        raise UpError(f"the {svc.name} exited unexpectedly; last log lines:\n{svc.tail()}")
                if not trainer.running():
                    if trainer.proc and trainer.proc.returncode != 0:
                        raise UpError(
                            f"{stage.value} training failed (exit {trainer.proc.returncode}); last log "
                            f"lines:\n{trainer.tail()}"
                        )
                    trainer_done_at = trainer_done_at or time.monotonic()
                    if all_scored(client, run, [d for _, _, d in stages[: current + 1]]):
                        if current + 1 == len(stages):
                            break
                        current, trainer_done_at = current + 1, None
                        stages[current][1].start()  # GRPO: its start is a scored SFT checkpoint
                        live.console.print(
                            f"SFT stage scored; GRPO stage started (log {stages[current][1].log})"
                        )
                        continue
                    if time.monotonic() - trainer_done_at > UNSCORED_AFTER_TRAINING_S:
                        raise UpError(
                            f"checkpoints still unscored 5 min after training ended; see {worker.log}"
                        )
                time.sleep(1.0)  # refresh rate of the live view, not synchronisation
        if interrupted:
            console.print("stopping (Ctrl-C)…")
            return 130
        final_report(console, client, run, workdir, _stage_starts(stages))
        return 0
    except DuetClientError as e:
        raise UpError(f"ledger API problem: {e}") from None
    finally:
        for svc in (*(t for _, t, _ in stages), worker, api):
            svc.stop()
        client.close()
        signal.signal(signal.SIGINT, previous)


def _stage_starts(stages: list[tuple[Algorithm, Service, Path]]) -> dict[Algorithm, int]:
    """The step each later stage started from, as its trainer recorded it (the stage record)."""
    from trainer_service.grpo_start import read_stage_record

    starts = {}
    for stage, _, directory in stages[1:]:
        record = read_stage_record(directory)
        if record is not None and record.get("parent_step") is not None:
            starts[stage] = int(record["parent_step"])
    return starts


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
