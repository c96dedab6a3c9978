"""`grade_response`: extraction + equivalence -> a `Grade`."""

from __future__ import annotations

from shared.grading.answer_format import AnswerFormat
from shared.grading.categories import CORRECT, WRONG_ANSWER, Grade
from shared.grading.equivalence import is_equivalent
from shared.grading.extract import extract
from shared.grading.verifier import MathVerifier

# Bump whenever grading behaviour changes: it is stored with every result and `duet regrade`
# re-scores old jobs with the current one.
GRADER_VERSION = "1"


def grade_response(
    response: str,
    gold: str,
    fmt: AnswerFormat | str,
    finish_reason: str | None = None,
    *,
    verifier: MathVerifier | None = None,
    timeout_s: float | None = None,
) -> Grade:
    """Grade one response against the gold answer in answer format `fmt`.

    `correct` needs an equivalent answer; for strict formats (r1_zero, boxed) also a valid format,
    while gsm8k's last-number fallback may be correct with `format_ok` False. `category` is the
    format failure when the format failed, else "correct"/"wrong_answer".
    """
    ex = extract(response, fmt, finish_reason)
    gradable = ex.extracted is not None and (ex.format_ok or ex.lenient)
    correct = gradable and is_equivalent(ex.extracted, gold, verifier=verifier, timeout_s=timeout_s)
    verdict = CORRECT if correct else WRONG_ANSWER
    category = verdict if ex.format_ok else (ex.failure or WRONG_ANSWER)
    return Grade(correct=bool(correct), format_ok=ex.format_ok, extracted=ex.extracted, category=category)
