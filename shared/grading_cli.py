"""`duet grade` (grade JSONL on stdin) and `duet regrade JOB` (re-score a stored job).

Light at import: only typer here; grading and the ledger client load inside the commands.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any

import typer


class FormatChoice(StrEnum):
    gsm8k = "gsm8k"
    boxed = "boxed"
    r1_zero = "r1_zero"
    freeform = "freeform"


def _parse_line(line: str, lineno: int) -> tuple[str, str, str | None]:
    try:
        obj: Any = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"line {lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"line {lineno}: expected a JSON object with 'response' and 'gold'")
    for field in ("response", "gold"):
        if field not in obj:
            raise ValueError(f"line {lineno}: missing field {field!r}")
    response, gold, finish = obj["response"], obj["gold"], obj.get("finish_reason")
    if not isinstance(response, str):
        raise ValueError(f"line {lineno}: field 'response' must be a string")
    if isinstance(gold, bool) or not isinstance(gold, str | int | float):
        raise ValueError(f"line {lineno}: field 'gold' must be a string or a number")
    if finish is not None and not isinstance(finish, str):
        raise ValueError(f"line {lineno}: field 'finish_reason' must be a string or null")
    return response, str(gold), finish


def grade_stream(fmt: str, lines: Any, out: Any) -> None:
    """Grade JSONL records from `lines` to `out`, one output line per input line, flushed as it goes."""
    from shared.grading import grade_response

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        response, gold, finish = _parse_line(line, lineno)
        g = grade_response(response, gold, fmt, finish)
        out.write(json.dumps(g.to_dict()) + "\n")
        out.flush()


def register(app: typer.Typer) -> None:
    @app.command("grade")
    def grade(
        fmt: FormatChoice = typer.Option(..., "--format", "-f", help="Answer format of the responses."),
    ) -> None:
        """Grade JSONL {"response", "gold"[, "finish_reason"]} from stdin; write JSONL grades to stdout."""
        try:
            grade_stream(fmt.value, sys.stdin, sys.stdout)
        except ValueError as e:
            typer.echo(f"duet grade: {e}", err=True)
            raise typer.Exit(1) from None

    @app.command("regrade")
    def regrade(
        job: int = typer.Argument(..., help="Job id whose stored samples to re-grade."),
        fmt: FormatChoice | None = typer.Option(
            None, "--format", "-f", help="Answer format; default: the job's task format."
        ),
        page_size: int = typer.Option(500, min=1, max=10_000, help="Samples fetched per request."),
    ) -> None:
        """Re-grade a job's stored samples with the current grader and store the new metrics (admin token
        in DUET_API_TOKEN)."""
        from shared.client import LedgerClient, LedgerError, LedgerUnavailable

        try:
            with LedgerClient() as client:
                summary = regrade_job(client, job, None if fmt is None else fmt.value, page_size=page_size)
        except (LedgerError, LedgerUnavailable, ValueError) as e:
            typer.echo(f"duet regrade: {e}", err=True)
            raise typer.Exit(1) from None
        typer.echo(json.dumps(summary))


def regrade_job(client: Any, job_id: int, fmt: str | None = None, *, page_size: int = 500) -> dict[str, Any]:
    """Pull every stored sample of `job_id`, grade it again, post the new metrics; returns a summary."""
    from shared.grading import GRADER_VERSION, aggregate, grade_response
    from shared.tasks import get_task

    job = client.get_job(job_id)
    if fmt is None:
        fmt = get_task(job.spec.task, **job.spec.options).answer_format
    samples = []
    offset = 0
    while True:
        page = client.samples(job_id, offset=offset, limit=page_size)
        samples.extend(page.items)
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    if not samples:
        raise ValueError(f"job {job_id} has no stored samples to regrade")
    regraded, changed = [], 0
    for s in samples:
        g = grade_response(s.response, s.gold, fmt, s.finish_reason)
        new = s.model_copy(
            update={
                "correct": g.correct,
                "format_ok": g.format_ok,
                "extracted": g.extracted,
                "category": g.category,
            }
        )
        changed += (new.correct, new.category) != (s.correct, s.category)
        regraded.append(new)
    metrics = aggregate(regraded, k=job.spec.sampling.n)
    result = client.regrade(job_id, grader_version=GRADER_VERSION, metrics=metrics, samples=regraded)
    return {
        "job": job_id,
        "format": fmt,
        "grader_version": GRADER_VERSION,
        "samples": len(regraded),
        "changed": changed,
        "accuracy": metrics.get("accuracy"),
        "result_grader_version": result.grader_version,
    }
