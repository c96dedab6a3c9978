"""Ledger commands of `duet`: serve the ledger, and query/drive it over HTTP.

Only the client (httpx + pydantic) is imported at start; `serve` imports the server when run.
Errors are one line on stderr with exit code 1, never a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer

from cli.tables import compact_table, console, metrics_table, scores_table, table
from shared.client import AuthError, LedgerClient, LedgerError, LedgerUnavailable, error_detail
from shared.schemas import JobStatus

app = typer.Typer()

T = TypeVar("T")

JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")


def _fail(msg: str) -> NoReturn:
    typer.echo(f"duet: {msg}", err=True)
    raise typer.Exit(1)


@contextmanager
def _client() -> Iterator[LedgerClient]:
    """A client from DUET_API_URL/DUET_API_TOKEN; any ledger error inside becomes one line and exit 1."""
    from shared.config import ClientSettings

    settings = ClientSettings()
    client = LedgerClient(settings.api_url, settings.api_token, retry_for_s=2.0, settings=settings)
    try:
        yield client
    except LedgerUnavailable as e:
        if e.status is not None:
            _fail(f"the duet API at {settings.api_url} keeps answering HTTP {e.status}; try again later")
        _fail(f"cannot reach the duet API at {settings.api_url} — is `duet serve` running?")
    except AuthError as e:
        hint = "check DUET_API_TOKEN" if e.status == 401 else "this needs the admin token"
        _fail(f"not allowed ({e.status}): {error_detail(e)} — {hint}")
    except LedgerError as e:
        _fail(f"{error_detail(e)} (HTTP {e.status})")
    finally:
        client.close()


def _dump(data: Any) -> None:
    def plain(x: Any) -> Any:
        return x.model_dump(mode="json") if hasattr(x, "model_dump") else x

    payload = [plain(x) for x in data] if isinstance(data, list) else plain(data)
    typer.echo(json.dumps(payload, indent=2))


def _ask(call: Callable[[LedgerClient], T], as_json: bool) -> T | None:
    """One ledger call for a command with --json: its answer, or None once it is printed as JSON
    (the command has nothing left to show)."""
    with _client() as client:
        data = call(client)
    if as_json:
        _dump(data)
        return None
    return data


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to bind (DUET_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (DUET_PORT, default 8477)."),
    db: str = typer.Option(None, help="SQLite file or SQLAlchemy URL (DUET_DB_URL)."),
) -> None:
    """Run the ledger API server (SQLite + W&B outbox)."""
    from eval_service.api.migrate import MigrationError
    from eval_service.api.serve import serve as serve_ledger

    try:
        serve_ledger(host=host, port=port, db=db)
    except (ValueError, MigrationError) as e:  # unsafe settings, a database too new to serve
        _fail(str(e))


@app.command()
def runs(as_json: bool = JsonOpt) -> None:
    """List runs."""
    with _client() as client:
        data = client.list_runs()
    if as_json:
        return _dump(data)
    console().print(
        table(
            "runs",
            ["id", "name", "primary task", "base model", "wandb id", "created"],
            [
                [r.id, r.name, r.primary_task, r.base_model, r.wandb_run_id, f"{r.created_at:%Y-%m-%d %H:%M}"]
                for r in data
            ],
        )
    )


@app.command()
def scores(
    run: str = typer.Argument(..., help="Run name or id."),
    task: str = typer.Option(None, help="Suite entry / task (default: the run's only or primary one)."),
    compact: bool = typer.Option(
        False, "--compact", help="One line per checkpoint, one accuracy column per suite entry."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Every checkpoint of a run with its eval metrics, in step order."""
    with _client() as client:
        if compact:
            by_task = {t: client.scores(run, task=t) for t in ([task] if task else client.run_tasks(run))}
        else:
            data = client.scores(run, task=task)
    if compact:
        if as_json:
            plain = {t: [r.model_dump(mode="json") for r in rows] for t, rows in by_task.items()}
            return typer.echo(json.dumps(plain, indent=2))
        return console().print(compact_table(by_task, title=f"scores of {run} per suite entry"))
    if as_json:
        return _dump(data)
    console().print(scores_table(data, title=f"scores of {run}" + (f" — {task}" if task else "")))


@app.command()
def best(
    run: str = typer.Argument(..., help="Run name or id."),
    metric: str = typer.Option("eval/accuracy", help="Metric key, e.g. eval/accuracy."),
    mode: str = typer.Option("max", help="max or min."),
    task: str = typer.Option(None),
    as_json: bool = JsonOpt,
) -> None:
    """The best checkpoint of a run by one metric."""
    if mode not in ("max", "min"):
        _fail(f"--mode must be max or min, not {mode!r}")
    with _client() as client:
        data = client.best(run, metric, mode, task)  # type: ignore[arg-type]
    if as_json:
        return _dump(data)
    console().print(metrics_table(data.row, title=f"best of {run} by {data.metric} ({data.mode})"))
    typer.echo(f"step {data.row.step}, checkpoint {data.row.checkpoint_id}: {data.row.path}")


@app.command()
def compare(
    a: int = typer.Argument(..., help="Checkpoint id A."),
    b: int = typer.Argument(..., help="Checkpoint id B."),
    task: str = typer.Option(None),
    as_json: bool = JsonOpt,
) -> None:
    """Two checkpoints side by side (delta = B - A)."""
    with _client() as client:
        data = client.compare(a, b, task)
    if as_json:
        return _dump(data)
    keys = sorted(set(data.a.metrics) | set(data.b.metrics))
    rows = [[k, data.a.metrics.get(k), data.b.metrics.get(k), data.delta.get(k)] for k in keys]
    console().print(table(f"step {data.a.step} vs step {data.b.step}", ["metric", "A", "B", "B - A"], rows))


@app.command()
def enqueue(
    path: str = typer.Argument(None, help="Checkpoint directory (under the server's checkpoint root)."),
    task: str = typer.Option(None, help="Eval task name."),
    suite: Path = typer.Option(None, help="Suite file: queue its entries instead of one --task."),
    all_checkpoints: bool = typer.Option(
        False, "--all", help="With --suite and --run: every checkpoint of the run, newest first."
    ),
    run: str = typer.Option(None, help="Run to register it under (default: from the duet marker)."),
    step: int = typer.Option(None, help="Step (default: from checkpoint-N or the marker)."),
    priority: int = typer.Option(0),
    force: bool = typer.Option(False, help="Queue even if an equal job exists."),
    limit: int = typer.Option(None, help="Number of eval examples (default all)."),
    max_tokens: int = typer.Option(256),
    temperature: float = typer.Option(0.0),
    n: int = typer.Option(1, help="Generations per example."),
    as_json: bool = JsonOpt,
) -> None:
    """Queue an eval job for a checkpoint (or a suite's entries, or backfill a suite with --all)."""
    from pydantic import ValidationError

    from shared.schemas import EvalSpec, SamplingSpec

    if suite is not None:
        from cli.suite import enqueue_suite

        with _client() as client:
            return enqueue_suite(client, suite, path, run, step, all_checkpoints, priority, force, as_json)
    if task is None or path is None:
        _fail("give a checkpoint PATH and --task, or --suite FILE (with PATH, or --run RUN --all)")

    try:
        spec = EvalSpec(
            task=task,
            limit=limit,
            sampling=SamplingSpec(max_tokens=max_tokens, temperature=temperature, n=n),
        )
    except ValidationError as e:
        err = e.errors()[0]
        _fail(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}")
    with _client() as client:
        res = client.enqueue(
            spec, path=os.path.abspath(path), run=run, step=step, priority=priority, force=force
        )
    if as_json:
        return _dump(res)
    job = res.job
    verb = "queued" if res.created else f"already {job.status}"
    typer.echo(
        f"job {job.id} {verb}: run {job.run_id} step {job.step} task {job.spec.task} ({job.checkpoint_path})"
    )


@app.command()
def jobs(
    status: JobStatus | None = typer.Option(None, help="Only jobs in this state."),
    run: str = typer.Option(None, help="Run name or id."),
    limit: int = typer.Option(100),
    as_json: bool = JsonOpt,
) -> None:
    """List eval jobs, newest first."""
    with _client() as client:
        data = client.list_jobs(status=None if status is None else status.value, run=run, limit=limit)
    if as_json:
        return _dump(data)
    console().print(
        table(
            "jobs",
            ["id", "run", "step", "task", "status", "prio", "attempt", "worker", "last error"],
            [
                [j.id, j.run_id, j.step, j.spec.task, j.status.value, j.priority,
                 f"{j.attempt}/{j.max_attempts}", j.lease_owner, (j.last_error or "")[:60]]
                for j in data
            ],
        )
    )  # fmt: skip


@app.command()
def cancel(job: int = typer.Argument(..., help="Job id."), as_json: bool = JsonOpt) -> None:
    """Cancel a queued or running job."""
    if (cancelled := _ask(lambda c: c.cancel(job), as_json)) is not None:
        typer.echo(f"job {cancelled.id} {cancelled.status.value}")


@app.command()
def retry(job: int = typer.Argument(..., help="Job id."), as_json: bool = JsonOpt) -> None:
    """Queue a dead or cancelled job again (admin token). Enqueueing never revives one: a dead
    job stays dead until retried (or enqueued with --force)."""
    if (queued := _ask(lambda c: c.retry(job), as_json)) is not None:
        typer.echo(f"job {queued.id} {queued.status.value} (attempts allowed up to {queued.max_attempts})")


@app.command()
def samples(
    job: int = typer.Argument(..., help="Job id."),
    failed: bool = typer.Option(False, "--failed", help="Only incorrect answers."),
    category: str = typer.Option(None, help="Only this category (e.g. wrong_answer)."),
    limit: int = typer.Option(20),
    offset: int = typer.Option(0),
    as_json: bool = JsonOpt,
) -> None:
    """Generated answers of a job with their grading."""
    with _client() as client:
        page = client.samples(
            job, correct=False if failed else None, category=category, offset=offset, limit=limit
        )
    if as_json:
        return _dump(page)
    console().print(
        table(
            f"job {job}: {len(page.items)} of {page.total} samples from {offset}",
            ["#", "ok", "category", "gold", "extracted", "response"],
            [
                [s.index, "yes" if s.correct else "no", s.category, s.gold, s.extracted,
                 s.response.replace("\n", " ")[:80]]
                for s in page.items
            ],
        )
    )  # fmt: skip
