"""`Example`, the `Task` base class and the options model every task validates its options with."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from shared.grading import AnswerFormat, Grade, grade_many, grade_response
from shared.tasks.formats import completion, format_solution, render, with_instructions

Split = Literal["train", "test"]


@dataclass(frozen=True)
class Example:
    id: str  # stable across runs: the same task options give the same ids
    question: str
    answer: str  # gold final answer, e.g. "23"
    solution: str | None = None  # worked solution in the task's answer format (SFT target), if known


class TaskOptions(BaseModel):
    """Options every task accepts; tasks extend this. Unknown options are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    use_chat_template: bool = False


class Task:
    name: ClassVar[str]
    Options: ClassVar[type[TaskOptions]] = TaskOptions
    answer_format: AnswerFormat
    use_chat_template: bool

    def __init__(self, options: TaskOptions | None = None):
        self.options = options or self.Options()
        self.use_chat_template = self.options.use_chat_template
        fmt = getattr(self.options, "answer_format", None)
        if fmt is not None:
            self.answer_format = fmt

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options!r})"

    # --- data ---------------------------------------------------------------------------------

    def _load(self, split: Split) -> list[Example]:
        """All examples of a split in canonical order; subclasses implement this."""
        raise NotImplementedError

    def examples(self, split: Split = "test", limit: int | None = None, seed: int = 0) -> list[Example]:
        """A split's examples: canonical order for seed 0, else shuffled by `seed`; then the first `limit`.

        The split itself never depends on `seed` (train and test stay disjoint whatever the seed).
        """
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        items = list(self._load(split))
        if seed:
            random.Random(seed).shuffle(items)
        return items[:limit] if limit is not None else items

    # --- prompting ----------------------------------------------------------------------------

    def question_text(self, ex: Example) -> str:
        return ex.question

    def prompt(self, ex: Example) -> str:
        """The user-message text: the question plus the answer format's instructions."""
        return with_instructions(self.question_text(ex), self.answer_format)

    def render_prompt(self, ex: Example, tokenizer: Any = None) -> str:
        return render(
            self.prompt(ex), self.answer_format, use_chat_template=self.use_chat_template, tokenizer=tokenizer
        )

    def target(self, ex: Example) -> str:
        """SFT completion for `ex`: what follows `render_prompt(ex)` up to where generation should stop."""
        solution = ex.solution or format_solution(None, ex.answer, self.answer_format)
        return completion(solution, self.answer_format)

    # --- grading ------------------------------------------------------------------------------

    def grade(self, response: str, ex: Example, finish_reason: str | None = None) -> Grade:
        return grade_response(response, ex.answer, self.answer_format, finish_reason)

    def grade_many(self, items: Sequence[tuple[str, Example, str | None]]) -> list[Grade]:
        """`grade` for many (response, example, finish_reason) at once: one batch for math-verify's pool."""
        return grade_many([(r, ex.answer, self.answer_format, fin) for r, ex, fin in items])
