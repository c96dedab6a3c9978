"""`grade_response` / `grade_many`: format rule + committed answer + equality -> a `Grade`.

Two verdicts per response: `answer_correct` (format-free: the committed answer equals the gold) and
`correct` (strict: `format_ok` and `answer_correct`). Requests that need math-verify go to the
verifier's process pool as one batch; verdicts are remembered per (gold, answer) so an answer seen
before (another sample, another checkpoint) is never parsed again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from shared.grading.answer_format import AnswerFormat
from shared.grading.categories import CORRECT, WRONG_ANSWER, Grade
from shared.grading.equivalence import fast_equivalent
from shared.grading.extract import Extraction, extract
from shared.grading.verifier import MathVerifier, Request, Verdict, default_verifier

# Bump whenever grading behaviour changes: it is stored with every result and `duet regrade`
# re-scores old jobs with the current one. "2": two verdicts, reference format rules, math-verify.
GRADER_VERSION = "2"

# One graded item: (response, gold, answer format, finish_reason).
Item = tuple[str, str, AnswerFormat | str, str | None]


class _VerdictCache:
    """LRU of math-verify verdicts keyed by (request kind, gold, text); timeouts are not kept."""

    def __init__(self, size: int = 65_536):
        self.size = size
        self._data: OrderedDict[tuple[Request, str, str], Verdict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Request, str, str]) -> Verdict | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
            return hit

    def put(self, key: tuple[Request, str, str], verdict: Verdict) -> None:
        if verdict[0] is None:
            return
        with self._lock:
            self._data[key] = verdict
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


_cache = _VerdictCache()


def _request(ex: Extraction, response: str, gold: str) -> tuple[Request, str, str] | None:
    if ex.answer is not None:
        return Request.bare, gold, ex.answer
    if ex.whole:
        return Request.text, gold, response
    return None  # no answer anywhere


def grade_many(
    items: Sequence[Item],
    *,
    lenient: bool = False,
    verifier: MathVerifier | None = None,
    timeout_s: float | None = None,
) -> list[Grade]:
    """Grade many responses at once (math-verify work spread over the verifier's processes)."""
    exs = [extract(r, f, fin, lenient=lenient) for r, _, f, fin in items]
    keys = [_request(ex, r, g) for ex, (r, g, _, _) in zip(exs, items, strict=True)]
    verdicts: dict[tuple[Request, str, str], Verdict] = {}
    for key in keys:
        if key is None or key in verdicts:
            continue
        kind, gold, text = key
        fast = fast_equivalent(text, gold) if kind is Request.bare else None
        hit = (fast, text) if fast is not None else _cache.get(key)
        if hit is not None:
            verdicts[key] = hit
    todo = list(dict.fromkeys(k for k in keys if k is not None and k not in verdicts))
    if todo:
        answers = (verifier or default_verifier()).judge_many(todo, timeout_s)
        for key, verdict in zip(todo, answers, strict=True):
            _cache.put(key, verdict)
            verdicts[key] = verdict
    return [_grade(ex, verdicts.get(key) if key else None) for ex, key in zip(exs, keys, strict=True)]


def _grade(ex: Extraction, verdict: Verdict | None) -> Grade:
    equal, found = verdict if verdict is not None else (False, None)
    extracted = ex.answer or found or None
    format_ok, failure = ex.format_ok, ex.failure
    answer_correct = bool(equal)
    correct = format_ok and answer_correct
    category = (CORRECT if correct else WRONG_ANSWER) if format_ok else (failure or WRONG_ANSWER)
    return Grade(
        correct=correct,
        format_ok=format_ok,
        extracted=extracted,
        category=category,
        answer_correct=answer_correct,
    )


def grade_response(
    response: str,
    gold: str,
    fmt: AnswerFormat | str,
    finish_reason: str | None = None,
    *,
    lenient: bool = False,
    verifier: MathVerifier | None = None,
    timeout_s: float | None = None,
) -> Grade:
    """Grade one response against the gold answer in answer format `fmt` (see `grade_many`).

    `correct` needs the format (the reference rule of `fmt`, docs/grading.md) and an equal answer;
    `answer_correct` only the answer. `category` is the format failure when the format failed,
    else "correct"/"wrong_answer". `lenient=True` relaxes the format rules (never the default)."""
    item: Item = (response, gold, fmt, finish_reason)
    return grade_many([item], lenient=lenient, verifier=verifier, timeout_s=timeout_s)[0]
