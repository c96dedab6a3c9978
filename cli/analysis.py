"""Per-question analysis commands: `duet diff` (questions that flipped between two checkpoints),
`duet question` (one question across a run) and `duet export` (every sample, for pandas or lm-eval
tooling). Light at import: pandas loads inside `export --format parquet`."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from cli.ledger import JsonOpt, _ask, _client, _fail
from cli.tables import console, table
from shared.schemas import ExportRow

app = typer.Typer()

PAGE = 5000  # samples per request while exporting


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    parquet = "parquet"
    lm_eval = "lm-eval"  # the harness's --log_samples layout: samples_<task>_<timestamp>.jsonl


def _short(text: str | None, width: int = 70) -> str:
    flat = (text or "").replace("\n", " ")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@app.command()
def diff(
    a: int = typer.Argument(..., help="Checkpoint id A (the earlier one)."),
    b: int = typer.Argument(..., help="Checkpoint id B."),
    task: str = typer.Option(None, help="Suite entry / task (default: the run's only or headline one)."),
    as_json: bool = JsonOpt,
) -> None:
    """Questions whose verdict flipped between two checkpoints, both answers side by side."""
    if (data := _ask(lambda c: c.sample_flips(a, b, task), as_json)) is None:
        return
    for title, flips in (
        ("learned (wrong → right)", data.learned),
        ("forgotten (right → wrong)", data.forgotten),
    ):
        rows = [
            [
                f.question_id,
                f.a.gold,
                f.a.extracted,
                _short(f.a.response),
                f.b.extracted,
                _short(f.b.response),
            ]
            for f in flips
        ]
        console().print(
            table(
                f"{data.task}: {title}, step {data.a_step} → {data.b_step}: {len(flips)}",
                ["question", "gold", f"A {data.a_step}", "A response", f"B {data.b_step}", "B response"],
                rows,
            )
        )
    flipped = len(data.learned) + len(data.forgotten)
    rate = flipped / data.common if data.common else 0.0
    typer.echo(f"{flipped} of {data.common} common questions flipped ({rate:.1%})")


@app.command()
def question(
    run: str = typer.Argument(..., help="Run name or id."),
    question_id: str = typer.Argument(..., help="Question id (the task's example id, or its index)."),
    task: str = typer.Option(None, help="Suite entry / task (default: the run's only or headline one)."),
    as_json: bool = JsonOpt,
) -> None:
    """One question's verdict at every evaluated checkpoint of a run."""
    if (data := _ask(lambda c: c.question(run, question_id, task), as_json)) is None:
        return
    first = data[0].sample
    typer.echo(f"question {question_id}: {_short(first.prompt, 200)}\ngold: {first.gold}")
    console().print(
        table(
            f"{question_id} across {run}",
            ["step", "ckpt", "ok", "category", "extracted", "response"],
            [
                [v.step, v.checkpoint_id, "yes" if v.sample.correct else "no", v.sample.category,
                 v.sample.extracted, _short(v.sample.response)]
                for v in data
            ],
        )
    )  # fmt: skip


def fetch_all(client: Any, run: str, task: str | None) -> list[ExportRow]:
    rows: list[ExportRow] = []
    while True:
        page = client.run_samples(run, task, offset=len(rows), limit=PAGE)
        rows.extend(page.items)
        if not page.items or len(rows) >= page.total:
            return rows


def _record(row: ExportRow) -> dict[str, Any]:
    data = row.model_dump(mode="json")
    data["response_chars"] = len(row.response)
    data["prompt_chars"] = len(row.prompt)
    return data


def lm_eval_record(row: ExportRow) -> dict[str, Any]:
    """One sample in the harness's `--log_samples` shape (doc_id, doc, target, resps,
    filtered_resps, one field per metric), plus duet's checkpoint step and verdicts."""
    return {
        "doc_id": row.index,
        "doc": {"question_id": row.question_id, "prompt": row.prompt},
        "target": row.gold,
        "arguments": [[row.prompt, {}]],
        "resps": [[row.response]],
        "filtered_resps": [row.extracted if row.extracted is not None else "[invalid]"],
        "filter": "duet",
        "metrics": ["exact_match"],
        "exact_match": float(row.correct),
        "step": row.step,
        "checkpoint_id": row.checkpoint_id,
        "sample": row.sample,
        "category": row.category,
        "num_tokens": row.num_tokens,
    }


def write_export(rows: list[ExportRow], fmt: ExportFormat, out: Path, run: str) -> list[Path]:
    """Write `rows` as `fmt` to `out` (a file; for lm-eval a directory); returns the files written."""
    if fmt == ExportFormat.jsonl:
        with out.open("w") as f:
            for row in rows:
                f.write(json.dumps(_record(row)) + "\n")
        return [out]
    if fmt == ExportFormat.parquet:
        import pandas as pd

        pd.DataFrame([_record(r) for r in rows]).to_parquet(out, index=False)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y-%m-%dT%H-%M-%S.%f")
    written = []
    for task in dict.fromkeys(r.task for r in rows):
        path = out / f"samples_{task}_{stamp}.jsonl"
        with path.open("w") as f:
            for row in rows:
                if row.task == task:
                    f.write(json.dumps(lm_eval_record(row)) + "\n")
        written.append(path)
    return written


@app.command()
def export(
    run: str = typer.Argument(..., help="Run name or id."),
    task: str = typer.Option(None, help="Only this suite entry / task (default: every one)."),
    fmt: ExportFormat = typer.Option(ExportFormat.jsonl, "--format", help="jsonl, parquet or lm-eval."),
    out: Path = typer.Option(None, help="Output file (lm-eval: a directory); default <run>-samples.<ext>."),
) -> None:
    """Every sample of a run with its checkpoint step, verdicts, category and lengths."""
    default = {ExportFormat.jsonl: ".jsonl", ExportFormat.parquet: ".parquet", ExportFormat.lm_eval: ""}
    out = out or Path(f"{run}-samples{default[fmt]}")
    with _client() as client:
        rows = fetch_all(client, run, task)
    if not rows:
        _fail(f"run {run!r} has no samples" + (f" for task {task!r}" if task else ""))
    try:
        written = write_export(rows, fmt, out, run)
    except (OSError, ImportError) as e:
        _fail(f"cannot write {out}: {e}")
    typer.echo(f"{len(rows)} samples -> {', '.join(str(p) for p in written)}")
