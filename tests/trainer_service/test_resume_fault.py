"""SIGKILL inside a checkpoint save: the half-written dir never gets a marker, and --resume continues
from the last published checkpoint (not from the newest dir, as HF's get_last_checkpoint would)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from transformers.trainer_utils import get_last_checkpoint

from shared.checkpoint import MARKER_NAME
from tests.trainer_service.helpers import REPO, TINY_CONFIG, assert_published
from trainer_service.config import load_config, parse_overrides
from trainer_service.train import train


def _args(model: Path, out: Path) -> list[str]:
    return [
        "--model", str(model), "--output_dir", str(out), "--run_name", "t-fault",
        "--max_steps", "12", "--save_steps", "4", "--logging_steps", "2",
        "--per_device_train_batch_size", "8", "--task_options", '{"n_train": 400, "n_test": 50}',
        "--report", "false",
    ]  # fmt: skip


@pytest.mark.slow
def test_kill_in_save_leaves_no_marker_and_resume_continues(tiny_model: Path, tmp_path: Path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.trainer_service.kill_in_save",
            "8",
            str(TINY_CONFIG),
            *_args(tiny_model, out),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]

    assert_published(out / "checkpoint-4", run="t-fault", step=4, kind="full")
    half = out / "checkpoint-8"
    assert (half / "model.safetensors").is_file()  # weights were written when the kill came...
    assert not (half / MARKER_NAME).exists()  # ...but the checkpoint was never published
    assert not (half / "trainer_state.json").exists()
    assert get_last_checkpoint(str(out)) == str(half)  # what duet must not resume from

    cfg = load_config(TINY_CONFIG, parse_overrides(_args(tiny_model, out)))
    result = train(cfg, resume=True)

    assert result.resumed_from == out / "checkpoint-4"
    assert result.global_step == 12
    for step in (4, 8, 12):
        assert_published(out / f"checkpoint-{step}", run="t-fault", step=step, kind="full")
    state = json.loads((out / "checkpoint-12" / "trainer_state.json").read_text())
    # The history runs on from step 4: the resumed run trains steps 5..12 once, not from 0.
    logged_steps = [e["step"] for e in state["log_history"] if "loss" in e]
    assert logged_steps == sorted(set(logged_steps)) and logged_steps[-1] == 12


def test_new_run_refuses_an_output_dir_with_published_checkpoints(tiny_model: Path, tmp_path: Path):
    from tests.trainer_service.helpers import tiny_config
    from trainer_service.config import ConfigError

    out = tmp_path / "out"
    (out / "checkpoint-5").mkdir(parents=True)
    for f in tiny_model.iterdir():
        (out / "checkpoint-5" / f.name).write_bytes(f.read_bytes())
    from shared.checkpoint import write_marker

    write_marker(out / "checkpoint-5", run="x", step=5)
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(tiny_model, out, report=False))
