"""Equivalence: the fast path, math-verify's slow path, normalisation policy and the timeout."""

from __future__ import annotations

import threading

import pytest

from shared.grading import MathVerifier, fast_equivalent, grade_response, is_equivalent
from shared.grading.verifier import default_verifier

EQUAL = [
    ("0.5", "1/2"),
    ("1/2", "0.5"),
    ("\\frac{1}{2}", "0.5"),
    ("\\dfrac{3}{4}", "0.75"),
    ("-\\frac{1}{2}", "-0.5"),
    ("1,234", "1234"),
    ("1,234,567.5", "1234567.5"),
    ("$18", "18"),
    ("\\$18.00", "18"),
    ("12 cm", "12"),
    ("12\\text{ cm}", "12"),
    ("5 dollars", "5"),
    ("50%", "50"),
    ("50\\%", "50"),
    ("50%", "0.5"),
    ("-3", "-3.0"),
    ("7.", "7"),
    ("$\\frac{5}{6}$", "\\frac{5}{6}"),
]
NOT_EQUAL = [
    ("0.33", "1/3"),
    ("0.5", "50"),  # a bare number is not a percent of itself
    ("-3", "3"),
    ("12", "13"),
    ("1,234", "1.234"),
]
SLOW_EQUAL = [
    ("\\frac{\\sqrt{4}}{4}", "1/2"),
    ("\\{1,2\\}", "\\{2,1\\}"),
    ("(0, 1]", "(0,1]"),
    ("x(x+2)", "x^2+2x"),
    ("\\pi \\cdot 9", "9\\pi"),
    ("5\\sqrt{2}", "\\sqrt{50}"),
    ("-3,3", "3,-3"),
]
SLOW_NOT_EQUAL = [
    ("(0,1]", "[0,1]"),
    ("\\{1,2\\}", "\\{1,3\\}"),
    ("x^2", "x^3"),
    ("\\sqrt{2}", "1.4"),
]


@pytest.mark.parametrize(("pred", "gold"), EQUAL)
def test_equal(pred, gold):
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize(("pred", "gold"), NOT_EQUAL)
def test_not_equal(pred, gold):
    assert not is_equivalent(pred, gold)


@pytest.mark.parametrize(("pred", "gold"), SLOW_EQUAL)
def test_slow_path_equal(pred, gold):
    assert default_verifier().verify(gold, pred) is True  # math-verify itself, not the cheap reading
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize(("pred", "gold"), SLOW_NOT_EQUAL)
def test_slow_path_not_equal(pred, gold):
    assert not is_equivalent(pred, gold)


def test_plain_numbers_never_need_sympy():
    for pred, gold in [("42", "42.0"), ("-0.5", "-0.50"), ("7", "8"), ("3.5", "3.4"), ("12", "12")]:
        assert fast_equivalent(pred, gold) is not None


def test_pathological_expression_times_out_and_grading_goes_on():
    verifier = MathVerifier(timeout_s=1.0)
    try:
        assert verifier.verify("1", "1") is True  # warm: the child has imported sympy
        assert verifier.verify("1", "9^{9^{9^{9}}}") is None  # cut off, child killed
        assert verifier.timeouts == 1
        g = grade_response("x</think> <answer>9^{9^{9^{9}}}</answer>", "1", "r1_zero", verifier=verifier)
        assert (g.correct, g.format_ok, g.category) == (False, True, "wrong_answer")
        # A fresh child answers the next comparison.
        assert verifier.verify("\\frac{1}{2}", "\\frac{2}{4}") is True
    finally:
        verifier.close()


def test_grading_works_off_the_main_thread():
    verifier = MathVerifier(timeout_s=5.0)
    results: list[bool] = []

    def work() -> None:
        for pred in ("\\sqrt{4}", "x^2", "2"):
            results.append(is_equivalent(pred, "2", verifier=verifier))

    try:
        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(results) == [False, False, True, True, True, True]
    finally:
        verifier.close()
