"""Pull the final answer out of a response, per answer format, and classify format failures.

Policy per answer format (this docstring is its only statement; keep it in step with the code):
- r1_zero is strict: the answer counts only if `</think>` then `<answer>…</answer>` are present in
  that order (the leading `<think>` is part of the prompt, so it is optional in the response).
- boxed is strict: the last complete `\\boxed{…}` (nested braces allowed); no fallback.
- gsm8k is lenient: `#### N` is the format; without it the last number in the text is still
  graded (so `correct` can be true) but `format_ok` is false and the category names the failure.
- freeform: an explicit "answer is X" / "Answer: X", else the last `\\boxed{}`, else the last number.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from shared.grading.answer_format import AnswerFormat
from shared.grading.categories import (
    MISSING_ANSWER_CLOSE,
    MISSING_ANSWER_OPEN,
    MISSING_THINK_CLOSE,
    NO_ANSWER,
    TRUNCATED,
    WRONG_ORDER,
)


@dataclass(frozen=True)
class Extraction:
    extracted: str | None
    format_ok: bool
    failure: str | None  # a failure category when format_ok is False
    # True when `extracted` may be graded for correctness even though the format failed.
    lenient: bool = False


# A number as people write it: sign, thousands commas, decimals, a simple fraction, a percent sign.
NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?%?|-?\.\d+%?")


def last_number(text: str) -> str | None:
    matches = NUMBER_RE.findall(text)
    return matches[-1] if matches else None


def find_boxed(text: str) -> tuple[str | None, bool]:
    """Content of the last `\\boxed{…}` / `\\fbox{…}` with nested braces; (None, opened) if none closes."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i], True
    return None, bool(starts)


def _fail(failure: str, finish_reason: str | None, extracted: str | None = None, lenient: bool = False):
    if finish_reason == "length":
        failure = TRUNCATED
    return Extraction(extracted, False, failure, lenient)


def extract_r1_zero(response: str, finish_reason: str | None = None) -> Extraction:
    think_close = response.find("</think>")
    if think_close < 0:
        return _fail(MISSING_THINK_CLOSE, finish_reason)
    after = response[think_close + len("</think>") :]
    before = response[:think_close]
    matches = re.findall(r"<answer>(.*?)</answer>", after, flags=re.DOTALL)
    if not matches:
        if "<answer>" in after and "</answer>" not in after:
            return _fail(MISSING_ANSWER_CLOSE, finish_reason)
        if "<answer>" in before or "</answer>" in after:
            return _fail(WRONG_ORDER, finish_reason)
        return _fail(MISSING_ANSWER_OPEN, finish_reason)
    answer = matches[-1].strip()
    if not answer:
        return Extraction(None, False, NO_ANSWER)
    return Extraction(answer, True, None)


def extract_gsm8k(response: str, finish_reason: str | None = None) -> Extraction:
    marked = re.findall(r"####\s*([^\n]*)", response)
    if marked:
        content = marked[-1].strip()
        number = last_number(content) if content else None
        # "#### $1,200 dollars." -> the number; "#### x+1" -> the raw text for the slow path.
        answer = number if number is not None else content.rstrip(".").strip()
        if not answer:
            return _fail(NO_ANSWER, finish_reason)
        return Extraction(answer, True, None)
    fallback = last_number(response)
    if fallback is None:
        return _fail(NO_ANSWER, finish_reason)
    return _fail(MISSING_ANSWER_OPEN, finish_reason, extracted=fallback, lenient=True)


def extract_boxed(response: str, finish_reason: str | None = None) -> Extraction:
    content, opened = find_boxed(response)
    if content is None:
        return _fail(MISSING_ANSWER_CLOSE if opened else MISSING_ANSWER_OPEN, finish_reason)
    content = content.strip()
    if not content:
        return Extraction(None, False, NO_ANSWER)
    return Extraction(content, True, None)


_ANSWER_IS_RE = re.compile(r"(?:answer is|answer:)\s*:?\s*([^\n]+)", re.IGNORECASE)


def extract_freeform(response: str, finish_reason: str | None = None) -> Extraction:
    stated = _ANSWER_IS_RE.findall(response)
    if stated:
        text = stated[-1].strip().rstrip(".").strip()
        boxed, _ = find_boxed(text)
        if boxed is not None:
            text = boxed.strip()
        if text:
            return Extraction(text, True, None)
    boxed, _ = find_boxed(response)
    if boxed is not None and boxed.strip():
        return Extraction(boxed.strip(), True, None)
    number = last_number(response)
    if number is not None:
        return Extraction(number, True, None)
    return _fail(NO_ANSWER, finish_reason)


EXTRACTORS: dict[AnswerFormat, Callable[[str, str | None], Extraction]] = {
    AnswerFormat.r1_zero: extract_r1_zero,
    AnswerFormat.gsm8k: extract_gsm8k,
    AnswerFormat.boxed: extract_boxed,
    AnswerFormat.freeform: extract_freeform,
}


def extract(response: str, fmt: AnswerFormat | str, finish_reason: str | None = None) -> Extraction:
    try:
        fn = EXTRACTORS[AnswerFormat(fmt)]
    except ValueError:
        expected = sorted(f.value for f in AnswerFormat)
        raise ValueError(f"unknown answer format {fmt!r}; expected one of {expected}") from None
    return fn(response, finish_reason)
