"""Scores are paged with a total, and `best` is answered from the eval_metrics table: re-evaluations
and regrades move it, a checkpoint without the metric never wins, ties go to the earliest checkpoint (real server, both backends)."""

from __future__ import annotations

import httpx
import pytest

from shared.client import LedgerError
from shared.schemas import CompleteRequest, EvalSpec


def _evaluate(ledger, c, step: int, metrics: dict[str, float], *, force: bool = False) -> int:
    d = ledger.checkpoint_root / f"checkpoint-{step}"
    d.mkdir(parents=True, exist_ok=True)
    c.enqueue(EvalSpec(task="arith"), path=str(d), run="r", force=force)
    lease = c.claim("w")
    assert lease.job.step == step
    c.complete(lease.job.id, CompleteRequest(worker_id="w", attempt=lease.attempt, metrics=metrics))
    return lease.job.id


def test_scores_come_in_pages_with_the_total_and_the_client_reads_them_all(ledger):
    c = ledger.client()
    c.create_run("r")
    for step in range(1, 26):
        _evaluate(ledger, c, step, {"accuracy": step / 100})
    r = httpx.get(f"{ledger.url}/v1/runs/r/scores", params={"limit": 10, "offset": 20})
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "25"
    assert [row["step"] for row in r.json()] == [21, 22, 23, 24, 25]
    assert len(httpx.get(f"{ledger.url}/v1/runs/r/scores").json()) == 25  # default page holds them
    assert [row.step for row in c.scores("r", page_size=7)] == list(range(1, 26))
    bad = httpx.get(f"{ledger.url}/v1/runs/r/scores", params={"limit": 0})
    assert bad.status_code == 422 and "limit" in bad.text


def test_best_follows_reevaluations_and_regrades_skips_missing_and_breaks_ties_early(ledger):
    c = ledger.client()
    c.create_run("r")
    _evaluate(ledger, c, 10, {"accuracy": 0.5, "loss": 2.0})
    _evaluate(ledger, c, 20, {"accuracy": 0.7, "loss": 1.0})
    _evaluate(ledger, c, 30, {"accuracy": 0.7})  # no loss
    best = c.best("r", metric="accuracy")
    assert (best.row.step, best.row.metrics["eval/accuracy"]) == (20, 0.7)  # tie: the earlier one
    assert c.best("r", metric="eval/loss", mode="min").row.step == 20  # 30 has no loss

    # step 10 evaluated again: its newest result is what counts, in scores and in best
    _evaluate(ledger, c, 10, {"accuracy": 0.9, "loss": 3.0}, force=True)
    assert c.best("r", metric="accuracy").row.step == 10
    assert [r.metrics["eval/accuracy"] for r in c.scores("r")] == [0.9, 0.7, 0.7]

    # a regrade moves best too
    job_30 = next(j for j in c.list_jobs(run="r", status="done") if j.step == 30)
    ledger.admin_client().regrade(
        job_30.id, grader_version="2", metrics={"accuracy": 0.95, "loss": 0.5}, samples=[]
    )
    assert c.best("r", metric="accuracy").row.step == 30
    assert c.best("r", metric="loss", mode="min").row.step == 30

    with pytest.raises(LedgerError) as e:
        c.best("r", metric="nope")
    assert e.value.status == 422 and "eval/accuracy" in str(e.value) and "eval/loss" in str(e.value)
