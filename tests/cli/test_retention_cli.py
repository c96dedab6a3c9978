"""`duet pin/unpin` and `duet scores` after retention, against a real ledger server."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.app import app
from tests.trainer_service.retention_scenario import Run, spec
from trainer_service.config import RetentionSettings
from trainer_service.retention import apply_retention


@pytest.fixture
def cli(ledger, monkeypatch):
    monkeypatch.setenv("DUET_API_URL", ledger.url)
    monkeypatch.setenv("DUET_API_TOKEN", ledger.token)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        res = runner.invoke(app, list(args))
        assert res.exit_code == code, (args, res.output, res.exception)
        return res

    return run


def _row(output: str, step: int) -> str:
    """The table line of the checkpoint at `step` (the step is the second cell)."""
    (line,) = [
        ln for ln in output.splitlines() if ln.split("│")[2:3] and ln.split("│")[2].strip() == str(step)
    ]
    return line


def test_scores_mark_deleted_checkpoints_and_pins_protect(ledger, cli):
    client = ledger.client()
    out = ledger.checkpoint_root / "out"
    run = Run(client, out, "t-cli-ret", [10, 20, 30])
    for ckpt_id in run.ids.values():
        client.enqueue(spec("main"), checkpoint_id=ckpt_id)
    run.work({("main", 10): 0.25, ("main", 20): 0.5, ("main", 30): 0.75})

    pinned = cli("pin", str(run.ids[20]))
    assert f"checkpoint {run.ids[20]} (run {run.run.id} step 20) pinned" in pinned.output
    policy = RetentionSettings(keep_last=1, keep_best=0)
    assert apply_retention(out, client, run.name, policy, task="main") == [run.dirs[10]]

    table = cli("scores", run.name).output
    assert f"{run.ids[10]} (deleted)" in _row(table, 10)
    assert "0.250" in _row(table, 10)  # its results stay
    assert "deleted" not in _row(table, 20) and "deleted" not in _row(table, 30)
    rows = json.loads(cli("scores", run.name, "--json").output)
    assert [r["checkpoint_state"] for r in rows] == ["deleted", "present", "present"]
    compact = cli("scores", run.name, "--compact").output
    assert f"{run.ids[10]} (deleted)" in compact

    assert json.loads(cli("unpin", str(run.ids[20]), "--json").output)["pinned"] is False
    assert apply_retention(out, client, run.name, policy, task="main") == [run.dirs[20]]
    refused = cli("pin", str(run.ids[20]), code=1)
    assert f"cannot pin: checkpoint {run.ids[20]} (step 20) was deleted by retention" in refused.output
    assert "(HTTP 409)" in refused.output
