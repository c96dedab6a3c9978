"""Shared helpers of the trainer tests: a small, fast config and readers for what a run left."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from shared.checkpoint import read_marker, verify_marker
from trainer_service.config import TrainConfig, load_config

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "cli/configs/tiny.yaml"  # the config `duet up` ships


def tiny_config(model: Path, output_dir: Path, **overrides: Any) -> TrainConfig:
    """A few-dozen-step CPU run on ones_digit (small batch and train set to keep tests fast)."""
    base: dict[str, Any] = dict(
        model=str(model),
        output_dir=str(output_dir),
        task="ones_digit",
        task_options={"n_train": 400, "n_test": 50},
        learning_rate=3e-3,
        per_device_train_batch_size=8,
        max_steps=20,
        save_steps=10,
        logging_steps=2,
        max_length=256,
        reporter_flush_timeout_s=60,
    )
    base.update(overrides)
    return load_config(None, base)


def log_history(ckpt: Path) -> list[dict]:
    return json.loads((ckpt / "trainer_state.json").read_text())["log_history"]


def logged_rows(history: list[dict]) -> dict[tuple[int, str], float]:
    """(step, 'train/<key>') -> value for every numeric value the Trainer logged."""
    rows = {}
    for entry in history:
        for k, v in entry.items():
            if k == "step" or isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                continue
            rows[(entry["step"], f"train/{k}")] = float(v)
    return rows


def assert_published(ckpt: Path, *, run: str, step: int, kind: str) -> None:
    marker = read_marker(ckpt)
    assert marker is not None, f"{ckpt} has no marker"
    verify_marker(ckpt, marker, hashes=True)
    assert (marker.run, marker.step, marker.kind) == (run, step, kind)
    names = {f.path for f in marker.files}
    assert "tokenizer.json" in names, names  # eval needs the tokenizer inside every checkpoint
    assert any(n.endswith(".safetensors") for n in names)


def regrade_logged_completions(out: Path, task: Any) -> int:
    """Every completion TRL logged with its reward must carry the grader's verdict as that reward."""
    import pandas as pd

    from shared.grading import grade_response

    gold_of = {task.render_prompt(ex, None): ex.answer for ex in task.examples("train")}
    n = 0
    for f in sorted((out / "completions").glob("completions_*.parquet")):
        df = pd.read_parquet(f)
        columns = (df["prompt"], df["completion"], df["strict"], df["format"])
        for prompt, completion, strict, fmt in zip(*columns, strict=True):
            g = grade_response(completion, gold_of[prompt], task.answer_format)
            assert (strict, fmt) == (float(g.correct), float(g.format_ok)), completion
            n += 1
    return n


def grpo_stage_keys(model: Path, init_from: Path, output_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A few-step GRPO stage on ones_digit from `init_from`: strict + format rewards, completions
    logged (what `regrade_logged_completions` reads back)."""
    keys: dict[str, Any] = dict(
        algorithm="grpo",
        model=str(model),
        init_from=str(init_from),
        output_dir=str(output_dir),
        task="ones_digit",
        task_options={"n_train": 400, "n_test": 50},
        num_generations=4,
        rewards=[{"name": "strict", "weight": 1.0}, {"name": "format", "weight": 0.5}],
        learning_rate=1e-3,
        logging_steps=1,
        grpo_args={"log_completions": True},
    )
    keys.update(overrides)
    return keys
