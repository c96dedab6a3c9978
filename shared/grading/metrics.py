"""Eval metrics from graded samples: `aggregate`, plus the per-sample `token_entropy` and
`is_repetition_loop` the worker computes before storing a sample."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.grading.categories import FAILURE_CATEGORIES, WRONG_ANSWER
from shared.grading.equivalence import normalize, parse_number

if TYPE_CHECKING:
    from shared.schemas import Sample


def _logprob(v: Any) -> float:
    # vLLM hands `Logprob` objects; plain floats come from JSON.
    return float(getattr(v, "logprob", v))


def token_entropy(top_logprobs: list[dict[Any, float]]) -> float:
    """Mean per-token entropy (nats) from per-position top-k logprobs, renormalised over the top-k.

    Returns 0.0 for an empty list. Positions with no candidates are skipped.
    """
    total, count = 0.0, 0
    for position in top_logprobs:
        if not position:
            continue
        lps = [_logprob(v) for v in position.values()]
        finite = [lp for lp in lps if math.isfinite(lp)]
        if not finite:
            continue
        m = max(finite)
        weights = [math.exp(lp - m) for lp in finite]
        z = sum(weights)
        total -= sum((w / z) * math.log(w / z) for w in weights if w > 0)
        count += 1
    return total / count if count else 0.0


def is_repetition_loop(text: str, *, window: int = 400, max_period: int = 100, min_span: int = 60) -> bool:
    """True when the text ends in a loop: its tail repeats one unit (period <= max_period chars) at
    least 3 times and over at least `min_span` chars, e.g. "so so so ..." or a repeated sentence."""
    tail = text[-window:]
    n = len(tail)
    for period in range(1, min(max_period, n // 3) + 1):
        run = 0
        for i in range(n - 1, period - 1, -1):
            if tail[i] != tail[i - period]:
                break
            run += 1
        span = run + period
        if span >= 3 * period and span >= min_span:
            return True
    return False


def _pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    k = min(k, n)
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _vote_key(extracted: str) -> str:
    s, percent = normalize(extracted)
    v = parse_number(s)
    key = str(v) if v is not None else s
    return key + ("%" if percent else "")


def _majority_correct(samples: Sequence[Sample]) -> bool:
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        if s.extracted is not None and s.extracted.strip():
            groups.setdefault(_vote_key(s.extracted), []).append(s)
    if not groups:
        return False
    # Largest group wins; ties go to the answer seen first (dicts keep insertion order).
    winner = max(groups.values(), key=len)
    return sum(s.correct for s in winner) * 2 > len(winner) or all(s.correct for s in winner)


def aggregate(samples: Sequence[Sample], k: int = 1) -> dict[str, float]:
    """Metrics over graded samples (bare names; the ledger prefixes `eval/`).

    `accuracy` is strict (format and answer), `answer_accuracy` format-free (the answer alone).
    Rates are over all samples. Means over an empty subset (no correct samples, no entropies)
    are left out rather than reported as 0. With k > 1, `pass@k` and `maj@k` group samples by
    `Sample.index`: pass@k is the unbiased estimator over all of an example's samples (an example
    with fewer than k samples counts as pass@n), maj@k votes among its first k (by `Sample.sample`).
    """
    n = len(samples)
    if n == 0:
        return {"n_samples": 0.0}
    n_correct = sum(s.correct for s in samples)
    n_format = sum(s.format_ok for s in samples)
    out: dict[str, float] = {
        "accuracy": n_correct / n,
        "format_accuracy": n_format / n,
        "wrong_answer_rate": sum(s.category == WRONG_ANSWER for s in samples) / n,
        "format_failure_rate": sum(s.category in FAILURE_CATEGORIES for s in samples) / n,
        "n_correct": float(n_correct),
        "n_format_ok": float(n_format),
        "n_samples": float(n),
    }
    # Format-free accuracy: left out when some sample was graded before that verdict existed.
    if all(s.answer_correct is not None for s in samples):
        n_answer = sum(bool(s.answer_correct) for s in samples)
        out["answer_accuracy"] = n_answer / n
        out["n_answer_correct"] = float(n_answer)
    for cat in FAILURE_CATEGORIES:
        out[f"fail/{cat}"] = sum(s.category == cat for s in samples) / n
    out["mean_length"] = sum(s.num_tokens for s in samples) / n
    correct = [s.num_tokens for s in samples if s.correct]
    incorrect = [s.num_tokens for s in samples if not s.correct]
    if correct:
        out["mean_length_correct"] = sum(correct) / len(correct)
    if incorrect:
        out["mean_length_incorrect"] = sum(incorrect) / len(incorrect)
    entropies = [s.mean_entropy for s in samples if s.mean_entropy is not None]
    if entropies:
        out["mean_entropy"] = sum(entropies) / len(entropies)
    out["eos_rate"] = sum(s.finish_reason == "stop" for s in samples) / n
    out["truncation_rate"] = sum(s.finish_reason == "length" for s in samples) / n
    out["repetition_rate"] = sum(is_repetition_loop(s.response) for s in samples) / n
    if k > 1:
        by_example: dict[int, list[Sample]] = defaultdict(list)
        for s in samples:
            by_example[s.index].append(s)
        groups = [sorted(g, key=lambda s: s.sample) for g in by_example.values()]
        # pass@k uses every sample of an example (the unbiased estimator needs n >= k to be exact);
        # maj@k votes among the first k.
        out[f"pass@{k}"] = sum(_pass_at_k(len(g), sum(s.correct for s in g), k) for g in groups) / len(groups)
        out[f"maj@{k}"] = sum(_majority_correct(g[:k]) for g in groups) / len(groups)
    return out
