"""An `lm_eval:<task>` job on the worker's loaded checkpoint: the harness's metrics and its
per-document records as duet samples (each with its doc_id as `question_id`, for diffs)."""

from __future__ import annotations

from typing import Any

from eval_service.worker.engine import Backend
from shared.checkpoint import CheckpointError
from shared.schemas import EvalSpec, Sample

# EvalSpec.options a harness job understands (the suite entry's `task_options`)
HARNESS_OPTIONS = frozenset({"include_path", "include_defaults", "num_fewshot", "apply_chat_template"})


def run_harness_job(
    backend: Backend, harness_task: str, spec: EvalSpec, tokenizer: Any
) -> tuple[dict[str, float], list[Sample], dict[str, Any]]:
    """(metrics, samples, info) of harness task `harness_task` run as `spec` asks. CheckpointError
    (the job fails for good) for an unknown option or task."""
    from eval_service.worker.harness import run_harness_task

    unknown = set(spec.options) - HARNESS_OPTIONS
    if unknown:
        raise CheckpointError(  # a bad spec never gets better: not retryable
            f"lm_eval task options {sorted(unknown)} are not understood (valid: {', '.join(sorted(HARNESS_OPTIONS))})"
        )
    options = dict(spec.options)
    if spec.dataset is not None:  # a suite entry's `dataset` is the harness's --include_path
        options.setdefault("include_path", spec.dataset)
    try:
        result = run_harness_task(
            backend, harness_task, limit=spec.limit, seed=spec.sampling.seed, tokenizer=tokenizer, **options
        )
    except ValueError as e:  # unknown task, a group: the spec is wrong, not the checkpoint's luck
        raise CheckpointError(f"spec.task: {e}") from e
    samples = [
        s.model_copy(update={"question_id": qid})
        for s, qid in zip(result.samples, result.question_ids, strict=True)
    ]
    return result.metrics, samples, dict(result.info)
