"""Rich tables of ledger data for people (`duet scores`, `duet best`, the end of `duet up`).
Scripts use `--json`, which carries every metric."""

from __future__ import annotations

from rich.table import Table

from shared.schemas import ScoreRow

# The headline columns; every other metric is in --json and in W&B.
HEADLINE = [
    ("accuracy", "eval/accuracy", "{:.3f}"),
    ("format acc", "eval/format_accuracy", "{:.3f}"),
    ("wrong ans", "eval/wrong_answer_rate", "{:.3f}"),
    ("format fail", "eval/format_failure_rate", "{:.3f}"),
    ("truncated", "eval/truncation_rate", "{:.3f}"),
    ("mean len", "eval/mean_length", "{:.1f}"),
    ("entropy", "eval/mean_entropy", "{:.3f}"),
]


def scores_table(
    rows: list[ScoreRow], *, title: str = "Checkpoint scores", best_step: int | None = None
) -> Table:
    """One row per checkpoint: headline metrics, pass@k/maj@k when sampled, failure breakdown."""
    extra = sorted({k for r in rows for k in r.metrics if k.startswith(("eval/pass@", "eval/maj@"))})
    t = Table(title=title)
    t.add_column("ckpt", justify="right")
    t.add_column("step", justify="right")
    for name, _, _ in HEADLINE:
        t.add_column(name, justify="right")
    for key in extra:
        t.add_column(key.removeprefix("eval/"), justify="right")
    t.add_column("failure breakdown")
    for r in rows:
        m = r.metrics
        cells = [str(r.checkpoint_id), f"{r.step}{' *' if r.step == best_step else ''}"]
        cells += [fmt.format(m[key]) if key in m else "-" for _, key, fmt in HEADLINE]
        cells += [f"{m[key]:.3f}" if key in m else "-" for key in extra]
        fails = {
            k.removeprefix("eval/fail/"): v for k, v in m.items() if k.startswith("eval/fail/") and v > 0
        }
        cells.append(", ".join(f"{k} {v:.2f}" for k, v in sorted(fails.items())) or "-")
        t.add_row(*cells)
    return t


def metrics_table(row: ScoreRow, *, title: str) -> Table:
    """Every metric of one checkpoint, one per line."""
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for key in sorted(row.metrics):
        t.add_row(key, f"{row.metrics[key]:.4g}")
    return t
