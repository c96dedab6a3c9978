"""Each answer format's rule: is the format satisfied, and which answer does the response commit to?

The format rules are the reference graders' own (docs/grading.md names each source):
- r1_zero: CS336's `r1_zero_reward_fn`, verbatim: the literal substrings `</think> <answer>` and
  `</answer>` both occur (tags are case-sensitive; one space exactly). The committed answer is the
  text after the last `<answer>`, up to `</answer>` when it closes.
- gsm8k: lm-eval's GSM8K strict-match, `#### (\\-?[0-9\\.\\,]+)` (a space, then the number). The
  committed answer is that number; without it, the rest of the `####` line, else lm-eval's
  flexible-extract (the last number) for the format-free verdict.
- boxed: at least one complete `\\boxed{…}`. The answer is math-verify's pick from the whole response
  (final-answer phrases over intermediate boxes, several boxes combined); a lone box with no
  "final answer" phrase is that pick already, so it is read here without math-verify.
- freeform: no format of its own (format_ok always): math-verify's pick from the whole response.
`lenient=True` (never the default) accepts what the strict rules refuse: any whitespace between
`</think>` and `<answer>`, and `####` followed by any spacing and a `$` before the number.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from shared.grading import categories
from shared.grading.answer_format import AnswerFormat


@dataclass(frozen=True)
class Extraction:
    """A format verdict and the committed answer.

    `answer` is the bare answer the response commits to when the format's own marker names it; None
    with `whole=True` means math-verify must pick the answer from the whole response; None with
    `whole=False` means there is no answer at all."""

    answer: str | None
    format_ok: bool
    failure: str | None  # a failure category when format_ok is False
    whole: bool = False


def find_boxed(text: str, commands: str = "boxed|fbox") -> tuple[str | None, bool]:
    """Content of the last complete `\\boxed{…}` / `\\fbox{…}` with nested braces; (None, opened) if none closes."""
    starts = [m.end() for m in re.finditer(rf"\\(?:{commands})\s*\{{", text)]
    for start in reversed(starts):
        content = _balanced(text, start)
        if content is not None:
            return content, True
    return None, bool(starts)


def _balanced(text: str, start: int) -> str | None:
    """The text from `start` (just after an opening brace) to its matching close brace, or None."""
    depth = 1
    for i in range(start, len(text)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None


def _fail(failure: str, finish_reason: str | None, answer: str | None, whole: bool = False) -> Extraction:
    if finish_reason == "length":
        failure = categories.TRUNCATED
    return Extraction(answer, False, failure, whole)


# --- r1_zero (CS336) -----------------------------------------------------------------------------

THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = "</think>", "<answer>", "</answer>"
R1_SEPARATOR = f"{THINK_CLOSE} {ANSWER_OPEN}"
_LENIENT_SEPARATOR_RE = re.compile(r"</think>\s*<answer>")


def extract_r1_zero(response: str, finish_reason: str | None = None, lenient: bool = False) -> Extraction:
    tagged = ANSWER_OPEN in response
    answer = response.split(ANSWER_OPEN)[-1].split(ANSWER_CLOSE)[0].strip() if tagged else None
    separated = _LENIENT_SEPARATOR_RE.search(response) is not None if lenient else R1_SEPARATOR in response
    if separated and ANSWER_CLOSE in response:
        return Extraction(answer, True, None)
    # Which part is missing, most specific first; the answer is still graded format-free.
    if THINK_CLOSE not in response:
        failure = categories.MISSING_THINK_CLOSE
    elif not tagged:
        failure = categories.MISSING_ANSWER_OPEN
    elif ANSWER_CLOSE not in response:
        failure = categories.MISSING_ANSWER_CLOSE
    elif _LENIENT_SEPARATOR_RE.search(response):
        failure = categories.TAG_SPACING
    else:
        failure = categories.WRONG_ORDER
    return _fail(failure, finish_reason, answer, whole=not tagged)


# --- gsm8k (lm-eval) -----------------------------------------------------------------------------

LM_EVAL_STRICT_RE = re.compile(r"#### (\-?[0-9\.\,]+)")
_LENIENT_STRICT_RE = re.compile(r"####\s*\$?\s*(\-?[0-9\.\,]+)")
_MARK_LINE_RE = re.compile(r"####[ \t]*([^\n]*)")
LM_EVAL_FLEXIBLE_RE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def flexible_extract(text: str) -> str | None:
    """lm-eval's flexible-extract: the last match, cleaned as its exact_match does (`$`, `,`, final `.`)."""
    matches = LM_EVAL_FLEXIBLE_RE.findall(text)
    if not matches:
        return None
    value = next(g for g in matches[-1] if g).replace("$", "").replace(",", "").strip()
    value = value.removesuffix(".")
    return value if any(c.isdigit() for c in value) else None


def extract_gsm8k(response: str, finish_reason: str | None = None, lenient: bool = False) -> Extraction:
    strict = (_LENIENT_STRICT_RE if lenient else LM_EVAL_STRICT_RE).search(response)
    if strict is not None:
        return Extraction(strict.group(1).replace(",", "").removesuffix(".").strip(), True, None)
    marked = _MARK_LINE_RE.search(response)
    if marked is not None and marked.group(1).strip():
        return _fail(categories.NO_ANSWER, finish_reason, marked.group(1).strip())
    fallback = flexible_extract(response)
    failure = categories.MISSING_ANSWER_OPEN if marked is None else categories.NO_ANSWER
    return _fail(failure, finish_reason, fallback)


# --- boxed / freeform (math-verify picks) ----------------------------------------------------------

_FINAL_ANSWER_RE = re.compile(r"final answer", re.IGNORECASE)


def lone_box(response: str) -> str | None:
    """The content of the response's only `\\boxed{}` when math-verify would pick exactly it: one
    box, closed, and no "final answer" phrase (math-verify ranks those level with or above boxes)."""
    if response.count("\\boxed") != 1 or _FINAL_ANSWER_RE.search(response):
        return None
    m = re.search(r"\\boxed\s*\{", response)
    content = _balanced(response, m.end()) if m else None
    return content.strip() if content is not None and content.strip() else None


def extract_boxed(response: str, finish_reason: str | None = None, lenient: bool = False) -> Extraction:
    content, opened = find_boxed(response, "boxed")  # the rule names \\boxed only
    lone = lone_box(response)
    if content is None:
        return _fail(
            categories.MISSING_ANSWER_CLOSE if opened else categories.MISSING_ANSWER_OPEN,
            finish_reason,
            None,
            whole=True,
        )
    return Extraction(lone, True, None, whole=lone is None)


def extract_freeform(response: str, finish_reason: str | None = None, lenient: bool = False) -> Extraction:
    return Extraction(lone_box(response), True, None, whole=lone_box(response) is None)


EXTRACTORS: dict[AnswerFormat, Callable[[str, str | None, bool], Extraction]] = {
    AnswerFormat.r1_zero: extract_r1_zero,
    AnswerFormat.gsm8k: extract_gsm8k,
    AnswerFormat.boxed: extract_boxed,
    AnswerFormat.freeform: extract_freeform,
}


def answer_format(fmt: AnswerFormat | str) -> AnswerFormat:
    try:
        return AnswerFormat(fmt)
    except ValueError:
        expected = sorted(f.value for f in AnswerFormat)
        raise ValueError(f"unknown answer format {fmt!r}; expected one of {expected}") from None


def extract(
    response: str, fmt: AnswerFormat | str, finish_reason: str | None = None, *, lenient: bool = False
) -> Extraction:
    return EXTRACTORS[answer_format(fmt)](response, finish_reason, lenient)
