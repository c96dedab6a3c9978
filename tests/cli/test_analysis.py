"""`duet diff`, `duet question`, `duet export`, `duet scores --compact` and `duet enqueue --suite
--all` against a real ledger holding constructed samples."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.app import app
from tests.eval_service.api.test_analysis import RUN, evaluated  # noqa: F401  (fixture)


@pytest.fixture
def cli(ledger, monkeypatch):
    monkeypatch.setenv("DUET_API_URL", ledger.url)
    monkeypatch.setenv("DUET_API_TOKEN", ledger.token)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        res = runner.invoke(app, list(args))
        assert res.exit_code == code, res.output
        return res.output

    return run


def test_diff_lists_exactly_the_flipped_questions(cli, evaluated):  # noqa: F811
    _, ids = evaluated
    data = json.loads(cli("diff", str(ids[10]), str(ids[20]), "--task", "probe", "--json"))
    assert [f["question_id"] for f in data["learned"]] == ["q1"]
    assert [f["question_id"] for f in data["forgotten"]] == ["q2"]
    out = cli("diff", str(ids[10]), str(ids[20]), "--task", "probe")
    assert "answer of q2 at step 20 (wrong)" in out and "2 of 4 common questions flipped" in out


def test_question_shows_its_verdict_at_every_checkpoint(cli, evaluated):  # noqa: F811
    data = json.loads(cli("question", RUN, "q1", "--task", "probe", "--json"))
    assert [(v["step"], v["sample"]["correct"]) for v in data] == [(10, False), (20, True), (30, True)]


def test_export_parquet_round_trips_through_pandas(cli, evaluated, tmp_path):  # noqa: F811
    out = tmp_path / "s.parquet"
    cli("export", RUN, "--task", "probe", "--format", "parquet", "--out", str(out))
    df = pd.read_parquet(out)
    assert len(df) == 26 and sorted(df["step"].unique()) == [10, 20, 30]
    row = df[(df.step == 20) & (df.question_id == "q2") & (df["sample"] == 0)].iloc[0]
    assert not row.correct and row.category == "wrong_answer" and row.response_chars == len(row.response)
    lm = tmp_path / "lm"
    cli("export", RUN, "--format", "lm-eval", "--out", str(lm))
    (f,) = lm.glob("samples_probe_*.jsonl")
    rec = json.loads(f.read_text().splitlines()[0])
    assert {"doc_id", "doc", "target", "resps", "filtered_resps", "exact_match", "step"} <= rec.keys()


def test_compact_scores_one_column_per_entry(cli, evaluated):  # noqa: F811
    out = cli("scores", RUN, "--compact")
    assert "probe" in out and "probe flips" in out


def test_enqueue_suite_all_backfills_with_cadence(cli, ledger, tmp_path):
    c = ledger.client()
    c.create_run("bf")
    for step in (10, 20, 30, 40):
        d = ledger.checkpoint_root / f"checkpoint-{step}"
        d.mkdir()
        from shared.schemas import CheckpointCreate

        c.register_checkpoint(CheckpointCreate(run_id=c.get_run("bf").id, step=step, path=str(d)))
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "entries:\n  - {name: full, task: ones_digit, limit: 4}\n  - {name: probe, task: ones_digit, every: 2}\n"
    )
    cli("enqueue", "--suite", str(suite), "--run", "bf", "--all")
    jobs = c.list_jobs(run="bf")
    got = sorted((j.step, j.spec.name) for j in jobs)
    assert got == sorted([(s, "full") for s in (10, 20, 30, 40)] + [(20, "probe"), (40, "probe")])
    assert "0 new job(s)" in cli("enqueue", "--suite", str(suite), "--run", "bf", "--all")  # deduped
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries:\n  - {name: x, task: ones_digit, temprature: 1}\n")
    assert "temprature" in cli("enqueue", "--suite", str(bad), "--run", "bf", "--all", code=1)
