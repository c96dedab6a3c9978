"""Every example of issue 10, one test each: what duet grade said before, what the standard graders say."""

from __future__ import annotations

import pytest

from shared.grading import grade_response


def _grade(response: str, gold: str, fmt: str):
    return grade_response(response, gold, fmt, "stop")


@pytest.mark.parametrize(
    ("response", "gold"),
    [("Answer $ 9 $", "9"), ("\\frac{10}{9}", "10/9"), ("$[0,1)$", "[0,1)")],
    ids=["dollar-9", "frac-10-9", "interval"],
)
def test_boxed_format_failure_still_finds_the_answer(response, gold):
    g = _grade(response, gold, "boxed")
    assert (g.answer_correct, g.format_ok, g.correct) == (True, False, False)
    assert g.extracted is not None


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        ("The integers are \\boxed{-2} and \\boxed{1}.", "1,-2"),
        ("\\boxed{1}, \\boxed{2}, \\boxed{3}", "\\{1,2,3\\}"),
        ("The solutions are \\boxed{(5,8)} and \\boxed{(8,5)}.", "(5, 8), (8, 5)"),
    ],
    ids=["two-roots", "three-boxes-set", "two-pairs"],
)
def test_several_boxes_combine_when_the_gold_lists_several(response, gold):
    assert _grade(response, gold, "boxed").correct


def test_final_answer_phrase_beats_an_intermediate_box():
    response = "First $2^8-1=\\boxed{255}$ is an intermediate value.\nThe final answer is $10455$"
    assert _grade(response, "10455", "boxed").correct
    assert not _grade(response, "255", "boxed").answer_correct


def test_thin_spaces_inside_a_number():
    assert _grade("The number is $\\boxed{11,\\! 111,\\! 111,\\! 100}$.", "11111111100", "boxed").correct


def test_text_choice_letter():
    assert _grade("The answer is $\\boxed{\\text{(C)}}$.", "\\text{C}", "boxed").correct


def test_x_in_interval_union():
    response = "Thus, the answer is $x \\in \\boxed{(2,12) \\cup (12,102)}$"
    assert _grade(response, "(2, 12) \\cup (12, 102)", "boxed").correct


@pytest.mark.parametrize("response", ["</think>\n<answer> 72 </answer>", "</think><answer>72</answer>"])
def test_r1_zero_needs_cs336s_literal_separator(response):
    g = _grade(response, "72", "r1_zero")
    assert (g.format_ok, g.correct, g.answer_correct) == (False, False, True)


def test_r1_zero_text_unit_around_the_number():
    g = _grade("The side is 5 cm.</think> <answer> \\text{5 cm} </answer>", "5", "r1_zero")
    assert (g.format_ok, g.correct) == (True, True)


@pytest.mark.parametrize("response", ["She pays 3 * 6 = 18 dollars.\n#### $18", "She pays 18.\n####18"])
def test_gsm8k_strict_match_refuses_what_lm_eval_refuses(response):
    g = _grade(response, "18", "gsm8k")
    assert (g.format_ok, g.correct, g.answer_correct) == (False, False, True)


def test_freeform_space_as_thousands_separator():
    g = _grade("The answer is 1 000.", "1000", "freeform")
    assert g.correct and g.answer_correct


def test_format_failures_with_the_right_answer_are_counted_apart():
    from shared.grading import aggregate
    from shared.schemas import Sample

    graded = [
        _grade(r, "72", "r1_zero") for r in ("</think> <answer>72</answer>", "</think>\n<answer>72</answer>")
    ]
    samples = [
        Sample(index=i, prompt="p", response="r", gold="72", **g.to_dict()) for i, g in enumerate(graded)
    ]
    metrics = aggregate(samples)
    assert (metrics["accuracy"], metrics["answer_accuracy"], metrics["n_answer_correct"]) == (0.5, 1.0, 2.0)
