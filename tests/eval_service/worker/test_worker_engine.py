"""`duet worker` end to end on the real vLLM (CPU) engine, the tiny model and a real ledger.

One worker process scores, through one engine: the base model (step 0), a checkpoint that was
there before it started, a hot-swapped checkpoint, two LoRA adapters, a truncated checkpoint and
one that crashes the engine (both fail, the worker recovers) and a checkpoint after those. Its
outputs are then compared with a freshly built vLLM engine and with the HF backend.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eval_service.worker.config import WorkerSettings
from eval_service.worker.engine import Target
from eval_service.worker.hf_backend import HFBackend
from shared.schemas import JobStatus, LoadMode, SamplingSpec
from tests.eval_service.worker.conftest import (
    WorkerProc,
    make_full,
    make_lora,
    make_shape_mismatch,
    make_truncated,
    wait_for,
    worker_env,
)

RUN = "engine-run"
LIMIT, MAX_TOKENS = 8, 16


def _publish(make, root: Path, name: str, **kw) -> Path:
    """Write a checkpoint in a staging dir, then move it in (like a trainer's atomic rename)."""
    staging = root.parent / f".staging-{name}"
    make(dst=staging, **kw)
    return Path(shutil.move(staging, root / name))


def _fresh_outputs(model: Path, prompts: list[str], tmp_path: Path, backend: str = "vllm") -> list[str]:
    pfile = tmp_path / f"prompts-{model.name}.json"
    pfile.write_text(json.dumps(prompts))
    cmd = [sys.executable, "-m", "tests.eval_service.worker.fresh_engine", "--backend", backend]
    cmd += ["--model", str(model), "--prompts", str(pfile), "--max-tokens", str(MAX_TOKENS)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("FRESH_OUTPUTS "))
    return json.loads(line.removeprefix("FRESH_OUTPUTS "))


def _responses(client, job_id: int) -> tuple[list[str], list[str]]:
    items = sorted(client.samples(job_id, limit=1000).items, key=lambda s: (s.index, s.sample))
    return [s.prompt for s in items], [s.response for s in items]


@pytest.mark.slow
def test_one_engine_scores_swaps_loras_and_survives_bad_checkpoints(ledger, local_base, tmp_path):
    root = tmp_path / "ckpts"
    root.mkdir()
    # there before the worker starts, and a partial write (no marker, shard cut short)
    make_full(local_base, root / "checkpoint-100", seed=1, run=RUN, step=100)
    partial = make_full(local_base, root / "checkpoint-700", seed=7, run=None, step=700)
    with open(partial / "model.safetensors", "r+b") as f:
        f.truncate(4096)

    args = ["--watch", str(root), "--run", RUN, "--base-model", str(local_base), "--limit", str(LIMIT)]
    args += ["--max-tokens", str(MAX_TOKENS), "--dtype", "float32", "--rescan-interval-s", "1"]
    args += ["--worker-id", "w1"]
    env = worker_env(ledger, tmp_path, DUET_WORKER_MAX_LORA_RANK="8")
    c = ledger.client()
    c.create_run(RUN)  # idempotent; the worker does the same
    worker = WorkerProc(args, env, tmp_path / "worker.log")

    def by_step() -> dict:
        return {j.step: j for j in c.list_jobs(run=RUN)}

    def settled(steps: set[int]) -> bool:
        jobs = by_step()
        return steps <= set(jobs) and all(jobs[s].status in (JobStatus.done, JobStatus.dead) for s in steps)

    try:
        wait_for(lambda: settled({0, 100}), 240, "base + pre-existing checkpoint scored", worker)
        # waves, because the claim order within a wave is the ledger's business
        ck200 = _publish(make_full, root, "checkpoint-200", base=local_base, seed=2, run=RUN, step=200)
        wait_for(lambda: settled({200}), 120, "the swapped checkpoint scored", worker)
        kw = {"base": local_base, "run": RUN}
        lora300 = _publish(make_lora, root, "checkpoint-300", seed=3, step=300, **kw)
        _publish(make_lora, root, "checkpoint-350", seed=4, step=350, **kw)
        wait_for(lambda: settled({300, 350}), 120, "both adapters scored", worker)
        _publish(make_truncated, root, "checkpoint-400", step=400, **kw)
        _publish(make_shape_mismatch, root, "checkpoint-500", step=500, **kw)
        wait_for(lambda: settled({400, 500}), 180, "the broken checkpoints failed", worker)
        _publish(make_full, root, "checkpoint-600", seed=6, step=600, **kw)
        wait_for(lambda: settled({600}), 120, "the checkpoint after the crash scored", worker)
    finally:
        rc = worker.terminate()
    assert rc == 0, worker.log_tail()

    jobs = by_step()
    assert sorted(jobs) == [0, 100, 200, 300, 350, 400, 500, 600]  # the partial write never counted
    assert 700 not in {ck.step for ck in c.list_checkpoints(RUN)}
    assert {s for s, j in jobs.items() if j.status == JobStatus.dead} == {400, 500}
    assert "truncated" in jobs[400].last_error
    assert "failed to load" in jobs[500].last_error
    assert all(j.attempt == 1 for j in jobs.values())  # refusals are not retried

    info = {s: c.result(j.id).info for s, j in jobs.items() if j.status == JobStatus.done}
    assert info[0]["engine_event"] == "initial"
    for step in (100, 200):
        assert info[step]["engine_event"] == "swap" and info[step]["swap_verified"] is True
    # the run started full-weight, so LoRA was off: the first adapter rebuilds the engine over the
    # base with LoRA on (and says so); the second needs no weight reload at all
    assert sorted(info[s]["engine_event"] for s in (300, 350)) == ["lora", "rebuild"]
    first = next(s for s in (300, 350) if info[s]["engine_event"] == "rebuild")
    assert info[first]["lora"] and "LoRA" in info[first]["load_reason"]
    assert info[600]["engine_event"] == "swap" and info[600]["swap_verified"] is True
    assert info[600]["canary_ok"] is True
    # every result records its load mode (and a rebuild its reason); `duet scores` rows carry it
    results = {s: c.result(j.id) for s, j in jobs.items() if j.status == JobStatus.done}
    assert {s: r.load_mode for s, r in results.items()} == {
        s: LoadMode(i["load_mode"]) for s, i in info.items()
    }
    assert results[0].load_mode == LoadMode.initial and results[200].load_mode == LoadMode.swap
    assert "LoRA" in results[first].load_reason
    assert {r.step: r.load_mode for r in c.scores(RUN)}[200] == LoadMode.swap
    # Prometheus counts loads by mode, so a run that keeps rebuilding shows on a dashboard
    import httpx

    scraped = httpx.get(f"{ledger.url}/metrics").text
    for mode in (LoadMode.swap, LoadMode.rebuild):
        n = sum(r.load_mode == mode for r in results.values())
        assert f'duet_checkpoint_loads_total{{mode="{mode}"}} {float(n)}' in scraped
    assert info[600]["recovered_before"]["engine_event"] == "rebuild"  # after the crash at 500
    for i in info.values():
        assert i["gen_tokens"] > 0 and i["tokens_per_s"] > 0 and "grade_s" in i and i["worker_id"] == "w1"

    for job in jobs.values():
        if job.status != JobStatus.done:
            continue
        page = c.samples(job.id, limit=1000)
        assert page.total == LIMIT
        assert all(
            s.prompt and s.gold and s.mean_entropy is not None and s.num_tokens > 0 for s in page.items
        )
        assert c.result(job.id).metrics["n_samples"] == LIMIT

    prompts, swapped = _responses(c, jobs[200].id)
    _, base_out = _responses(c, jobs[0].id)
    _, out300 = _responses(c, jobs[300].id)
    _, out350 = _responses(c, jobs[350].id)
    assert swapped != base_out and out300 != base_out and out350 != out300
    # the hot-swapped engine answers exactly like a fresh engine built on that checkpoint
    assert _fresh_outputs(ck200, prompts, tmp_path) == swapped
    # and the HF backend (greedy, same dtype) gives the same answers, for full and LoRA checkpoints.
    # Texts are compared up to a trailing U+FFFD: vLLM's incremental detokenizer holds back a final
    # incomplete UTF-8 byte sequence that a one-shot decode renders as replacement characters.
    from shared.tasks import get_task

    task = get_task("ones_digit")
    examples = task.examples("test", limit=LIMIT)
    hf = HFBackend(WorkerSettings(backend="hf", dtype="float32", base_model=local_base))
    for target, expected in ((Target(ck200), swapped), (Target(lora300, "lora", local_base), out300)):
        hf.load(target)
        texts = [o[0].text for o in hf.generate(prompts, SamplingSpec(max_tokens=MAX_TOKENS))]
        assert [t.rstrip("\ufffd") for t in texts] == [t.rstrip("\ufffd") for t in expected]
        graded = [task.grade(t, ex).extracted for t, ex in zip(texts, examples, strict=True)]
        assert graded == [task.grade(t, ex).extracted for t, ex in zip(expected, examples, strict=True)]
