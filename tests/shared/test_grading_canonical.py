"""The cheap exact reading before math-verify: it decides the common MATH/GSM8K forms, and where it
decides, it says what math-verify says (checked here against math-verify itself)."""

from __future__ import annotations

import pytest

from shared.grading import MathVerifier
from shared.grading.canonical import cheap_verdict
from shared.grading.verifier import Request

# (gold, pred): all read cheaply (a verdict without sympy).
DECIDED = [
    ("11111111100", "11,\\! 111,\\! 111,\\! 100"),
    ("1000", "1{,}000"),
    ("\\frac{1}{2}", "\\dfrac12"),
    ("\\frac{3}{4}", "\\tfrac{3}{5}"),
    ("-\\frac{1}{2}", "\\frac{-1}{2}"),
    ("\\frac{3\\sqrt{2}}{4}", "\\frac{3}{4}\\sqrt{2}"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"),
    ("3\\pi", "\\pi \\cdot 3"),
    ("\\frac{\\pi}{2}", "\\frac{1}{2}\\pi"),
    ("5", "\\$5"),
    ("30", "30^\\circ"),
    ("12", "12\\text{ cm}"),
    ("x^2+3x", "x(x+3)"),
    ("x^2+3x", "x^2+4x"),
    ("(5, 8)", "(8, 5)"),
    ("(0, 1]", "[0,1]"),
    ("\\{1,2\\}", "\\{2,1\\}"),
    ("\\{1,2\\}", "\\{1,3\\}"),
    ("(1,2,3)", "(1,3,2)"),
    ("\\frac{1}{3}", "0.3"),
    ("2", "4/2"),
]
# Left to math-verify: a second reading could match, a rounding could hide a gap, or outside the grammar.
UNDECIDED = [
    ("5", "- 5"),  # plain-text reading: 5
    ("1", "x+1"),  # plain-text reading: 1
    ("\\frac{1}{3}", "0.333333"),  # equal after math-verify's 6-place rounding
    ("1", "1.0000001"),  # unequal: math-verify's rounding does not apply to integers
    ("50", "50\\%"),
    ("1,-2", "-2,1"),
    ("[1, 2, 3)", "[1,2,3)"),
    ("\\text{(C)}", "C"),
    ("y = 2x", "2x"),
    ("\\frac{x}{y}", "\\frac{2x}{2y}"),
]


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(timeout_s=30.0)
    yield v
    v.close()


@pytest.mark.parametrize(("gold", "pred"), DECIDED)
def test_cheap_reading_decides_the_common_forms_as_math_verify_does(verifier, gold, pred):
    verdict = cheap_verdict(gold, pred)
    assert verdict is not None
    assert verdict == verifier.verify(gold, pred)


@pytest.mark.parametrize(("gold", "pred"), UNDECIDED)
def test_cheap_reading_leaves_uncertain_cases_to_math_verify(gold, pred):
    assert cheap_verdict(gold, pred) is None


def test_chunked_requests_keep_order_and_a_stuck_one_costs_only_itself():
    verifier = MathVerifier(timeout_s=2.0, processes=1)
    try:
        requests = [(Request.bare, f"{n}x", f"x \\cdot {n}") for n in range(1, 21)]
        requests[7] = (Request.bare, "1", "9^{9^{9^{9}}}")  # pathological: cut off, its child killed
        verdicts = verifier.judge_many(requests)
        assert verdicts[7] == (None, None)
        assert verifier.timeouts == 1
        # the requests after it in the same chunk were requeued to a fresh child and answered
        assert [v[0] for i, v in enumerate(verdicts) if i != 7] == [True] * 19
    finally:
        verifier.close()
