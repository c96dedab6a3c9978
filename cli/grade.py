"""`duet grade` (grade JSONL on stdin) and `duet regrade JOB` (re-score a stored job).

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


def grade_stream(fmt: AnswerFormat, lines: Iterable[str], out: TextIO) -> None:
    """Grade JSONL records from `lines` to `out`, one output line per input line, flushed as it goes."""
    from shared.grading import grade_response

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        response, gold, finish = _parse_line(line, lineno)
        grade = grade_response(response, gold, fmt, finish)
        out.write(json.dumps(grade.to_dict()) + "\n")
        out.flush()


@app.command("grade")
def grade(
    fmt: AnswerFormat = typer.Option(..., "--format", "-f", help="Answer format of the responses."),
) -> None:
    """Grade JSONL {"response", "gold"[, "finish_reason"]} from stdin; write JSONL grades to stdout."""
    try:
        grade_stream(fmt, sys.stdin, sys.stdout)
    except ValueError as e:
        typer.echo(f"duet grade: {e}", err=True)
        raise typer.Exit(1) from None


@app.command("regrade")
def regrade(
    job: int = typer.Argument(..., help="Job id whose stored samples to re-grade."),
    fmt: AnswerFormat | None = typer.Option(
        None, "--format", "-f", help="Answer format; default: the job's task format."
    ),
    page_size: int = typer.Option(500, min=1, max=10_000, help="Samples fetched per request."),
) -> None:
    """Re-grade a job's stored samples with the current grader and store the new metrics (admin token
    in DUET_API_TOKEN)."""
    from shared.client import DuetClientError, LedgerClient
    from shared.grading.regrade import regrade_job

    try:
        with LedgerClient() as client:
            summary = regrade_job(client, job, fmt, page_size=page_size)
    except (DuetClientError, ValueError) as e:
        typer.echo(f"duet regrade: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(summary.to_dict()))
