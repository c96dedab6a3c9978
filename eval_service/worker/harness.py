"""lm-evaluation-harness tasks on the worker's persistent engine: `run_harness_task(backend, name)`.

The harness renders prompts, filters answers and computes its own metrics; duet supplies the model
(`DuetHarnessLM` over the already-loaded `Backend`, no second engine) and turns the harness's
per-document records into duet `Sample`s, so sample browsing and per-question diffs work unchanged.

Metric names (bare, the ledger adds `eval/`): a harness key `<metric>,<filter>` becomes
`<metric>_<filter>` (`exact_match,strict-match` -> `exact_match_strict-match`); filter `none` is
dropped (`acc,none` -> `acc`). `accuracy` is the task's primary metric -- the first metric under the
first filter -- when that metric is a per-document 0/1 verdict (it is then also each sample's
`correct`). Needs the optional `lmeval` extra (`pip install duet[lmeval]`).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval_service.worker.engine import Backend
from eval_service.worker.harness_lm import DuetHarnessLM, Generation, backend_tokenizer
from shared.grading.categories import CORRECT, NO_ANSWER, TRUNCATED, WRONG_ANSWER
from shared.schemas import Sample

log = logging.getLogger("duet.worker.harness")

TASK_PREFIX = "lm_eval:"  # EvalSpec.task of a harness task: "lm_eval:<harness task name>"
NO_VERDICT = "no_verdict"  # category of a sample whose primary metric is not a 0/1 verdict (perplexity)
# what lm-eval's regex filters return when nothing matched
_HARNESS_NO_MATCH = "[invalid]"

__all__ = ["TASK_PREFIX", "DuetHarnessLM", "HarnessResult", "harness_task_name", "run_harness_task"]


@dataclass
class HarnessResult:
    task: str
    primary_metric: str  # duet name of the primary metric, e.g. "exact_match_strict-match"
    metrics: dict[str, float]  # bare duet names (CompleteRequest.metrics)
    samples: list[Sample]
    question_ids: list[str]  # per sample: the harness doc_id, the question's identity across checkpoints
    records: list[dict[str, Any]]  # lm-eval's own records, one per (doc, filter): its --log_samples layout
    info: dict[str, Any] = field(default_factory=dict)  # harness version, n-shot, timings


def harness_task_name(task: str) -> str | None:
    """`lm_eval:gsm8k_cot` -> `gsm8k_cot`; None for duet's own tasks."""
    if not task.startswith(TASK_PREFIX):
        return None
    name = task.removeprefix(TASK_PREFIX)
    if not name:
        raise ValueError(f"task {task!r}: give a harness task after {TASK_PREFIX!r}, e.g. lm_eval:gsm8k_cot")
    return name


def duet_metric_name(harness_key: str) -> str:
    """`exact_match,strict-match` -> `exact_match_strict-match`; `acc,none` -> `acc`."""
    metric, _, filt = harness_key.partition(",")
    return metric if filt in ("", "none") else f"{metric}_{filt}"


@functools.lru_cache(maxsize=4)
def _task_manager(include_path: str | None, include_defaults: bool) -> Any:
    # Indexing lm-eval's ~15k built-in task files takes seconds: do it once per worker process.
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=include_defaults)


def run_harness_task(
    backend: Backend,
    task_name: str,
    *,
    include_path: Path | str | None = None,
    include_defaults: bool = True,
    limit: int | None = None,
    seed: int = 0,
    tokenizer: Any = None,
    apply_chat_template: bool = False,
    num_fewshot: int | None = None,
    bootstrap_iters: int = 1000,
) -> HarnessResult:
    """Run harness task `task_name` on the checkpoint `backend` has loaded (call `backend.load` first).

    `include_path`: a directory of extra task YAMLs (lm-eval's `--include_path`); `include_defaults`:
    also index lm-eval's built-in tasks. `limit`: the first N documents. `tokenizer`: the loaded
    checkpoint's (default: the backend's own). Raises ValueError for an unknown task or a group."""
    from lm_eval import __version__ as lm_eval_version
    from lm_eval import simple_evaluate

    tm = _task_manager(str(include_path) if include_path is not None else None, include_defaults)
    if task_name not in tm.all_tasks:
        where = f" under {include_path}" if include_path else ""
        raise ValueError(f"lm_eval task {task_name!r} not found{where} (include_defaults={include_defaults})")
    if task_name in tm.all_groups or task_name in tm.all_tags:
        raise ValueError(f"lm_eval task {task_name!r} is a group/tag of several tasks; give one task")
    lm = DuetHarnessLM(backend, tokenizer if tokenizer is not None else backend_tokenizer(backend), seed=seed)
    t0 = time.perf_counter()
    out = simple_evaluate(
        model=lm,
        tasks=[task_name],
        task_manager=tm,
        limit=limit,
        num_fewshot=num_fewshot,
        log_samples=True,
        apply_chat_template=apply_chat_template,
        bootstrap_iters=bootstrap_iters,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    if out is None:  # only on non-zero ranks, which a single worker never is
        raise RuntimeError(f"lm_eval returned no results for {task_name!r}")
    eval_s = time.perf_counter() - t0
    if set(out["results"]) != {task_name}:
        raise ValueError(
            f"lm_eval task {task_name!r} ran as several tasks {sorted(out['results'])}; give one"
        )
    records = out["samples"][task_name]
    if not records:
        raise ValueError(f"lm_eval task {task_name!r}: no documents (limit={limit})")
    primary_filter, primary_key = records[0]["filter"], records[0]["metrics"][0]
    primary = duet_metric_name(f"{primary_key},{primary_filter}")
    ours = [r for r in records if r["filter"] == primary_filter]
    output_type = out["configs"][task_name].get("output_type", "generate_until")
    samples = [_to_sample(r, primary_key, output_type, lm.generations) for r in ours]

    metrics = _metrics(out["results"][task_name])
    if all(_verdict(r[primary_key]) is not None for r in ours):
        metrics["accuracy"] = metrics[primary]
        metrics["n_correct"] = float(sum(s.correct for s in samples))
    metrics["n_samples"] = float(len(samples))
    info = {
        "harness": "lm_eval",
        "lm_eval_version": lm_eval_version,
        "harness_task": task_name,
        "harness_primary_metric": f"{primary_key},{primary_filter}",
        "n_shot": out["n-shot"].get(task_name),
        "harness_eval_s": round(eval_s, 4),
    }
    question_ids = [str(r["doc_id"]) for r in ours]
    return HarnessResult(task_name, primary, metrics, samples, question_ids, records, info)


def _metrics(task_results: dict[str, Any]) -> dict[str, float]:
    metrics = {}
    for key, value in task_results.items():
        # metrics are "<metric>,<filter>" ("alias", "sample_len" are not); stderr is "N/A" where none
        if "," not in key or isinstance(value, str) or value is None:
            continue
        metrics[duet_metric_name(key)] = float(value)
    return metrics


def _verdict(value: Any) -> bool | None:
    """A per-document metric as right/wrong, or None when it is not a 0/1 verdict."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    return None


def _to_sample(
    rec: dict[str, Any], primary_key: str, output_type: str, gens: dict[tuple[str, str], list[Generation]]
) -> Sample:
    args = rec["arguments"]  # one tuple of request args per request of this doc
    prompt = args[0][0]
    verdict = _verdict(rec[primary_key])
    num_tokens, finish = 0, None
    filtered = rec["filtered_resps"][0]
    if output_type == "generate_until":
        # the raw generation (first of the harness's repeats), before the task's filters
        response = rec["resps"][0][0]
        extracted = str(filtered)
        gen = gens.get((prompt, json.dumps(args[0][1], sort_keys=True)))
        if gen:
            num_tokens, finish = gen[0].num_tokens, gen[0].finish_reason
    elif output_type == "multiple_choice":
        # one (logprob, is_greedy) per choice; the filtered answer is the highest-scoring choice
        scores = [ll for ll, _ in rec["filtered_resps"]]
        best = max(range(len(scores)), key=scores.__getitem__)
        response = extracted = args[best][1].strip()
    else:  # loglikelihood / loglikelihood_rolling: the score of the given text
        response = args[0][-1] if output_type == "loglikelihood" else ""
        value = filtered[0] if isinstance(filtered, list | tuple) else filtered
        extracted = f"{float(value):.6g}"
    gold = rec["target"]
    if output_type == "multiple_choice" and isinstance(gold, int) and 0 <= gold < len(args):
        gold = args[gold][1].strip()
    format_ok = extracted != _HARNESS_NO_MATCH
    if verdict is None:
        category = NO_VERDICT
    elif verdict:
        category = CORRECT
    elif format_ok:
        category = WRONG_ANSWER
    else:
        category = TRUNCATED if finish == "length" else NO_ANSWER
    return Sample(
        index=int(rec["doc_id"]),
        sample=0,
        prompt=prompt,
        response=str(response),
        gold=str(gold),
        extracted=extracted,
        correct=bool(verdict),
        format_ok=format_ok,
        category=category,
        num_tokens=num_tokens,
        finish_reason=finish,
    )
