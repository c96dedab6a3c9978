"""aggregate() on a hand-built sample list, pass@k / maj@k, token entropy, repetition loops."""

from __future__ import annotations

import math

import pytest

from shared.grading import FAILURE_CATEGORIES, aggregate, is_repetition_loop, token_entropy
from shared.schemas import Sample

LOOP = "I will check again. " * 12


def s(index, sample, *, correct, category, extracted, tokens, finish="stop", entropy=None, response="r"):
    return Sample(
        index=index,
        sample=sample,
        prompt="p",
        response=response,
        gold="g",
        extracted=extracted,
        correct=correct,
        format_ok=category in ("correct", "wrong_answer"),
        category=category,
        num_tokens=tokens,
        finish_reason=finish,
        mean_entropy=entropy,
    )


@pytest.fixture
def samples() -> list[Sample]:
    # 3 examples x 3 samples. Golds: ex0 "7", ex1 "6", ex2 "9" wrongly answered.
    return [
        s(0, 0, correct=True, category="correct", extracted="7", tokens=10, entropy=0.5),
        s(0, 1, correct=True, category="correct", extracted="7.0", tokens=20, entropy=1.5),
        s(0, 2, correct=False, category="wrong_answer", extracted="8", tokens=30),
        s(1, 0, correct=False, category="wrong_answer", extracted="5", tokens=40, response=LOOP),
        s(1, 1, correct=False, category="wrong_answer", extracted="5", tokens=50),
        s(1, 2, correct=True, category="correct", extracted="6", tokens=60, entropy=1.0),
        s(2, 0, correct=False, category="truncated", extracted=None, tokens=100, finish="length"),
        s(2, 1, correct=False, category="missing_think_close", extracted=None, tokens=70),
        s(2, 2, correct=False, category="wrong_answer", extracted="4", tokens=80),
    ]


def test_aggregate_values(samples):
    m = aggregate(samples)
    assert m["n_samples"] == 9 and m["n_correct"] == 3 and m["n_format_ok"] == 7
    assert m["accuracy"] == pytest.approx(3 / 9)
    assert m["format_accuracy"] == pytest.approx(7 / 9)
    assert m["wrong_answer_rate"] == pytest.approx(4 / 9)
    assert m["format_failure_rate"] == pytest.approx(2 / 9)
    assert m["fail/truncated"] == pytest.approx(1 / 9)
    assert m["fail/missing_think_close"] == pytest.approx(1 / 9)
    for cat in set(FAILURE_CATEGORIES) - {"truncated", "missing_think_close"}:
        assert m[f"fail/{cat}"] == 0.0
    assert m["mean_length"] == pytest.approx(460 / 9)
    assert m["mean_length_correct"] == pytest.approx(30)
    assert m["mean_length_incorrect"] == pytest.approx(370 / 6)
    assert m["mean_entropy"] == pytest.approx(1.0)
    assert m["eos_rate"] == pytest.approx(8 / 9)
    assert m["truncation_rate"] == pytest.approx(1 / 9)
    assert m["repetition_rate"] == pytest.approx(1 / 9)
    assert not any(key.startswith(("pass@", "maj@")) for key in m)  # k=1


def test_pass_and_majority_at_k(samples):
    m3 = aggregate(samples, k=3)
    assert m3["pass@3"] == pytest.approx(2 / 3)  # ex0 and ex1 have a correct sample
    # Votes: ex0 "7"/"7.0" (the same number) beat "8"; ex1 "5" beats "6"; ex2 only "4".
    assert m3["maj@3"] == pytest.approx(1 / 3)
    m2 = aggregate(samples, k=2)
    # Unbiased estimator with n=3: ex0 (c=2) -> 1, ex1 (c=1) -> 1 - C(2,2)/C(3,2) = 2/3, ex2 -> 0.
    assert m2["pass@2"] == pytest.approx((1 + 2 / 3) / 3)
    # maj@2 votes among the first two: ex0 "7" right, ex1 "5" wrong, ex2 nothing extracted.
    assert m2["maj@2"] == pytest.approx(1 / 3)


def test_aggregate_edge_cases():
    assert aggregate([]) == {"n_samples": 0.0}
    one = [s(0, 0, correct=False, category="no_answer", extracted=None, tokens=5, finish=None)]
    m = aggregate(one)
    assert m["accuracy"] == 0 and m["fail/no_answer"] == 1.0
    assert "mean_length_correct" not in m and "mean_entropy" not in m  # undefined, not a fake 0
    assert m["eos_rate"] == 0 and m["truncation_rate"] == 0


def test_token_entropy():
    uniform4 = {i: math.log(0.25) for i in range(4)}
    assert token_entropy([uniform4]) == pytest.approx(math.log(4))
    # Renormalised over the returned top-k: two equal candidates -> log 2 whatever their mass.
    assert token_entropy([{"a": math.log(0.1), "b": math.log(0.1)}]) == pytest.approx(math.log(2))
    certain = {"x": 0.0}
    assert token_entropy([certain, uniform4]) == pytest.approx(math.log(4) / 2)
    assert token_entropy([]) == 0.0

    class Logprob:  # vLLM's per-token object carries `.logprob`
        def __init__(self, lp: float):
            self.logprob = lp

    assert token_entropy([{1: Logprob(math.log(0.5)), 2: Logprob(math.log(0.5))}]) == pytest.approx(
        math.log(2)
    )


def test_repetition_loop():
    assert is_repetition_loop(LOOP)
    assert is_repetition_loop("Let me think. " + "a" * 80)
    assert is_repetition_loop("start " + "12+11=23 " * 10)
    assert not is_repetition_loop("N+1=114. x=2,7. 12+11=23</think> <answer>23</answer>")
    assert not is_repetition_loop("ha ha ha")  # too short to call a loop
    text = "The pages are renumbered so that page one becomes the last page, and so on until the end."
    assert not is_repetition_loop(text)


def test_answer_accuracy_counts_right_answers_whatever_the_format(samples):
    # Old samples (graded before the format-free verdict) leave the metric out rather than guess.
    assert "answer_accuracy" not in aggregate(samples)
    graded = [
        x.model_copy(update={"answer_correct": x.correct or x.category == "missing_think_close"})
        for x in samples
    ]
    m = aggregate(graded)
    assert m["accuracy"] == pytest.approx(3 / 9)
    assert m["answer_accuracy"] == pytest.approx(4 / 9)
    assert m["n_answer_correct"] == 4.0
