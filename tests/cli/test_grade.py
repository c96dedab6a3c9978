"""`duet grade` as a real pipe and `duet regrade` against a real ledger server."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.grading import GRADER_VERSION
from shared.schemas import CheckpointCreate, CompleteRequest, EvalSpec, Sample

REPO = Path(__file__).resolve().parents[2]
DUET = [sys.executable, "-m", "cli"]


def duet(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DUET, *args], input=stdin, capture_output=True, text=True, cwd=REPO, env=env, timeout=120
    )


def test_grade_pipe():
    lines = [
        {"response": "x</think> <answer>1/2</answer>", "gold": "0.5"},
        {"response": "x</think> <answer>3</answer>", "gold": 4, "finish_reason": "stop"},
        {"response": "still thinking", "gold": "4", "finish_reason": "length"},
        {"response": "x</think> <answer>\\frac{\\sqrt{4}}{4}</answer>", "gold": "1/2"},
    ]
    out = duet("grade", "--format", "r1_zero", stdin="".join(json.dumps(x) + "\n" for x in lines) + "\n")
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()]
    keys = ("correct", "answer_correct", "format_ok", "extracted", "category")
    assert [tuple(g[k] for k in keys) for g in got] == [
        (True, True, True, "1/2", "correct"),
        (False, False, True, "3", "wrong_answer"),
        (False, False, False, None, "truncated"),
        (True, True, True, "\\frac{\\sqrt{4}}{4}", "correct"),
    ]


def test_grade_boxed_format_failure_keeps_the_right_answer():
    out = duet("grade", "--format", "boxed", stdin='{"response": "Answer $ 9 $", "gold": "9"}\n')
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert (got["answer_correct"], got["format_ok"], got["correct"]) == (True, False, False)


def test_grade_lenient_is_an_option():
    line = '{"response": "x</think>\\n<answer>7</answer>", "gold": "7"}\n'
    assert json.loads(duet("grade", "--format", "r1_zero", stdin=line).stdout)["correct"] is False
    assert json.loads(duet("grade", "--format", "r1_zero", "--lenient", stdin=line).stdout)["correct"] is True


def test_grade_streams_line_by_line():
    proc = subprocess.Popen(
        [*DUET, "grade", "--format", "gsm8k"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        for i in range(3):
            proc.stdin.write(json.dumps({"response": f"#### {i}", "gold": str(i)}) + "\n")
            proc.stdin.flush()
            # The answer to each line arrives while stdin is still open.
            deadline = time.monotonic() + 60
            ready: list = []
            while not ready and time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            assert ready, "no output line before stdin closed"
            assert json.loads(proc.stdout.readline())["correct"] is True
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{oops", "line 2: invalid JSON"),
        ('{"response": "#### 1"}', "line 2: missing field 'gold'"),
        ('{"response": 5, "gold": "1"}', "line 2: field 'response' must be a string"),
        ("[1, 2]", "line 2: expected a JSON object"),
    ],
)
def test_grade_bad_line_names_it_and_exits_1(bad_line, message):
    good = json.dumps({"response": "#### 1", "gold": "1"})
    out = duet("grade", "--format", "gsm8k", stdin=f"{good}\n{bad_line}\n{good}\n")
    assert out.returncode == 1
    assert message in out.stderr
    assert len(out.stdout.splitlines()) == 1  # the good line before it was already written


def test_grade_rejects_unknown_format():
    out = duet("grade", "--format", "latex", stdin="")
    assert out.returncode == 2 and "latex" in out.stderr


def test_regrade_against_a_real_ledger(ledger):
    c = ledger.client()
    run = c.create_run("regrade-run", primary_task="ones_digit")
    ckpt_dir = ledger.checkpoint_root / "step-10"
    ckpt_dir.mkdir()
    ckpt = c.register_checkpoint(CheckpointCreate(run_id=run.id, step=10, path=str(ckpt_dir)))
    spec = EvalSpec(task="ones_digit", grader_version="0", sampling={"n": 2})
    job = c.enqueue(spec, checkpoint_id=ckpt.id).job
    lease = c.claim("test-worker")
    assert lease is not None and lease.job.id == job.id
    # An "old grader" stored these: it marked a right answer wrong and a wrong one right.
    stored = [
        Sample(
            index=0,
            sample=0,
            prompt="p",
            response="a</think> <answer>23</answer>",
            gold="23",
            extracted="23",
            correct=False,
            format_ok=True,
            category="wrong_answer",
            num_tokens=9,
            finish_reason="stop",
        ),
        Sample(
            index=0,
            sample=1,
            prompt="p",
            response="a</think> <answer>22</answer>",
            gold="23",
            extracted="22",
            correct=True,
            format_ok=True,
            category="correct",
            num_tokens=9,
            finish_reason="stop",
        ),
        Sample(
            index=1,
            sample=0,
            prompt="p",
            response="no tags 0",
            gold="0",
            extracted="0",
            correct=True,
            format_ok=True,
            category="correct",
            num_tokens=3,
            finish_reason="stop",
        ),
        Sample(
            index=1,
            sample=1,
            prompt="p",
            response="b</think> <answer>0.0</answer>",
            gold="0",
            extracted=None,
            correct=False,
            format_ok=False,
            category="no_answer",
            num_tokens=7,
            finish_reason="stop",
        ),
    ]
    c.complete(
        job.id,
        CompleteRequest(
            worker_id="test-worker", attempt=lease.attempt, metrics={"accuracy": 0.5}, samples=stored
        ),
    )

    env = {**ledger.client_env(), "DUET_API_TOKEN": ledger.admin_token}
    out = duet("regrade", str(job.id), "--page-size", "3", env=env)  # 2 pages
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["samples"] == 4 and summary["changed"] == 4 and summary["format"] == "r1_zero"
    assert summary["previous_grader_version"] == "0"

    result = c.result(job.id)
    assert result.grader_version == GRADER_VERSION
    assert result.info["regrades"] == [{"from": "0", "to": GRADER_VERSION}]  # the old version stays visible
    assert result.metrics["accuracy"] == pytest.approx(0.5)
    # "no tags 0" fails the format but states the right answer: format-free 3 of 4
    assert result.metrics["answer_accuracy"] == pytest.approx(0.75)
    assert c.scores(run.name)[0].grader_version == GRADER_VERSION
    assert result.metrics["pass@2"] == pytest.approx(1.0)
    assert result.metrics["fail/missing_think_close"] == pytest.approx(0.25)
    page = c.samples(job.id, limit=10)
    got = {(x.index, x.sample): (x.correct, x.answer_correct, x.category) for x in page.items}
    assert got == {
        (0, 0): (True, True, "correct"),
        (0, 1): (False, False, "wrong_answer"),
        (1, 0): (False, True, "missing_think_close"),
        (1, 1): (True, True, "correct"),
    }

    # The whole run again: same grader, same verdicts, one line per job with stored samples.
    again = duet("regrade", "--run", run.name, env=env)
    assert again.returncode == 0, again.stderr
    lines = [json.loads(line) for line in again.stdout.splitlines()]
    assert [(x["job"], x["changed"], x["previous_grader_version"]) for x in lines] == [
        (job.id, 0, GRADER_VERSION)
    ]
    assert duet("regrade", env=env).returncode == 2  # neither a job nor --run

    # Without the admin token the ledger refuses, and the command says so.
    refused = duet("regrade", str(job.id), env=ledger.client_env())
    assert refused.returncode == 1 and "duet regrade:" in refused.stderr


def test_grading_and_tasks_import_light():
    # The worker, the trainer and the CLI import these; sympy loads only in the verifier child.
    code = (
        "import sys, cli.grade, shared.grading, shared.tasks; "
        "print(sorted(m for m in ('torch', 'sympy', 'math_verify', 'transformers', 'vllm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
