"""Every table the CLI prints (`duet runs/jobs/samples/compare/scores/best`, `duet up`): built here,
one renderer. Scripts use `--json`, which carries every field and metric."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from shared.schemas import Algorithm, CheckpointState, ScoreRow

# The headline columns; every other metric is in --json and in W&B.
HEADLINE = [
    ("accuracy", "eval/accuracy", "{:.3f}"),
    ("answer acc", "eval/answer_accuracy", "{:.3f}"),
    ("format acc", "eval/format_accuracy", "{:.3f}"),
    ("wrong ans", "eval/wrong_answer_rate", "{:.3f}"),
    ("format fail", "eval/format_failure_rate", "{:.3f}"),
    ("truncated", "eval/truncation_rate", "{:.3f}"),
    ("mean len", "eval/mean_length", "{:.1f}"),
    ("entropy", "eval/mean_entropy", "{:.3f}"),
]


def console() -> Console:
    """A console for tables: wide enough for the scores table when stdout is a file or a pipe
    (rich assumes 80 columns there); COLUMNS, when set, still wins."""
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(width=160 if piped else None)


def cell(value: Any) -> str:
    """One value as table text: nothing for None, 4 significant digits for floats."""
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A plain table: one header per column, each value rendered by `cell`."""
    rendered = Table(title=title)
    for column in columns:
        rendered.add_column(column)
    for row in rows:
        rendered.add_row(*[cell(v) for v in row])
    return rendered


def ckpt_cell(row: ScoreRow) -> str:
    """A checkpoint's id, marked when retention deleted its files (its results stay)."""
    if row.checkpoint_state == CheckpointState.present:
        return str(row.checkpoint_id)
    return f"{row.checkpoint_id} ({row.checkpoint_state.value})"


def scores_table(
    rows: list[ScoreRow], *, title: str = "Checkpoint scores", best_step: int | None = None
) -> Table:
    """One row per checkpoint: headline metrics, pass@k/maj@k when sampled, failure breakdown."""
    extra = sorted({k for r in rows for k in r.metrics if k.startswith(("eval/pass@", "eval/maj@"))})
    rendered = Table(title=title)
    rendered.add_column("ckpt", justify="right")
    rendered.add_column("step", justify="right")
    # A run with a stage after SFT (GRPO) has both on one step axis: each row says which it is.
    staged = any(r.algorithm is not None and r.algorithm is not Algorithm.sft for r in rows)
    if staged:
        rendered.add_column("stage")
    for name, _, _ in HEADLINE:
        rendered.add_column(name, justify="right")
    for key in extra:
        rendered.add_column(key.removeprefix("eval/"), justify="right")
    rendered.add_column("failure breakdown")
    rendered.add_column("load")  # how the worker loaded it: swap, rebuild, lora, initial
    rendered.add_column("grader")  # the grader version that produced the row's metrics
    for r in rows:
        metrics = r.metrics
        cells = [ckpt_cell(r), f"{r.step}{' *' if r.step == best_step else ''}"]
        if staged:
            cells.append(r.algorithm.value if r.algorithm is not None else "base" if r.step == 0 else "-")
        cells += [fmt.format(metrics[key]) if key in metrics else "-" for _, key, fmt in HEADLINE]
        cells += [f"{metrics[key]:.3f}" if key in metrics else "-" for key in extra]
        fails = {
            k.removeprefix("eval/fail/"): v
            for k, v in metrics.items()
            if k.startswith("eval/fail/") and v > 0
        }
        cells.append(", ".join(f"{k} {v:.2f}" for k, v in sorted(fails.items())) or "-")
        cells.append(r.load_mode.value if r.load_mode is not None else "-")
        cells.append(r.grader_version or "-")
        rendered.add_row(*cells)
    return rendered


def metrics_table(row: ScoreRow, *, title: str) -> Table:
    """Every metric of one checkpoint, one per line."""
    rendered = Table(title=title)
    rendered.add_column("metric")
    rendered.add_column("value", justify="right")
    for key in sorted(row.metrics):
        rendered.add_row(key, f"{row.metrics[key]:.4g}")
    return rendered


def compact_table(by_task: dict[str, list[ScoreRow]], *, title: str = "Scores per suite entry") -> Table:
    """One line per checkpoint, one accuracy column per suite entry (blank where the entry's
    cadence skipped that checkpoint), then each entry's flip rate since its previous checkpoint."""
    steps: dict[int, str] = {}  # step -> checkpoint id cell
    for rows in by_task.values():
        steps.update({r.step: ckpt_cell(r) for r in rows})
    values = {t: {r.step: r.metrics for r in rows} for t, rows in by_task.items()}
    rendered = Table(title=title)
    rendered.add_column("ckpt", justify="right")
    rendered.add_column("step", justify="right")
    for t in by_task:
        rendered.add_column(t, justify="right")
    for t in by_task:
        rendered.add_column(f"{t} flips", justify="right")
    for step in sorted(steps):
        cells = [steps[step], str(step)]
        for key in ("eval/accuracy", "eval/flip_rate"):
            for t in by_task:
                m = values[t].get(step)
                cells.append(f"{m[key]:.3f}" if m and key in m else "-")
        rendered.add_row(*cells)
    return rendered
