"""Arithmetic probes with exact answers: `multiplication_table`, `multiplication`, `addition`.

Train/test are split by a stable hash of the operand pair, so the splits are disjoint whatever
the seed or the number of examples asked for.
"""

from __future__ import annotations

import hashlib
import random
from typing import ClassVar

from pydantic import Field

from shared.grading import AnswerFormat
from shared.tasks.base import Example, Split, Task, TaskOptions
from shared.tasks.formats import format_solution


def pair_split(a: int, b: int, test_fraction: float, salt: str) -> Split:
    h = int.from_bytes(hashlib.blake2b(f"{salt}:{a}:{b}".encode(), digest_size=8).digest(), "big")
    return "test" if (h % 1_000_000) < test_fraction * 1_000_000 else "train"


class ArithmeticOptions(TaskOptions):
    answer_format: AnswerFormat = AnswerFormat.r1_zero
    n_train: int = Field(1000, ge=1)
    n_test: int = Field(200, ge=1)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)


class DigitsOptions(ArithmeticOptions):
    digits: int = Field(3, ge=1, le=18)


class _ArithmeticTask(Task):
    op_word: ClassVar[str]
    op_symbol: ClassVar[str]
    options: ArithmeticOptions

    def compute(self, a: int, b: int) -> int:
        raise NotImplementedError

    def operand_range(self) -> tuple[int, int]:
        raise NotImplementedError

    def _example(self, split: Split, i: int, a: int, b: int) -> Example:
        c = self.compute(a, b)
        return Example(
            id=f"{self.name}-{split}-{a}-{b}",
            question=f"What is {a} {self.op_word} {b}?",
            answer=str(c),
            solution=format_solution(f"{a}{self.op_symbol}{b}={c}", str(c), self.answer_format),
        )

    def _load(self, split: Split) -> list[Example]:
        o = self.options
        lo, hi = self.operand_range()
        want = o.n_test if split == "test" else o.n_train
        span = hi - lo + 1
        rng = random.Random(f"{self.name}-{split}")
        if span * span <= 50_000:  # small space: enumerate it, shuffle, take what the split has
            pairs = [(a, b) for a in range(lo, hi + 1) for b in range(lo, hi + 1)]
            pairs = [p for p in pairs if pair_split(*p, o.test_fraction, self.name) == split]
            rng.shuffle(pairs)
            pairs = pairs[:want]
        else:
            seen: set[tuple[int, int]] = set()
            pairs = []
            while len(pairs) < want:
                p = (rng.randint(lo, hi), rng.randint(lo, hi))
                if p not in seen and pair_split(*p, o.test_fraction, self.name) == split:
                    seen.add(p)
                    pairs.append(p)
        return [self._example(split, i, a, b) for i, (a, b) in enumerate(pairs)]


class MultiplicationTableTask(_ArithmeticTask):
    """a * b for a, b in 1..12 (144 pairs, split about 80/20)."""

    name = "multiplication_table"
    Options = ArithmeticOptions
    answer_format = AnswerFormat.r1_zero
    op_word, op_symbol = "times", "*"

    def compute(self, a: int, b: int) -> int:
        return a * b

    def operand_range(self) -> tuple[int, int]:
        return 1, 12


class _DigitsTask(_ArithmeticTask):
    """Both operands have exactly `digits` digits."""

    Options = DigitsOptions
    answer_format = AnswerFormat.r1_zero
    options: DigitsOptions

    def operand_range(self) -> tuple[int, int]:
        d = self.options.digits
        return (1 if d == 1 else 10 ** (d - 1)), 10**d - 1


class MultiplicationTask(_DigitsTask):
    """Multi-digit multiplication: both operands have exactly `digits` digits."""

    name = "multiplication"
    op_word, op_symbol = "times", "*"

    def compute(self, a: int, b: int) -> int:
        return a * b


class AdditionTask(_DigitsTask):
    """Addition: both operands have exactly `digits` digits."""

    name = "addition"
    op_word, op_symbol = "plus", "+"

    def compute(self, a: int, b: int) -> int:
        return a + b
