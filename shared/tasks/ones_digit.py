"""The renumbered-book problem, generated with exact answers.

A book with N pages is renumbered in reverse (page n becomes N+1-n). Page n keeps its ones digit
iff n = N+1-n (mod 10), i.e. 2n = N+1 (mod 10). For even N, N+1 is odd: no page does (answer 0).
For odd N, with e the last digit of N+1, n ends in e/2 or e/2+5; each count is the number of
n <= N ending in that digit.

The worked solution is short and mechanical so a ~3M-parameter model trained from scratch can
learn it: e.g. N=113 -> "<think>N+1=114. x=2,7. 12+11=23</think> <answer>23</answer>", and
N=50 -> "<think>N+1=51 odd. 0</think> <answer>0</answer>" (the even case is learnt first).
"""

from __future__ import annotations

import random

from pydantic import Field, model_validator

from shared.grading import AnswerFormat
from shared.tasks.base import Example, Split, Task, TaskOptions
from shared.tasks.formats import format_solution

TEMPLATES: tuple[str, ...] = (
    "A book with {N} pages numbered 1 to {N} is renumbered in reverse, so page 1 becomes page {N}, "
    "page 2 becomes page {Nm1}, and so on. How many pages keep the same ones digit?",
    "The pages of a {N}-page book, numbered 1 through {N}, are renumbered backwards (1 becomes {N}, "
    "2 becomes {Nm1}, ...). For how many pages do the old and new numbers have the same ones digit?",
    "A {N}-page book has its pages renumbered from {N} down to 1. How many pages have an old number "
    "and a new number with the same units digit?",
    "Pages 1 to {N} of a book get new numbers in reverse order (page k becomes page {Np1}-k). "
    "How many pages keep their last digit?",
)


def count_with_last_digit(n_max: int, digit: int) -> int:
    """How many of 1..n_max end in `digit`."""
    return n_max // 10 + (1 if 0 < digit <= n_max % 10 else 0)


def ones_digit_answer(n: int) -> int:
    """Pages of an n-page book that keep their ones digit when renumbered in reverse."""
    if n % 2 == 0:
        return 0
    a = ((n + 1) % 10) // 2
    return count_with_last_digit(n, a) + count_with_last_digit(n, a + 5)


def ones_digit_solution(n: int) -> str:
    if n % 2 == 0:
        reasoning = f"N+1={n + 1} odd. 0"
    else:
        a = ((n + 1) % 10) // 2
        ca, cb = count_with_last_digit(n, a), count_with_last_digit(n, a + 5)
        reasoning = f"N+1={n + 1}. x={a},{a + 5}. {ca}+{cb}={ca + cb}"
    return format_solution(reasoning, str(ones_digit_answer(n)), "r1_zero")


class OnesDigitOptions(TaskOptions):
    min_pages: int = Field(10, ge=1)
    max_pages: int = Field(999, ge=1)
    n_train: int = Field(2000, ge=1)
    n_test: int = Field(200, ge=1)
    split_seed: int = 0  # which N go to test; independent of `examples(seed=...)`

    @model_validator(mode="after")
    def _check_range(self) -> OnesDigitOptions:
        if self.max_pages < self.min_pages:
            raise ValueError(f"max_pages ({self.max_pages}) must be >= min_pages ({self.min_pages})")
        pool = self.max_pages - self.min_pages + 1
        if self.n_test >= pool:
            raise ValueError(
                f"n_test ({self.n_test}) must be smaller than the number of page counts in "
                f"min_pages..max_pages ({pool}) so that train keeps some N"
            )
        return self


class OnesDigitTask(Task):
    name = "ones_digit"
    Options = OnesDigitOptions
    answer_format = AnswerFormat.r1_zero
    options: OnesDigitOptions

    def split_pages(self) -> tuple[list[int], list[int]]:
        """(train N values, test N values): disjoint, fixed by `split_seed`."""
        o = self.options
        pool = list(range(o.min_pages, o.max_pages + 1))
        random.Random(o.split_seed).shuffle(pool)
        return pool[o.n_test :], pool[: o.n_test]

    def _make(self, split: Split, i: int, n: int, rng: random.Random) -> Example:
        t = rng.randrange(len(TEMPLATES))
        question = TEMPLATES[t].format(N=n, Nm1=n - 1, Np1=n + 1)
        return Example(
            id=f"ones_digit-{split}-{i}-N{n}-t{t}",
            question=question,
            answer=str(ones_digit_answer(n)),
            solution=ones_digit_solution(n),
        )

    def _load(self, split: Split) -> list[Example]:
        train_pages, test_pages = self.split_pages()
        rng = random.Random(f"{self.options.split_seed}-{split}")
        if split == "test":
            return [self._make(split, i, n, rng) for i, n in enumerate(test_pages)]
        # Train cycles through its N values (reshuffled each pass) with fresh paraphrases.
        out: list[Example] = []
        order: list[int] = []
        for i in range(self.options.n_train):
            if not order:
                order = list(train_pages)
                rng.shuffle(order)
            out.append(self._make(split, i, order.pop(), rng))
        return out
