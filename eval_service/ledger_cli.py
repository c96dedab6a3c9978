"""Ledger commands of `duet`: serve the ledger, and query/drive it over HTTP.

Only the client (httpx + pydantic) is imported at start; `serve` imports the server when run.
Errors are one line on stderr with exit code 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer

from shared.client import AuthError, LedgerClient, LedgerError, LedgerUnavailable

JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")


def _fail(msg: str) -> None:
    typer.echo(f"duet: {msg}", err=True)
    raise typer.Exit(1)


@contextmanager
def _client() -> Iterator[LedgerClient]:
    from shared.config import ClientSettings

    s = ClientSettings()
    c = LedgerClient(s.api_url, s.api_token, retry_for_s=2.0, settings=s)
    try:
        yield c
    except LedgerUnavailable:
        _fail(f"cannot reach the duet API at {s.api_url} — is `duet serve` running?")
    except AuthError as e:
        hint = "check DUET_API_TOKEN" if e.status == 401 else "this needs the admin token"
        _fail(f"not allowed ({e.status}): {_detail(e)} — {hint}")
    except LedgerError as e:
        _fail(f"{_detail(e)} (HTTP {e.status})")
    finally:
        c.close()


def _detail(e: LedgerError) -> str:
    from shared.client import _detail_text

    return _detail_text(e.detail)


def _dump(data: Any) -> None:
    def plain(x: Any) -> Any:
        return x.model_dump(mode="json") if hasattr(x, "model_dump") else x

    payload = [plain(x) for x in data] if isinstance(data, list) else plain(data)
    typer.echo(json.dumps(payload, indent=2))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for col in columns:
        t.add_column(col)
    for r in rows:
        t.add_row(*["" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in r])
    Console().print(t)


def register(app: typer.Typer) -> None:
    cmd: Callable = app.command

    @cmd()
    def serve(
        host: str = typer.Option(None, help="Interface to bind (DUET_HOST, default 127.0.0.1)."),
        port: int = typer.Option(None, help="Port (DUET_PORT, default 8477)."),
        db: str = typer.Option(None, help="SQLite file or SQLAlchemy URL (DUET_DB_URL)."),
    ) -> None:
        """Run the ledger API server (SQLite + W&B outbox)."""
        from eval_service.api.serve import serve as run_server

        try:
            run_server(host=host, port=port, db=db)
        except ValueError as e:
            _fail(str(e))

    @cmd()
    def runs(as_json: bool = JsonOpt) -> None:
        """List runs."""
        with _client() as c:
            data = c.list_runs()
        if as_json:
            return _dump(data)
        _table(
            "runs",
            ["id", "name", "primary task", "base model", "wandb id", "created"],
            [
                [r.id, r.name, r.primary_task, r.base_model, r.wandb_run_id, f"{r.created_at:%Y-%m-%d %H:%M}"]
                for r in data
            ],
        )

    @cmd()
    def scores(
        run: str = typer.Argument(..., help="Run name or id."),
        task: str = typer.Option(None, help="Task (default: the run's only or primary task)."),
        as_json: bool = JsonOpt,
    ) -> None:
        """Every checkpoint of a run with its eval metrics, in step order."""
        with _client() as c:
            data = c.scores(run, task=task)
        if as_json:
            return _dump(data)
        from rich.console import Console

        from shared.tables import scores_table

        Console().print(scores_table(data, title=f"scores of {run}"))

    @cmd()
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
        with _client() as c:
            data = c.best(run, metric, mode, task)  # type: ignore[arg-type]
        if as_json:
            return _dump(data)
        from rich.console import Console

        from shared.tables import metrics_table

        Console().print(metrics_table(data.row, title=f"best of {run} by {data.metric} ({data.mode})"))
        typer.echo(f"step {data.row.step}, checkpoint {data.row.checkpoint_id}: {data.row.path}")

    @cmd()
    def compare(
        a: int = typer.Argument(..., help="Checkpoint id A."),
        b: int = typer.Argument(..., help="Checkpoint id B."),
        task: str = typer.Option(None),
        as_json: bool = JsonOpt,
    ) -> None:
        """Two checkpoints side by side (delta = B - A)."""
        with _client() as c:
            data = c.compare(a, b, task)
        if as_json:
            return _dump(data)
        keys = sorted(set(data.a.metrics) | set(data.b.metrics))
        rows = [[k, data.a.metrics.get(k), data.b.metrics.get(k), data.delta.get(k)] for k in keys]
        _table(f"step {data.a.step} vs step {data.b.step}", ["metric", "A", "B", "B - A"], rows)

    @cmd()
    def enqueue(
        path: str = typer.Argument(..., help="Checkpoint directory (under the server's checkpoint root)."),
        task: str = typer.Option(..., help="Eval task name."),
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
        """Queue an eval job for a checkpoint."""
        from pydantic import ValidationError

        from shared.schemas import EvalSpec, SamplingSpec

        try:
            spec = EvalSpec(
                task=task,
                limit=limit,
                sampling=SamplingSpec(max_tokens=max_tokens, temperature=temperature, n=n),
            )
        except ValidationError as e:
            err = e.errors()[0]
            _fail(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}")
        with _client() as c:
            res = c.enqueue(
                spec, path=os.path.abspath(path), run=run, step=step, priority=priority, force=force
            )
        if as_json:
            return _dump(res)
        j = res.job
        verb = "queued" if res.created else f"already {j.status}"
        typer.echo(
            f"job {j.id} {verb}: run {j.run_id} step {j.step} task {j.spec.task} ({j.checkpoint_path})"
        )

    @cmd()
    def jobs(
        status: str = typer.Option(None, help="queued, leased, done, dead or cancelled."),
        run: str = typer.Option(None, help="Run name or id."),
        limit: int = typer.Option(100),
        as_json: bool = JsonOpt,
    ) -> None:
        """List eval jobs, newest first."""
        with _client() as c:
            data = c.list_jobs(status=status, run=run, limit=limit)
        if as_json:
            return _dump(data)
        _table(
            "jobs",
            ["id", "run", "step", "task", "status", "prio", "attempt", "worker", "last error"],
            [
                [j.id, j.run_id, j.step, j.spec.task, j.status.value, j.priority,
                 f"{j.attempt}/{j.max_attempts}", j.lease_owner, (j.last_error or "")[:60]]
                for j in data
            ],
        )  # fmt: skip

    @cmd()
    def cancel(job: int = typer.Argument(..., help="Job id."), as_json: bool = JsonOpt) -> None:
        """Cancel a queued or running job."""
        with _client() as c:
            j = c.cancel(job)
        if as_json:
            return _dump(j)
        typer.echo(f"job {j.id} {j.status.value}")

    @cmd()
    def samples(
        job: int = typer.Argument(..., help="Job id."),
        failed: bool = typer.Option(False, "--failed", help="Only incorrect answers."),
        category: str = typer.Option(None, help="Only this category (e.g. wrong_answer)."),
        limit: int = typer.Option(20),
        offset: int = typer.Option(0),
        as_json: bool = JsonOpt,
    ) -> None:
        """Generated answers of a job with their grading."""
        with _client() as c:
            page = c.samples(
                job, correct=False if failed else None, category=category, offset=offset, limit=limit
            )
        if as_json:
            return _dump(page)
        _table(
            f"job {job}: {len(page.items)} of {page.total} samples from {offset}",
            ["#", "ok", "category", "gold", "extracted", "response"],
            [
                [s.index, "yes" if s.correct else "no", s.category, s.gold, s.extracted,
                 s.response.replace("\n", " ")[:80]]
                for s in page.items
            ],
        )  # fmt: skip


if __name__ == "__main__":  # python -m eval_service.ledger_cli
    _app = typer.Typer(no_args_is_help=True)
    register(_app)
    sys.exit(_app())
