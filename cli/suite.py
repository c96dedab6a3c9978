"""`duet enqueue --suite FILE`: queue a suite's entries for one checkpoint, or backfill a suite over
every checkpoint a run already has (`--run RUN --all`), newest first, with each entry's cadence."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from shared.client import LedgerClient
from shared.schemas import CheckpointState, EnqueueResult
from shared.suite import SuiteError, checkpoint_ordinals, is_final_checkpoint, load_suite


def _fail(msg: str) -> None:
    typer.echo(f"duet: {msg}", err=True)
    raise typer.Exit(1)


def enqueue_suite(
    client: LedgerClient,
    suite_path: Path,
    path: str | None,
    run: str | None,
    step: int | None,
    all_checkpoints: bool,
    priority: int,
    force: bool,
    as_json: bool,
) -> None:
    from shared.grading import GRADER_VERSION

    try:
        suite = load_suite(suite_path)
    except SuiteError as e:
        return _fail(str(e))
    results: list[EnqueueResult] = []
    if all_checkpoints:
        if run is None or path is not None:
            return _fail("--all backfills a run: give --run RUN and no PATH")
        checkpoints = sorted(client.list_checkpoints(run), key=lambda c: c.step, reverse=True)
        if not checkpoints:
            return _fail(f"run {run!r} has no checkpoints yet")
        ordinals = checkpoint_ordinals([c.step for c in checkpoints])
        for ck in checkpoints:  # newest first: the freshest numbers arrive first
            if ck.state != CheckpointState.present:  # deleted by retention: nothing left to load
                why = f"checkpoint {ck.id} is {ck.state.value} by retention"
                typer.echo(f"step {ck.step}: skipped, {why}", err=True)
                continue
            final = ck is checkpoints[0] and is_final_checkpoint(ck.path)
            for entry in suite.due_entries(ordinals[ck.step], final=final):
                spec = entry.spec(GRADER_VERSION)
                results.append(client.enqueue(spec, checkpoint_id=ck.id, priority=priority, force=force))
    else:
        if path is None:
            return _fail("give a checkpoint PATH, or --run RUN --all to backfill every checkpoint")
        for entry in suite.entries:
            spec = entry.spec(GRADER_VERSION)
            results.append(
                client.enqueue(
                    spec, path=os.path.abspath(path), run=run, step=step, priority=priority, force=force
                )
            )
    if as_json:
        import json

        typer.echo(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
        return
    for r in results:
        verb = "queued" if r.created else f"already {r.job.status}"
        typer.echo(f"job {r.job.id} {verb}: step {r.job.step} entry {r.job.spec.result_name}")
    new = sum(r.created for r in results)
    typer.echo(f"{new} new job(s), {len(results) - new} already there")
