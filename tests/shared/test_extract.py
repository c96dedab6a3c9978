"""Format rules (the reference graders' own), the committed answer and the failure categories."""

from __future__ import annotations

import pytest

from shared.grading import (
    CORRECT,
    MISSING_ANSWER_CLOSE,
    MISSING_ANSWER_OPEN,
    MISSING_THINK_CLOSE,
    NO_ANSWER,
    TAG_SPACING,
    TRUNCATED,
    WRONG_ANSWER,
    WRONG_ORDER,
    grade_response,
)

R1 = [
    # (response, finish_reason, correct, answer_correct, format_ok, extracted, category); gold 23
    ("N+1=114. x=2,7. 12+11=23</think> <answer>23</answer>", "stop", True, True, True, "23", CORRECT),
    ("<think>reasoning</think> <answer> 23 </answer>", "stop", True, True, True, "23", CORRECT),
    ("reasoning</think> <answer>22</answer>", "stop", False, False, True, "22", WRONG_ANSWER),
    # CS336's literal `</think> <answer>`: a newline, no space or two spaces fail the format only
    ("reasoning</think>\n<answer>23</answer>", "stop", False, True, False, "23", TAG_SPACING),
    ("reasoning</think><answer>23</answer>", "stop", False, True, False, "23", TAG_SPACING),
    ("reasoning</think>  <answer>23</answer>", "stop", False, True, False, "23", TAG_SPACING),
    ("thinking forever, 23", "stop", False, True, False, "23", MISSING_THINK_CLOSE),
    ("thinking forever, 23", "length", False, True, False, "23", TRUNCATED),
    ("done</think> so 23", "stop", False, True, False, "23", MISSING_ANSWER_OPEN),
    ("done</think> <answer>23", "stop", False, True, False, "23", MISSING_ANSWER_CLOSE),
    ("done</think> <answer>23", "length", False, True, False, "23", TRUNCATED),
    ("<answer>23</answer> then </think>", "stop", False, True, False, "23", WRONG_ORDER),
    ("done</think> </answer>22<answer>", "stop", False, False, False, None, WRONG_ORDER),
    ("done</think> <answer>  </answer>", "stop", False, False, True, None, WRONG_ANSWER),
    ("So 23.</THINK> <ANSWER>23</ANSWER>", "stop", False, True, False, "23", MISSING_THINK_CLOSE),
]


@pytest.mark.parametrize(
    ("response", "finish", "correct", "answer", "format_ok", "extracted", "category"), R1
)
def test_r1_zero(response, finish, correct, answer, format_ok, extracted, category):
    g = grade_response(response, "23", "r1_zero", finish)
    assert (g.correct, g.answer_correct, g.format_ok, g.extracted, g.category) == (
        correct,
        answer,
        format_ok,
        extracted,
        category,
    )


def test_r1_zero_takes_the_last_answer_tag():
    g = grade_response("a</think> <answer>5</answer> <answer>23</answer>", "23", "r1_zero")
    assert g.correct and g.extracted == "23"


def test_r1_zero_lenient_is_an_option_not_the_default():
    response = "reasoning</think>\n<answer>23</answer>"
    assert not grade_response(response, "23", "r1_zero").format_ok
    assert grade_response(response, "23", "r1_zero", lenient=True).correct


GSM8K = [
    # (response, finish, correct, answer_correct, format_ok, extracted, category); gold 30 (1234)
    ("3 * 6 = 18\n12 + 18 = 30\n#### 30", None, True, True, True, "30", CORRECT),
    ("#### 1,234.", None, True, True, True, "1234", CORRECT),
    ("#### 30 apples", None, True, True, True, "30", CORRECT),
    ("#### 29", None, False, False, True, "29", WRONG_ANSWER),
    # lm-eval strict-match needs "#### " and the number: the answer is still graded format-free
    ("So she pays 30 dollars.\n#### $30", "stop", False, True, False, "$30", NO_ANSWER),
    ("So she pays 30 dollars.\n####30", "stop", False, True, False, "30", NO_ANSWER),
    ("So the answer is 30", "stop", False, True, False, "30", MISSING_ANSWER_OPEN),
    ("So the answer is 31", "stop", False, False, False, "31", MISSING_ANSWER_OPEN),
    ("no digits at all", "stop", False, False, False, None, MISSING_ANSWER_OPEN),
    ("we keep going 3 + 4", "length", False, False, False, "4", TRUNCATED),
]


@pytest.mark.parametrize(
    ("response", "finish", "correct", "answer", "format_ok", "extracted", "category"), GSM8K
)
def test_gsm8k(response, finish, correct, answer, format_ok, extracted, category):
    gold = "1234" if "1,234" in response else "30"
    g = grade_response(response, gold, "gsm8k", finish)
    assert (g.correct, g.answer_correct, g.format_ok, g.extracted, g.category) == (
        correct,
        answer,
        format_ok,
        extracted,
        category,
    )


def test_gsm8k_lenient_accepts_dollar_and_no_space():
    for response in ("#### $30", "####30", "####  30"):
        assert not grade_response(response, "30", "gsm8k").format_ok
        assert grade_response(response, "30", "gsm8k", lenient=True).correct


BOXED = [
    # (response, finish, correct, answer_correct, format_ok, category); gold 1/2
    ("so $x=\\boxed{\\frac{1}{2}}$.", None, True, True, True, CORRECT),
    (
        "first \\boxed{3} then \\boxed{0.5}",
        None,
        False,
        False,
        True,
        WRONG_ANSWER,
    ),  # two boxes: a set {3, 0.5}
    ("\\boxed{\\frac{\\sqrt{4}}{4}}", None, True, True, True, CORRECT),  # nested braces
    ("the answer is 1/2", None, False, True, False, MISSING_ANSWER_OPEN),
    # an unclosed box fails the format; math-verify still finds the \frac in the text
    ("\\boxed{\\frac{1}{2}", None, False, True, False, MISSING_ANSWER_CLOSE),
    ("\\boxed{\\frac{1}{2}", "length", False, True, False, TRUNCATED),
    ("\\boxed{3}", None, False, False, True, WRONG_ANSWER),
]


@pytest.mark.parametrize(("response", "finish", "correct", "answer", "format_ok", "category"), BOXED)
def test_boxed(response, finish, correct, answer, format_ok, category):
    g = grade_response(response, "1/2", "boxed", finish)
    assert (g.correct, g.answer_correct, g.format_ok, g.category) == (correct, answer, format_ok, category)


FREEFORM = [
    ("We get 5 then 12.", "12", True),
    ("The answer is -7.", "-7", True),
    ("Answer: $x+1$", "1+x", True),  # math-verify reads variables only as latex
    ("Answer: x+1", "1+x", False),
    ("so it is \\boxed{3/4} and then 9 more words", "0.75", True),
    ("I think 8", "9", False),
]


@pytest.mark.parametrize(("response", "gold", "correct"), FREEFORM)
def test_freeform(response, gold, correct):
    g = grade_response(response, gold, "freeform")
    assert (g.correct, g.answer_correct, g.format_ok) == (correct, correct, True)


def test_freeform_without_anything_is_wrong_with_nothing_extracted():
    g = grade_response("I do not know", "3", "freeform", "stop")
    assert (g.correct, g.answer_correct, g.extracted, g.category) == (False, False, None, WRONG_ANSWER)


def test_unknown_format_is_an_error():
    with pytest.raises(ValueError, match="unknown answer format 'latex'"):
        grade_response("1", "1", "latex")


def test_gsm8k_marker_without_a_number_is_no_answer():
    assert grade_response("#### twelve", "12", "gsm8k").category == NO_ANSWER
