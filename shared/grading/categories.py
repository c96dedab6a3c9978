"""Grade categories and the `Grade` record every grader returns.

Stored with every sample and used as metric keys (`fail/<category>`), so the strings are part of
the contract: renaming one needs a GRADER_VERSION bump.
"""

from __future__ import annotations

from dataclasses import dataclass

CORRECT = "correct"
WRONG_ANSWER = "wrong_answer"

# Format failures, most specific first (the answer formats are `AnswerFormat`'s values).
MISSING_THINK_CLOSE = "missing_think_close"  # r1_zero: no `</think>`
MISSING_ANSWER_OPEN = "missing_answer_open"  # no answer marker: `<answer>`, `####`, `\boxed{`
MISSING_ANSWER_CLOSE = "missing_answer_close"  # answer opened but never closed: `</answer>`, `\boxed{…`
WRONG_ORDER = "wrong_order"  # r1_zero: tags present but out of order (answer before `</think>`)
# r1_zero: every tag present and in order, but not the literal `</think> <answer>` CS336 requires
TAG_SPACING = "tag_spacing"
TRUNCATED = "truncated"  # generation hit max_tokens (finish_reason "length") before the format completed
NO_ANSWER = "no_answer"  # format markers present but nothing usable inside (or no number at all)

FAILURE_CATEGORIES: tuple[str, ...] = (
    MISSING_THINK_CLOSE,
    MISSING_ANSWER_OPEN,
    MISSING_ANSWER_CLOSE,
    WRONG_ORDER,
    TAG_SPACING,
    TRUNCATED,
    NO_ANSWER,
)


@dataclass(frozen=True)
class Grade:
    correct: bool  # strict: format_ok and answer_correct (the CS336 reward, the headline accuracy)
    format_ok: bool
    extracted: str | None
    category: str  # CORRECT, WRONG_ANSWER or one of FAILURE_CATEGORIES
    answer_correct: bool = False  # format-free: the committed answer equals the gold

    def to_dict(self) -> dict[str, object]:
        return {
            "correct": self.correct,
            "answer_correct": self.answer_correct,
            "format_ok": self.format_ok,
            "extracted": self.extracted,
            "category": self.category,
        }
