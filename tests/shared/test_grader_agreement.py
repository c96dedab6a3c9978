"""duet's grader against the labels of 776 public grader cases (tests/shared/data/grader_cases.jsonl:
Math-Verify's, lm-eval's GSM8K, CS336's, Qwen2.5-Math's and lighteval's own examples, each with its
source). The table in docs/grading.md comes from `bench/grader_agreement.py` over the same cases."""

from __future__ import annotations

import pytest

from bench.grader_agreement import DEFAULT_CASES, VERDICTS, duet_verdicts, load_cases

MIN_AGREEMENT = 0.97


@pytest.fixture(scope="module")
def graded() -> list[tuple[dict, object]]:
    from shared.grading import grade_many

    cases = load_cases(DEFAULT_CASES)
    grades = grade_many([(c["response"], str(c["gold"]), c["format"], "stop") for c in cases])
    return list(zip(cases, grades, strict=True))


def test_the_fixture_is_large_and_sourced():
    cases = load_cases(DEFAULT_CASES)
    assert len(cases) >= 250
    assert all(c["source"] for c in cases)


@pytest.mark.parametrize("verdict", VERDICTS)
def test_agreement_on_each_verdict(graded, verdict):
    attr = {"strict": "correct"}.get(verdict, verdict)
    wrong = [c["id"] for c, g in graded if getattr(g, attr) != c[verdict]]
    agreement = 1 - len(wrong) / len(graded)
    assert agreement >= MIN_AGREEMENT, f"{verdict}: {agreement:.1%}, disagrees on {wrong}"


def test_r1_zero_format_rule_agrees_on_every_case(graded):
    wrong = [c["id"] for c, g in graded if c["format"] == "r1_zero" and g.format_ok != c["format_ok"]]
    assert not wrong


def test_bench_reads_duet_verdicts_the_same_way(graded):
    case, grade = graded[0]
    assert duet_verdicts(case).answer_correct == grade.answer_correct
