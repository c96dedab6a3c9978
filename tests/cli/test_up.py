"""End to end: `duet up` runs ledger, worker and trainer as real processes on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.checkpoint import MARKER_NAME
from shared.schemas import Algorithm
from tests.fixtures.ledger import REPO, free_port
from tests.fixtures.wandb_files import read_offline_history


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
            "cli",
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


def ledger_on(ledger_factory, wd: Path):
    """A fresh ledger server on the database and W&B files a finished `duet up` left in `wd`."""
    return ledger_factory(
        token="e2e-token",
        admin_token="e2e-admin",
        checkpoint_root=wd,
        env={
            "DUET_DB_URL": f"sqlite:///{wd / 'duet.db'}",
            "DUET_WANDB_DIR": str(wd / "wandb"),
            "WANDB_DIR": str(wd / "wandb"),
        },
    )


@pytest.mark.slow
def test_duet_up_scores_every_checkpoint_once_and_aligns_wandb(tmp_path, ledger_factory):
    wd = tmp_path / "duet"
    suite = tmp_path / "suite.yaml"  # the shape of the default tiny suite, smaller
    suite.write_text(
        "entries:\n"
        "  - {name: ones_digit, task: ones_digit, limit: 40, max_tokens: 64}\n"
        "  - {name: probe, task: ones_digit, limit: 10, n: 2, temperature: 1.0, max_tokens: 48, every: 2}\n"
    )
    out = run_up(
        wd,
        "--run",
        "e2e",
        "--suite",
        str(suite),
        "--max_steps",
        "30",
        "--save_steps",
        "10",
        "--logging_steps",
        "5",
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "Checkpoint scores" in out.stdout and "best checkpoint: step" in out.stdout
    assert "Scores per suite entry" in out.stdout and "probe flips" in out.stdout

    # Query what `duet up` left behind through a fresh ledger on the same database.
    c = ledger_on(ledger_factory, wd).client()
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
    steps = [j.step for j in jobs if j.spec.name == "ones_digit"]
    assert sorted(steps) == registered, "every checkpoint scored exactly once"
    # the probe: baseline, every 2nd checkpoint, and the final one (step 30 = max_steps)
    assert sorted(j.step for j in jobs if j.spec.name == "probe") == [0, 20, 30]

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
        [sys.executable, "-m", "cli", "up", "--workdir", str(tmp_path), "--port", str(ledger.port)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert f"port {ledger.port} is in use" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.slow
def test_ctrl_c_stops_everything_and_the_run_continues(tmp_path, ledger_factory):
    import signal
    import sqlite3
    import time

    wd, port = tmp_path / "duet", free_port()
    env = {
        **os.environ,
        "DUET_API_TOKEN": "e2e-token",
        "DUET_ADMIN_TOKEN": "e2e-admin",
        "WANDB_MODE": "offline",
    }
    env.pop("DUET_API_URL", None)
    argv = [
        sys.executable,
        "-m",
        "cli",
        "up",
        "--workdir",
        str(wd),
        "--port",
        str(port),
        "--run",
        "cc",
        "--limit",
        "20",
    ]
    proc = subprocess.Popen(
        [*argv, "--max_steps", "5000", "--save_steps", "10"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first = wd / "checkpoints" / "cc" / "checkpoint-10" / MARKER_NAME
    deadline = time.monotonic() + 300
    while not first.is_file():  # training is under way once a checkpoint is published
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint published within 5 minutes"
        time.sleep(0.2)  # polling interval for a file another process writes
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Traceback" not in out

    # Nothing left behind: no process of this work dir survives. `duet up` SIGKILLs each service's
    # process group last; the kernel may take a moment to finish a killed process, so allow 10 s
    # before calling one a survivor (and then show what it is).
    def leftovers() -> list[str]:
        return subprocess.run(["pgrep", "-f", str(wd)], capture_output=True, text=True).stdout.split()

    gone_by = time.monotonic() + 10
    while leftovers() and time.monotonic() < gone_by:
        time.sleep(0.2)  # polling interval while killed processes finish
    if left := leftovers():
        ps = subprocess.run(["ps", "-o", "pid,ppid,pgid,stat,etime,args", "-p", ",".join(left)],
                            capture_output=True, text=True).stdout  # fmt: skip
        raise AssertionError(f"processes of {wd} survived duet up's Ctrl-C:\n{ps}")
    with sqlite3.connect(wd / "duet.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # Again with the same run: the trainer resumes from its last published checkpoint.
    out2 = subprocess.run(
        [*argv, "--max_steps", "40", "--save_steps", "10"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out2.returncode == 0, out2.stdout[-4000:] + out2.stderr[-4000:]
    c = ledger_on(ledger_factory, wd).client()
    assert [r.name for r in c.list_runs()] == ["cc"]
    jobs = c.list_jobs(run="cc")
    # A job cut off by Ctrl-C was handed back, not failed: it finished in the second run.
    assert all(j.status.value == "done" for j in jobs), [(j.step, j.status, j.last_error) for j in jobs]
    steps = [j.step for j in jobs]
    assert len(steps) == len(set(steps)), "a checkpoint was evaluated twice"
    assert {0, 10, 40} <= set(steps)
    assert "resumed from" in (wd / "logs" / "trainer-cc.log").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "no/such.yaml"], "config file no/such.yaml not found"),
        (["--workdir", "{file}/sub"], "cannot create work directory"),
    ],
)
def test_duet_up_setup_errors_are_one_line(tmp_path, args, message):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    argv = [a.replace("{file}", str(blocker)) for a in args]
    if "--workdir" not in argv:
        argv += ["--workdir", str(tmp_path / "wd")]
    out = subprocess.run(
        [sys.executable, "-m", "cli", "up", "--port", str(free_port()), *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert message in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.slow
def test_duet_up_grpo_continues_the_run_from_an_sft_checkpoint(tmp_path, ledger_factory):
    """SFT, then GRPO from the SFT checkpoint the GRPO config names (the built-in one pins a step,
    `init_from_step`) on the same step axis: one worker scores both stages, the table and the W&B run
    mark the stage, rewards and accuracy share one W&B run."""
    wd = tmp_path / "duet"
    grpo = ["max_steps=4", "save_steps=2", "logging_steps=1", "per_device_train_batch_size=8",
            "num_generations=4", "max_completion_length=24", "init_from_step=10"]  # fmt: skip
    out = run_up(
        wd, "--run", "staged", "--limit", "20", "--algorithm", "grpo",
        "--max_steps", "20", "--save_steps", "10", "--logging_steps", "5",
        *(a for kv in grpo for a in ("--grpo-set", kv)),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "stage" in out.stdout and "stages — sft: steps 10-20" in out.stdout
    assert "grpo from step 10 (" in out.stdout and "over its start)" in out.stdout  # before/after

    c = ledger_on(ledger_factory, wd).client()
    stages = {ck.step: ck.algorithm for ck in c.list_checkpoints("staged")}
    assert stages == {0: None, 10: Algorithm.sft, 20: Algorithm.sft, 22: Algorithm.grpo, 24: Algorithm.grpo}
    jobs = c.list_jobs(run="staged")
    assert all(j.status.value == "done" for j in jobs), [(j.step, j.status, j.last_error) for j in jobs]
    assert sorted(j.step for j in jobs) == sorted(stages), "every checkpoint of both stages scored once"

    # The GRPO stage started from the pinned SFT step (not the run's last), resolved by the ledger.
    rows = c.scores("staged")
    log = (wd / "logs" / "trainer-grpo-staged.log").read_text()
    assert "init_from_step staged: step 10 " in log, log[-3000:]
    assert [r.algorithm for r in rows if r.step > 20] == [Algorithm.grpo, Algorithm.grpo]

    # One W&B run: training reward and eval accuracy of the GRPO steps, each eval row with its stage.
    history = read_offline_history(wd / "wandb", c.get_run("staged").wandb_run_id)
    rewards = {h["train/global_step"] for h in history if "train/rewards/strict/mean" in h}
    assert {21, 22, 23, 24} <= rewards
    evals = {h["train/global_step"]: h.get("eval/stage") for h in history if "eval/accuracy" in h}
    assert evals == {0: None, 10: 0.0, 20: 0.0, 22: 1.0, 24: 1.0}
    assert {
        h["train/stage"] for h in history if h.get("train/global_step", 0) > 20 and "train/stage" in h
    } == {1.0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grpo-set", "max_steps=4"], "--grpo-config / --grpo-set: only with --algorithm grpo"),
        (["--algorithm", "grpo", "--grpo-set", "max_steps"], "--grpo-set 'max_steps': expected KEY=VALUE"),
        (["--algorithm", "grpo", "--grpo-config", "no/such.yaml"], "GRPO config file no/such.yaml not found"),
    ],
)
def test_duet_up_grpo_setup_errors_are_one_line(tmp_path, args, message):
    out = subprocess.run(
        [sys.executable, "-m", "cli", "up", "--port", str(free_port()), "--workdir", str(tmp_path), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 1
    assert message in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
