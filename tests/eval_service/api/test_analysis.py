"""Per-question analysis on a real ledger with constructed samples: the flipped questions between two
checkpoints (diff), flip_rate/learned/forgotten in the scores (also when checkpoints are evaluated
out of step order), one question across the run, suite-entry names, claim preference and exports."""

from __future__ import annotations

import pytest

from shared.client import LedgerError
from shared.schemas import CompleteRequest, EvalSpec, Sample

RUN = "flips"
# question -> verdict per step; q0 stays right, q1 is learned at 20, q2 forgotten at 20 and
# learned back at 30, q3 stays wrong, q4 is only asked at step 10 (not common with later steps)
VERDICTS = {
    10: {"q0": True, "q1": False, "q2": True, "q3": False, "q4": True},
    20: {"q0": True, "q1": True, "q2": False, "q3": False},
    30: {"q0": True, "q1": True, "q2": True, "q3": False},
}


def _sample(i: int, qid: str, ok: bool, step: int, sample: int = 0) -> Sample:
    return Sample(
        index=i,
        question_id=qid,
        sample=sample,
        prompt=f"question {qid}",
        response=f"answer of {qid} at step {step} ({'right' if ok else 'wrong'})",
        gold="1",
        extracted="1" if ok else "2",
        correct=ok,
        format_ok=True,
        category="correct" if ok else "wrong_answer",
        num_tokens=5,
    )


def _evaluate(c, root, step: int, spec: EvalSpec) -> int:
    d = root / f"checkpoint-{step}"
    d.mkdir(exist_ok=True)
    job = c.enqueue(spec, path=str(d), run=RUN, step=step).job
    lease = c.claim("w")
    assert lease.job.id == job.id
    samples = [_sample(i, q, ok, step) for i, (q, ok) in enumerate(VERDICTS[step].items())]
    # a second generation that disagrees must not count: the verdict is the first generation's
    samples += [_sample(i, q, not ok, step, sample=1) for i, (q, ok) in enumerate(VERDICTS[step].items())]
    acc = sum(VERDICTS[step].values()) / len(VERDICTS[step])
    c.complete(
        job.id,
        CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"accuracy": acc}, samples=samples),
    )
    return job.checkpoint_id


@pytest.fixture
def evaluated(ledger):
    """Steps 30, 10, 20 evaluated in that order (newest first, like a backfill), entry `probe`."""
    c = ledger.client()
    c.create_run(RUN, primary_task="probe")
    spec = EvalSpec(task="ones_digit", name="probe", limit=5)
    ids = {step: _evaluate(c, ledger.checkpoint_root, step, spec) for step in (30, 10, 20)}
    return c, ids


def test_diff_returns_exactly_the_flipped_questions(evaluated, ledger):
    c, ids = evaluated
    d = c.sample_flips(ids[10], ids[20], task="probe")
    assert d.common == 4 and (d.a_step, d.b_step) == (10, 20)
    assert [f.question_id for f in d.learned] == ["q1"]
    assert [f.question_id for f in d.forgotten] == ["q2"]
    flip = d.forgotten[0]
    assert flip.a.response == "answer of q2 at step 10 (right)" and flip.a.correct
    assert flip.b.response == "answer of q2 at step 20 (wrong)" and not flip.b.correct
    # the same over plain REST
    import httpx

    body = httpx.get(
        f"{ledger.url}/v1/compare/samples",
        params={"a": ids[20], "b": ids[30], "task": "probe"},
        headers={"Authorization": f"Bearer {ledger.client_env()['DUET_API_TOKEN']}"},
    ).json()
    assert [f["question_id"] for f in body["learned"]] == ["q2"] and body["forgotten"] == []


def test_flip_metrics_in_scores_even_when_evaluated_newest_first(evaluated):
    c, _ = evaluated
    rows = {r.step: r.metrics for r in c.scores(RUN, task="probe")}
    assert "eval/flip_rate" not in rows[10]  # nothing before it
    assert rows[20]["eval/flip_rate"] == pytest.approx(2 / 4)
    assert (rows[20]["eval/learned"], rows[20]["eval/forgotten"]) == (1, 1)
    # step 30 was stored first (no predecessor then); storing 20 later recomputed it against 20
    assert rows[30]["eval/flip_rate"] == pytest.approx(1 / 4)
    assert (rows[30]["eval/learned"], rows[30]["eval/forgotten"]) == (1, 0)


def test_question_across_the_run_and_run_tasks(evaluated):
    c, _ = evaluated
    history = c.question(RUN, "q2", task="probe")
    assert [(h.step, h.sample.correct) for h in history] == [(10, True), (20, False), (30, True)]
    assert c.run_tasks(RUN) == ["probe"]
    with pytest.raises(LedgerError) as e:
        c.question(RUN, "nope", task="probe")
    assert e.value.status == 404


def test_export_pages_every_sample_with_its_step(evaluated):
    c, _ = evaluated
    first = c.run_samples(RUN, task="probe", limit=10)
    rest = c.run_samples(RUN, task="probe", offset=10, limit=100)
    rows = first.items + rest.items
    assert first.total == 26 and len(rows) == 26
    assert [r.step for r in rows] == sorted(r.step for r in rows)
    assert {(r.step, r.question_id, r.sample) for r in rows} >= {(10, "q4", 0), (30, "q3", 1)}


def test_workers_cannot_send_ledger_computed_metrics(ledger):
    c = ledger.client()
    c.create_run(RUN)
    d = ledger.checkpoint_root / "checkpoint-1"
    d.mkdir()
    job = c.enqueue(EvalSpec(task="ones_digit"), path=str(d), run=RUN).job
    lease = c.claim("w")
    with pytest.raises(LedgerError) as e:
        c.complete(job.id, CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"flip_rate": 0.1}))
    assert e.value.status == 422 and "flip_rate" in str(e.value.detail)


def test_claim_prefers_the_loaded_checkpoint(ledger):
    c = ledger.client()
    c.create_run(RUN)
    ckpts = {}
    for step in (1, 2):
        d = ledger.checkpoint_root / f"checkpoint-{step}"
        d.mkdir()
        for name in ("a", "b"):
            ckpts[step] = c.enqueue(
                EvalSpec(task="ones_digit", name=name), path=str(d), run=RUN
            ).job.checkpoint_id
    # without a preference the newest step goes first; with one, the loaded checkpoint's jobs do
    assert c.claim("w").job.step == 2
    lease = c.claim("w", prefer_checkpoint_id=ckpts[1])
    assert lease.job.checkpoint_id == ckpts[1]
    assert c.claim("w", prefer_checkpoint_id=ckpts[1]).job.checkpoint_id == ckpts[1]
    assert c.claim("w", prefer_checkpoint_id=ckpts[1]).job.step == 2  # none left of it: the next
