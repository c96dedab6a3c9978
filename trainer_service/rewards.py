"""GRPO rewards: verdicts of duet's grader on each completion.

The reward for a completion is what the eval worker would record for it (`shared.grading`), so
"reward went up" and "accuracy went up" mean the same thing:
- `strict`: the grade's `correct` (format and answer; CS336's r1_zero reward for r1_zero tasks),
- `format`: the grade's `format_ok`,
- `answer`: the answer alone, whatever the format (see `answer_correct`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from shared.grading import AnswerFormat, Grade, grade_response, is_equivalent
from trainer_service.config import RewardName, TrainConfig

# finish_reason as the eval worker passes it (vLLM's names): it only changes the failure category.
FINISH_LENGTH = "length"
FINISH_STOP = "stop"


@functools.lru_cache(maxsize=16384)
def grade(response: str, gold: str, answer_format: AnswerFormat, finish_reason: str | None) -> Grade:
    """The grader's verdict; cached because every reward function of a step grades the same batch."""
    return grade_response(response, gold, answer_format, finish_reason)


def answer_correct(g: Grade, gold: str) -> bool:
    """Format-free verdict: the committed answer equals the gold, whatever the format.

    The one place this is decided: it takes the grader's own `answer_correct` verdict once the grader
    reports one (issue 10); until then it is the grader's equivalence on the extracted answer.
    """
    verdict = getattr(g, "answer_correct", None)
    if verdict is not None:
        return bool(verdict)
    return g.extracted is not None and is_equivalent(g.extracted, gold)


def reward_value(name: RewardName, g: Grade, gold: str) -> float:
    if name is RewardName.strict:
        return float(g.correct)
    if name is RewardName.format:
        return float(g.format_ok)
    if name is RewardName.answer:
        return float(answer_correct(g, gold))
    raise ValueError(f"unknown reward {name!r}; expected one of {[r.value for r in RewardName]}")


class GraderReward:
    """A TRL reward function. TRL calls it with the batch's prompts, completions (text),
    completion_ids and every dataset column (here `answer`, the gold) and names its metrics
    `rewards/<__name__>/mean|std` after it."""

    def __init__(self, name: RewardName, answer_format: AnswerFormat, max_completion_length: int):
        self.name = RewardName(name)
        self.__name__ = self.name.value
        self.answer_format = AnswerFormat(answer_format)
        self.max_completion_length = max_completion_length

    def finish_reason(self, ids: Sequence[int] | None) -> str | None:
        if ids is None:
            return None
        return FINISH_LENGTH if len(ids) >= self.max_completion_length else FINISH_STOP

    def __call__(
        self,
        prompts: list[Any],
        completions: list[str],
        completion_ids: list[Sequence[int]] | None = None,
        answer: list[str] | None = None,
        **_: Any,
    ) -> list[float]:
        if answer is None:
            raise ValueError("reward needs the dataset column `answer` (the gold answer of each prompt)")
        ids = completion_ids if completion_ids is not None else [None] * len(completions)
        out = []
        for text, gold, cids in zip(completions, answer, ids, strict=True):
            g = grade(text, gold, self.answer_format, self.finish_reason(cids))
            out.append(reward_value(self.name, g, gold))
        return out


def build_rewards(cfg: TrainConfig, answer_format: AnswerFormat) -> tuple[list[GraderReward], list[float]]:
    """(TRL reward_funcs, reward_weights) from the config's `rewards:` list."""
    funcs = [GraderReward(r.name, answer_format, cfg.max_completion_length) for r in cfg.rewards]
    return funcs, [r.weight for r in cfg.rewards]
