"""Real TRL training of the tiny model against a real ledger server: markers, metrics, W&B, outages."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest
from transformers import TrainerCallback

from tests.fixtures.wandb_files import read_offline_history
from tests.trainer_service.helpers import assert_published, logged_rows, tiny_config
from trainer_service.train import train


def _ledger_rows(client, run: str) -> list[tuple[int, str, float]]:
    return [(r.step, r.key, r.value) for r in client.train_metrics(run)]


def _assert_metrics_exactly_once(client, run: str, history: list[dict]) -> None:
    expected = logged_rows(history)
    got = _ledger_rows(client, run)
    keys = [(s, k) for s, k, _ in got]
    assert len(keys) == len(set(keys)), "a train metric is stored twice"
    stored = {(s, k): v for s, k, v in got}
    for (step, key), value in expected.items():
        assert (step, key) in stored, f"{key} at step {step} never reached the ledger"
        assert math.isclose(stored[(step, key)], value, rel_tol=1e-6, abs_tol=1e-9), (step, key)
    extra = {k for (s, k) in stored if (s, k) not in expected}
    assert extra <= {"train/tokens_per_s"}, extra  # the rate duet computes on top of the Trainer's logs
    assert any(k == "train/tokens_per_s" for (_, k) in stored)


@pytest.mark.slow
def test_train_publishes_checkpoints_and_reports_every_metric_once(tiny_model: Path, ledger, tmp_path: Path):
    cfg = tiny_config(
        tiny_model,
        ledger.checkpoint_root / "out",
        run_name="t-publish",
        max_steps=20,
        ledger_url=ledger.url,
        ledger_token=ledger.token,
    )
    result = train(cfg)

    assert result.global_step == 20 and result.spool_pending == 0
    steps = sorted(int(p.name.split("-")[1]) for p in result.checkpoints)
    assert steps == [10, 20]
    for ckpt in result.checkpoints:
        assert_published(ckpt, run="t-publish", step=int(ckpt.name.split("-")[1]), kind="full")

    client = ledger.client()
    run = client.get_run("t-publish")
    assert run.primary_task == "ones_digit" and run.base_model == str(tiny_model)
    assert run.config["max_steps"] == 20 and run.config["ledger_token"] == "***"
    _assert_metrics_exactly_once(client, "t-publish", result.log_history)
    registered = {c.step: c.path for c in client.list_checkpoints("t-publish")}
    assert registered == {
        s: str((ledger.checkpoint_root / "out" / f"checkpoint-{s}").resolve()) for s in steps
    }

    # The ledger is the only W&B writer: the trainer's metrics are in its offline run.
    assert ledger.flush_wandb() == 0
    history = read_offline_history(ledger.wandb_dir, run.wandb_run_id)
    in_wandb = {
        (int(row["train/global_step"]), k, v)
        for row in history
        if "train/global_step" in row
        for k, v in row.items()
        if k.startswith("train/") and k != "train/global_step"
    }
    for (step, key), value in logged_rows(result.log_history).items():
        assert any(s == step and k == key and math.isclose(v, value, rel_tol=1e-6) for s, k, v in in_wandb), (
            step,
            key,
        )
    assert not list(
        (ledger.checkpoint_root / "out").rglob("wandb")
    )  # report_to="none": no trainer-side W&B files


class _LedgerOutage(TrainerCallback):
    """Drives the ledger from inside training: up at step `up_at`, SIGKILLed at `kill_at`, up again
    at `back_at` (the trainer started while it was down)."""

    def __init__(self, ledger, up_at: int, kill_at: int, back_at: int):
        self.ledger, self.up_at, self.kill_at, self.back_at = ledger, up_at, kill_at, back_at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in (self.up_at, self.back_at):
            self.ledger.start()
        elif state.global_step == self.kill_at:
            self.ledger.kill(signal.SIGKILL)


@pytest.mark.slow
def test_ledger_down_at_start_and_mid_run_loses_nothing(tiny_model: Path, ledger, tmp_path: Path):
    ledger.stop()  # the trainer starts with no ledger: it must train anyway and register later
    cfg = tiny_config(
        tiny_model,
        ledger.checkpoint_root / "out",
        run_name="t-outage",
        max_steps=24,
        save_steps=8,
        ledger_url=ledger.url,
        ledger_token=ledger.token,
    )
    result = train(cfg, callbacks=[_LedgerOutage(ledger, up_at=6, kill_at=12, back_at=18)])

    assert result.spool_pending == 0
    client = ledger.client()
    run = client.get_run("t-outage")
    assert run.config["max_steps"] == 24
    _assert_metrics_exactly_once(client, "t-outage", result.log_history)
    assert sorted(c.step for c in client.list_checkpoints("t-outage")) == [8, 16, 24]


@pytest.mark.slow
def test_ledger_down_for_the_whole_run_then_train_sync(tiny_model: Path, ledger, tmp_path: Path):
    from typer.testing import CliRunner

    from cli.app import app

    ledger.stop()
    cfg = tiny_config(
        tiny_model,
        ledger.checkpoint_root / "out",
        run_name="t-sync",
        max_steps=6,
        save_steps=6,
        ledger_url=ledger.url,
        ledger_token=ledger.token,
        reporter_flush_timeout_s=0,
    )
    result = train(cfg)
    assert result.spool_pending > 0  # kept on disk, not dropped

    ledger.start()
    env = {"DUET_API_URL": ledger.url, "DUET_API_TOKEN": ledger.token}
    out = CliRunner().invoke(app, ["train-sync", str(ledger.checkpoint_root / "out")], env=env)
    assert out.exit_code == 0, out.output
    assert "0 still pending" in out.output
    _assert_metrics_exactly_once(ledger.client(), "t-sync", result.log_history)
