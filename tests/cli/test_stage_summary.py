"""`duet up --algorithm grpo` ends with each stage's best and, for GRPO, its start and the gain over it."""

from __future__ import annotations

from cli.up_view import stage_summary
from shared.schemas import Algorithm, ScoreRow


def _row(step: int, algorithm: Algorithm | None, acc: float) -> ScoreRow:
    return ScoreRow(
        checkpoint_id=step + 1,
        step=step,
        path=f"/c/{step}",
        kind="full",
        metrics={"eval/accuracy": acc},
        algorithm=algorithm,
    )


ROWS = [
    _row(0, None, 0.0),
    _row(300, Algorithm.sft, 0.57),
    _row(400, Algorithm.sft, 0.765),
    _row(410, Algorithm.grpo, 0.635),
    _row(420, Algorithm.grpo, 0.64),
]


def test_grpo_stage_is_measured_against_its_own_start_not_the_runs_best():
    text = stage_summary(ROWS, {Algorithm.grpo: 300})
    assert text == (
        "stages — sft: steps 300-400, best 0.765 at step 400; "
        "grpo from step 300 (0.570): steps 410-420, best 0.640 at step 420 (+0.070 over its start)"
    )


def test_unknown_or_unscored_start_leaves_the_gain_out():
    assert stage_summary(ROWS) == stage_summary(ROWS, {Algorithm.grpo: 350})
    assert "over its start" not in (stage_summary(ROWS) or "")


def test_one_stage_run_has_no_stage_line():
    assert stage_summary(ROWS[:3], {Algorithm.grpo: 300}) is None
