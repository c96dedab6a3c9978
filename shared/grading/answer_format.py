"""`AnswerFormat`: the ways a task asks for its final answer, one name for each.

The tasks pick one, the extractors are keyed by it, the failure categories describe failures in
its terms and the CLI offers its values as choices. The values are stored with every job's task
options, so renaming one is a contract change.
"""

from __future__ import annotations

from enum import StrEnum


class AnswerFormat(StrEnum):
    gsm8k = "gsm8k"  # last line "#### <answer>"
    boxed = "boxed"  # the last \boxed{...}
    r1_zero = "r1_zero"  # <think> ... </think> <answer> ... </answer>
    freeform = "freeform"  # "The answer is X", else the last \boxed{}, else the last number
