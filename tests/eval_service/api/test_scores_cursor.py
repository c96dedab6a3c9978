"""Scores read by cursor (`after_step`): pages follow step order, skip checkpoints that have no
result for the task, and the largest page is 1000 rows (real server, both backends)."""

from __future__ import annotations

import httpx

from shared.schemas import CompleteRequest, EvalSpec


def _evaluate(ledger, c, step: int, task: str, accuracy: float) -> None:
    d = ledger.checkpoint_root / f"checkpoint-{step}"
    d.mkdir(parents=True, exist_ok=True)
    c.enqueue(EvalSpec(task=task), path=str(d), run="r")
    lease = c.claim("w")
    c.complete(
        lease.job.id, CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"accuracy": accuracy})
    )


def test_cursor_pages_follow_steps_and_skip_checkpoints_without_the_task(ledger):
    c = ledger.client()
    c.create_run("r", primary_task="arith")
    for step in range(10, 90, 10):
        _evaluate(ledger, c, step, "arith", step / 100)
    for step in (20, 50, 80):  # gsm8k only on some checkpoints
        _evaluate(ledger, c, step, "gsm8k", step / 1000)

    url = f"{ledger.url}/v1/runs/r/scores"
    h = {"Authorization": f"Bearer {ledger.token}"}
    page = httpx.get(url, params={"task": "gsm8k", "limit": 2}, headers=h)
    assert page.status_code == 200 and page.headers["X-Total-Count"] == "3"
    assert [r["step"] for r in page.json()] == [20, 50]
    page = httpx.get(url, params={"task": "gsm8k", "limit": 2, "after_step": 50}, headers=h)
    assert [(r["step"], r["metrics"]["eval/accuracy"]) for r in page.json()] == [(80, 0.08)]

    # no task given: the primary one; the client walks the cursor to the end
    assert [r.step for r in c.scores("r", page_size=3)] == list(range(10, 90, 10))
    assert [r.step for r in c.scores("r", task="gsm8k", page_size=1)] == [20, 50, 80]

    too_big = httpx.get(url, params={"limit": 1001}, headers=h)
    assert too_big.status_code == 422 and "limit" in too_big.text
