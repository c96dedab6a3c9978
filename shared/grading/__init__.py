"""Answer extraction, equivalence and metrics, shared by the worker, the trainer and `duet grade`.

Light at import: math-verify/sympy only load in the verifier's child processes, when a sample needs them.
"""

from shared.grading.answer_format import AnswerFormat
from shared.grading.categories import (
    CORRECT,
    FAILURE_CATEGORIES,
    MISSING_ANSWER_CLOSE,
    MISSING_ANSWER_OPEN,
    MISSING_THINK_CLOSE,
    NO_ANSWER,
    TAG_SPACING,
    TRUNCATED,
    WRONG_ANSWER,
    WRONG_ORDER,
    Grade,
)
from shared.grading.equivalence import fast_equivalent, is_equivalent
from shared.grading.extract import extract
from shared.grading.grade import GRADER_VERSION, grade_many, grade_response
from shared.grading.metrics import aggregate, is_repetition_loop, token_entropy
from shared.grading.verifier import MathVerifier

__all__ = [
    "CORRECT",
    "FAILURE_CATEGORIES",
    "GRADER_VERSION",
    "MISSING_ANSWER_CLOSE",
    "MISSING_ANSWER_OPEN",
    "MISSING_THINK_CLOSE",
    "NO_ANSWER",
    "TAG_SPACING",
    "TRUNCATED",
    "WRONG_ANSWER",
    "WRONG_ORDER",
    "AnswerFormat",
    "Grade",
    "MathVerifier",
    "aggregate",
    "extract",
    "fast_equivalent",
    "grade_many",
    "grade_response",
    "is_equivalent",
    "is_repetition_loop",
    "token_entropy",
]
