"""The ledger commands of `duet` against a real ledger server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cli.app import app
from shared.schemas import CompleteRequest, Sample
from tests.fixtures.ledger import REPO


@pytest.fixture
def cli(ledger, monkeypatch):
    monkeypatch.setenv("DUET_API_URL", ledger.url)
    monkeypatch.setenv("DUET_API_TOKEN", ledger.token)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables at a terminal's width, not squeezed to 80
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        res = runner.invoke(app, list(args))
        assert res.exit_code == code, (args, res.output, res.exception)
        return res

    return run


def _finish(c, worker: str, acc: float, n_wrong: int = 1) -> None:
    lease = c.claim(worker)
    samples = [
        Sample(index=i, prompt="p", response=f"r{i}", gold="1", correct=i >= n_wrong, format_ok=True,
               category="correct" if i >= n_wrong else "wrong_answer")
        for i in range(3)
    ]  # fmt: skip
    c.complete(
        lease.job.id,
        CompleteRequest(worker_id=worker, attempt=lease.attempt, metrics={"accuracy": acc}, samples=samples),
    )


def test_cli_enqueue_jobs_scores_best_compare_samples_cancel(cli, ledger):
    for step in (10, 20, 30):
        (ledger.checkpoint_root / "run1" / f"checkpoint-{step}").mkdir(parents=True)
    out = cli("enqueue", str(ledger.checkpoint_root / "run1" / "checkpoint-10"), "--task", "arith", "--run", "run1",
              "--limit", "3", "--json")  # fmt: skip
    job = json.loads(out.output)
    assert job["created"] and job["job"]["step"] == 10 and job["job"]["spec"]["limit"] == 3
    again = cli("enqueue", str(ledger.checkpoint_root / "run1" / "checkpoint-10"), "--task", "arith", "--run", "run1",
                "--limit", "3")  # fmt: skip
    assert "already queued" in again.output
    cli("enqueue", str(ledger.checkpoint_root / "run1" / "checkpoint-20"), "--task", "arith", "--run", "run1", "--n", "2",
        "--temperature", "0.7", "--max-tokens", "32", "--priority", "1")  # fmt: skip

    c = ledger.client()
    _finish(c, "w", 0.5)  # step 20 first: priority
    _finish(c, "w", 0.25, n_wrong=2)
    queued = cli(
        "enqueue",
        str(ledger.checkpoint_root / "run1" / "checkpoint-30"),
        "--task",
        "arith",
        "--run",
        "run1",
        "--json",
    )
    jid = json.loads(queued.output)["job"]["id"]
    assert json.loads(cli("cancel", str(jid), "--json").output)["status"] == "cancelled"

    rows = json.loads(cli("scores", "run1", "--json").output)
    assert [(r["step"], r["metrics"]["eval/accuracy"]) for r in rows] == [(10, 0.25), (20, 0.5)]
    table = cli("scores", "run1").output.splitlines()
    assert "accuracy" in next(line for line in table if "step" in line)
    cells = [[c.strip() for c in line.split("│")[2:4]] for line in table if line.startswith("│")]
    assert cells == [["10", "0.250"], ["20", "0.500"]]  # step and accuracy columns
    shown = cli("best", "run1", "--metric", "eval/accuracy").output
    assert "│ eval/accuracy" in shown and "step 20, checkpoint" in shown
    best = json.loads(cli("best", "run1", "--metric", "eval/accuracy", "--json").output)
    assert best["row"]["step"] == 20
    worst = json.loads(cli("best", "run1", "--metric", "eval/accuracy", "--mode", "min", "--json").output)
    assert worst["row"]["step"] == 10
    cmp = json.loads(
        cli("compare", str(worst["row"]["checkpoint_id"]), str(best["row"]["checkpoint_id"]), "--json").output
    )
    assert cmp["delta"]["eval/accuracy"] == pytest.approx(0.25)

    done = json.loads(cli("jobs", "--status", "done", "--run", "run1", "--json").output)
    assert len(done) == 2
    assert "cancelled" in cli("jobs").output
    failed = json.loads(cli("samples", str(done[-1]["id"]), "--failed", "--json").output)
    assert failed["total"] == 2 and all(not s["correct"] for s in failed["items"])
    assert "wrong_answer" in cli("samples", str(done[-1]["id"]), "--category", "wrong_answer").output
    assert "run1" in cli("runs").output


def test_cli_errors_are_one_line(cli, ledger, monkeypatch):
    res = cli("best", "nope", code=1)
    assert res.output.count("\n") == 1 and "not found" in res.output and "Traceback" not in res.output
    (ledger.checkpoint_root / "checkpoint-1").mkdir()
    res = cli("enqueue", "/etc", "--task", "t", "--run", "r", code=1)
    assert "path" in res.output and "outside the checkpoint root" in res.output
    res = cli("enqueue", str(ledger.checkpoint_root / "checkpoint-1"), "--task", "t", "--n", "0", code=1)
    assert "n" in res.output and res.output.count("\n") == 1
    monkeypatch.setenv("DUET_API_TOKEN", "wrong")
    res = cli("cancel", "1", code=1)
    assert "401" in res.output and "DUET_API_TOKEN" in res.output


def test_cli_server_down_message_and_light_imports(tmp_path):
    env = {"DUET_API_URL": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    code = (
        "import sys; from cli.app import app;"
        "heavy = [m for m in ('torch', 'vllm', 'transformers', 'sqlmodel', 'fastapi', 'trl') if m in sys.modules];"
        "print('heavy', heavy); app(['runs'])"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert "heavy []" in p.stdout
    assert p.returncode == 1
    assert (
        p.stderr.strip() == "duet: cannot reach the duet API at http://127.0.0.1:9 — is `duet serve` running?"
    )
