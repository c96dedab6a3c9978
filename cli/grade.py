"""`duet grade` (grade JSONL on stdin) and `duet regrade JOB|--run RUN` (re-score stored jobs).

Only parsing and printing live here: grading is `shared.grading`, re-grading a stored job is
`shared.grading.regrade`. Light at import: grading and the ledger client load inside the commands.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import typer

from shared.grading.answer_format import AnswerFormat

app = typer.Typer()


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


def grade_stream(fmt: AnswerFormat, lines: Iterable[str], out: TextIO, *, lenient: bool = False) -> None:
    """Grade JSONL records from `lines` to `out`, one output line per input line, flushed as it goes."""
    from shared.grading import grade_response

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        response, gold, finish = _parse_line(line, lineno)
        grade = grade_response(response, gold, fmt, finish, lenient=lenient)
        out.write(json.dumps(grade.to_dict()) + "\n")
        out.flush()


@app.command("grade")
def grade(
    fmt: AnswerFormat = typer.Option(..., "--format", "-f", help="Answer format of the responses."),
    lenient: bool = typer.Option(
        False, "--lenient", help="Relax the reference format rules (see docs/grading.md); off by default."
    ),
) -> None:
    """Grade JSONL {"response", "gold"[, "finish_reason"]} from stdin; write JSONL grades to stdout
    (correct = strict, answer_correct = format-free, format_ok, extracted, category)."""
    try:
        grade_stream(fmt, sys.stdin, sys.stdout, lenient=lenient)
    except ValueError as e:
        typer.echo(f"duet grade: {e}", err=True)
        raise typer.Exit(1) from None


@app.command("regrade")
def regrade(
    job: int | None = typer.Argument(None, help="Job id whose stored samples to re-grade."),
    run: str | None = typer.Option(None, "--run", help="Re-grade every finished job of this run."),
    fmt: AnswerFormat | None = typer.Option(
        None, "--format", "-f", help="Answer format; default: each job's task format."
    ),
    page_size: int = typer.Option(500, min=1, max=10_000, help="Samples fetched per request."),
) -> None:
    """Re-grade stored samples (a job, or every job of --run) with the current grader, both verdicts,
    and store the new metrics; nothing is generated (admin token in DUET_API_TOKEN). One JSON line per job."""
    from shared.client import DuetClientError, LedgerClient
    from shared.grading.regrade import regrade_job, regrade_run

    if (job is None) == (run is None):
        typer.echo("duet regrade: give a JOB id or --run RUN (one of them)", err=True)
        raise typer.Exit(2)
    try:
        with LedgerClient() as client:
            if job is not None:
                summaries = [regrade_job(client, job, fmt, page_size=page_size)]
            else:
                summaries = regrade_run(client, run, fmt, page_size=page_size)
    except (DuetClientError, ValueError) as e:
        typer.echo(f"duet regrade: {e}", err=True)
        raise typer.Exit(1) from None
    for summary in summaries:
        typer.echo(json.dumps(summary.to_dict()))
