"""Answer extraction and format-failure categories for every answer format."""

from __future__ import annotations

import pytest

from shared.grading import (
    CORRECT,
    MISSING_ANSWER_CLOSE,
    MISSING_ANSWER_OPEN,
    MISSING_THINK_CLOSE,
    NO_ANSWER,
    TRUNCATED,
    WRONG_ANSWER,
    WRONG_ORDER,
    grade_response,
)

R1 = [
    # (response, finish_reason, correct, format_ok, extracted, category)
    ("N+1=114. x=2,7. 12+11=23</think> <answer>23</answer>", "stop", True, True, "23", CORRECT),
    ("<think>reasoning</think> <answer> 23 </answer>", "stop", True, True, "23", CORRECT),
    ("reasoning</think>\n<answer>22</answer>", "stop", False, True, "22", WRONG_ANSWER),
    ("thinking forever, 23", "stop", False, False, None, MISSING_THINK_CLOSE),
    ("thinking forever, 23", "length", False, False, None, TRUNCATED),
    ("done</think> so 23", "stop", False, False, None, MISSING_ANSWER_OPEN),
    ("done</think> <answer>23", "stop", False, False, None, MISSING_ANSWER_CLOSE),
    ("done</think> <answer>23", "length", False, False, None, TRUNCATED),
    ("<answer>23</answer> then </think>", "stop", False, False, None, WRONG_ORDER),
    ("done</think> </answer>23<answer>", "stop", False, False, None, WRONG_ORDER),
    ("done</think> <answer>  </answer>", "stop", False, False, None, NO_ANSWER),
]


@pytest.mark.parametrize(("response", "finish", "correct", "format_ok", "extracted", "category"), R1)
def test_r1_zero(response, finish, correct, format_ok, extracted, category):
    g = grade_response(response, "23", "r1_zero", finish)
    assert (g.correct, g.format_ok, g.extracted, g.category) == (correct, format_ok, extracted, category)


def test_r1_zero_takes_the_last_answer_after_think():
    g = grade_response("a</think> <answer>5</answer> <answer>23</answer>", "23", "r1_zero")
    assert g.correct and g.extracted == "23"


GSM8K = [
    ("3 * 6 = 18\n12 + 18 = 30\n#### 30", None, True, True, "30", CORRECT),
    ("#### $1,234.", None, True, True, "1,234", CORRECT),  # gold 1234 below uses commas path
    ("So the answer is 30", "stop", True, False, "30", MISSING_ANSWER_OPEN),  # lenient fallback
    ("So the answer is 31", "stop", False, False, "31", MISSING_ANSWER_OPEN),
    ("no digits at all", "stop", False, False, None, NO_ANSWER),
    ("we keep going 3 + 4", "length", False, False, "4", TRUNCATED),
    ("#### ", None, False, False, None, NO_ANSWER),
    ("#### 29", None, False, True, "29", WRONG_ANSWER),
]


@pytest.mark.parametrize(("response", "finish", "correct", "format_ok", "extracted", "category"), GSM8K)
def test_gsm8k(response, finish, correct, format_ok, extracted, category):
    gold = "1234" if "1,234" in response else "30"
    g = grade_response(response, gold, "gsm8k", finish)
    assert (g.correct, g.format_ok, g.extracted, g.category) == (correct, format_ok, extracted, category)


BOXED = [
    ("so $x=\\boxed{\\frac{1}{2}}$.", None, True, True, "\\frac{1}{2}", CORRECT),
    ("first \\boxed{3} then \\boxed{0.5}", None, True, True, "0.5", CORRECT),  # last box wins
    ("\\boxed{\\frac{\\sqrt{4}}{4}}", None, True, True, "\\frac{\\sqrt{4}}{4}", CORRECT),  # nested braces
    ("the answer is 1/2", None, False, False, None, MISSING_ANSWER_OPEN),
    ("\\boxed{\\frac{1}{2}", None, False, False, None, MISSING_ANSWER_CLOSE),
    ("\\boxed{\\frac{1}{2}", "length", False, False, None, TRUNCATED),
    ("\\boxed{ }", None, False, False, None, NO_ANSWER),
    ("\\boxed{3}", None, False, True, "3", WRONG_ANSWER),
]


@pytest.mark.parametrize(("response", "finish", "correct", "format_ok", "extracted", "category"), BOXED)
def test_boxed(response, finish, correct, format_ok, extracted, category):
    g = grade_response(response, "1/2", "boxed", finish)
    assert (g.correct, g.format_ok, g.extracted, g.category) == (correct, format_ok, extracted, category)


FREEFORM = [
    ("We get 5 then 12.", "12", True, "12"),
    ("The answer is -7.", "-7", True, "-7"),
    ("Answer: x+1", "1+x", True, "x+1"),
    ("so it is \\boxed{3/4} and then 9 more words", "0.75", True, "3/4"),
    ("I think 8", "9", False, "8"),
]


@pytest.mark.parametrize(("response", "gold", "correct", "extracted"), FREEFORM)
def test_freeform(response, gold, correct, extracted):
    g = grade_response(response, gold, "freeform")
    assert (g.correct, g.format_ok, g.extracted) == (correct, True, extracted)


def test_freeform_without_anything_is_no_answer():
    g = grade_response("I do not know", "3", "freeform", "stop")
    assert (g.correct, g.format_ok, g.category) == (False, False, NO_ANSWER)


def test_unknown_format_is_an_error():
    with pytest.raises(ValueError, match="unknown answer format 'latex'"):
        grade_response("1", "1", "latex")
