"""End to end: `duet up` runs ledger, worker and trainer as real processes on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.checkpoint import MARKER_NAME
from tests.fixtures.ledger import REPO, free_port
from tests.fixtures.wandb_files import read_offline_history

pytestmark = pytest.mark.slow


def run_up(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DUET_API_TOKEN": "e2e-token",
        "DUET_ADMIN_TOKEN": "e2e-admin",
        "WANDB_MODE": "offline",
        "COLUMNS": "200",
    }
    env.pop("DUET_API_URL", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "shared.cli",
            "up",
            "--workdir",
            str(workdir),
            "--port",
            str(free_port()),
            *args,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_duet_up_scores_every_checkpoint_once_and_aligns_wandb(tmp_path, ledger_factory):
    wd = tmp_path / "duet"
    out = run_up(
        wd, "--run", "e2e", "--limit", "40", "--max_steps", "30", "--save_steps", "10", "--logging_steps", "5"
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "Checkpoint scores" in out.stdout and "best checkpoint: step" in out.stdout

    # Query what `duet up` left behind through a fresh ledger on the same database.
    srv = ledger_factory(
        token="e2e-token",
        admin_token="e2e-admin",
        checkpoint_root=wd,
        env={
            "DUET_DB_URL": f"sqlite:///{wd / 'duet.db'}",
            "DUET_WANDB_DIR": str(wd / "wandb"),
            "WANDB_DIR": str(wd / "wandb"),
        },
    )
    c = srv.client()
    published = sorted(
        int(d.name.split("-")[1])
        for d in (wd / "checkpoints" / "e2e").glob("checkpoint-*")
        if (d / MARKER_NAME).is_file()
    )
    registered = sorted(ck.step for ck in c.list_checkpoints("e2e"))
    assert set(published) <= set(registered)
    assert 0 in registered, "the base model is evaluated as the step-0 baseline"
    assert {10, 20, 30} <= set(registered)

    jobs = c.list_jobs(run="e2e")
    assert all(j.status.value == "done" for j in jobs), [(j.step, j.status, j.last_error) for j in jobs]
    steps = [j.step for j in jobs]
    assert sorted(steps) == registered, "every checkpoint scored exactly once"

    rows = c.scores("e2e")
    assert [r.step for r in rows] == registered
    best = c.best("e2e", metric="eval/accuracy")
    assert best.row.metrics["eval/accuracy"] == max(r.metrics["eval/accuracy"] for r in rows)

    # One W&B run holds train and eval metrics, eval rows aligned on train/global_step.
    run = c.get_run("e2e")
    history = read_offline_history(wd / "wandb", run.wandb_run_id)
    train_steps = {h["train/global_step"] for h in history if "train/loss" in h}
    eval_steps = sorted(h["train/global_step"] for h in history if "eval/accuracy" in h)
    assert {5, 10, 30} <= train_steps
    assert eval_steps == registered
    for h in history:
        if "eval/accuracy" in h:
            row = next(r for r in rows if r.step == h["train/global_step"])
            assert h["eval/accuracy"] == pytest.approx(row.metrics["eval/accuracy"])


def test_duet_up_reports_a_port_in_use(tmp_path, ledger):
    out = subprocess.run(
        [sys.executable, "-m", "shared.cli", "up", "--workdir", str(tmp_path), "--port", str(ledger.port)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert f"port {ledger.port} is in use" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
