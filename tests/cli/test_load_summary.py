"""`duet scores` shows how each checkpoint was loaded, and `duet up` ends with "N swapped, M rebuilt"."""

from __future__ import annotations

from rich.console import Console

from cli.tables import scores_table
from cli.up_view import load_summary
from shared.schemas import LoadMode, ScoreRow


def _row(step: int, mode: LoadMode | None) -> ScoreRow:
    return ScoreRow(
        checkpoint_id=step + 1,
        step=step,
        path=f"/c/{step}",
        kind="full",
        metrics={"eval/accuracy": 0.5},
        load_mode=mode,
    )


def test_load_modes_in_scores_table_and_summary():
    rows = [
        _row(0, LoadMode.initial),
        _row(1, LoadMode.swap),
        _row(2, LoadMode.swap),
        _row(3, LoadMode.rebuild),
    ]
    rows.append(_row(4, None))  # a result from a worker that predates load modes
    console = Console(width=250, record=True)
    console.print(scores_table(rows))
    text = console.export_text()
    assert "load" in text and "swap" in text and "rebuild" in text and "initial" in text
    assert load_summary(rows) == "checkpoint loads: 2 swapped, 1 rebuilt (1 initial)"
    assert load_summary([_row(1, LoadMode.lora)]) == "checkpoint loads: 0 swapped, 0 rebuilt (1 LoRA)"
