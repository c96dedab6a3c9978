"""The child side of `MathVerifier`: one JSON request per line in, one JSON answer per line out.

Run as a script by file path, so it imports only the standard library and math-verify (no `shared`).

Requests (math-verify's own extraction targets, priorities and `verify`, with its timeouts off: the
parent enforces a deadline per request and kills a stuck child):
- `["bare", gold, answer]`: is the bare answer a response committed to (an `<answer>` tag, a
  `####` line, a lone box) equal to the gold? A bare answer is read as inline latex and, when it has
  no latex command, also as plain text (`1,22`, `1 000`); equal when any reading verifies.
- `["text", gold, response]`: math-verify's `parse` over a whole response (boxes, "final answer is"
  phrases over intermediate boxes, `$ $`/`\\( \\)`/`\\[ \\]` latex, then numbers), then `verify`.
Answer: `[equal, extracted]` (`extracted`: the string math-verify extracted, or null).

Each gold is parsed once per child (LRU keyed by the gold text) and reused for every sample of that
question, across checkpoints.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from functools import lru_cache
from typing import Any

# Latex delimiters math-verify looks for (an escaped `\\$` is a currency sign, not a delimiter).
_DELIMITED_RE = re.compile(r"(?<!\\)\$|\\\(|\\\[|\\boxed")
# duet's one addition to math-verify's readings: a number and its unit inside one `\\text{}`
# ("\\text{5 cm}") reads as the number with a unit after it, which math-verify's unit rule drops.
_TEXT_NUMBER_UNIT_RE = re.compile(r"\\text\{\s*(-?[\d.,]+)\s+([A-Za-z][A-Za-z .]*)\}")

_STRUCTURED_RE = re.compile(r"[()\[\]{}^_=]")


def _parses(text: str) -> list[list[Any]]:
    from math_verify import parse

    if _DELIMITED_RE.search(text):
        readings = [text]
    elif "\\" in text:  # latex commands: a plain reading would only pick out stray numbers
        readings = [f"${text}$"]
        unit = _TEXT_NUMBER_UNIT_RE.sub(r"\1\\text{ \2}", text)
        if unit != text:
            readings.append(f"${unit}$")
    elif _STRUCTURED_RE.search(text):
        readings = [f"${text}$"]  # brackets, powers, equations: only latex reads them whole
    else:
        # "1 000", "1,22", "5 dollars": latex, then math-verify's plain-text numbers
        readings = [f"${text}$", text]
    return [p for p in (parse(r, parsing_timeout=None) for r in readings) if p]


@lru_cache(maxsize=8192)
def parsed_gold(gold: str) -> tuple[Any, ...]:
    """A dataset gold is bare latex: its first reading that parses (inline math before plain text;
    the plain reading of "a + 3z = 0" would be the number 0)."""
    readings = _parses(gold)
    return tuple(readings[0]) if readings else ()


def _extracted(pred: list[Any]) -> str | None:
    return str(pred[-1]) if pred else None


def judge(kind: str, gold: str, text: str) -> tuple[bool, str | None]:
    from math_verify import parse, verify

    if kind == "bare":
        preds = _parses(text) if text.strip() else []
    elif kind == "text":
        preds = [p for p in (parse(text, parsing_timeout=None),) if p]
    else:
        raise ValueError(f"unknown request kind {kind!r}")
    g = list(parsed_gold(gold))
    extracted = _extracted(preds[0]) if preds else None
    if not g:
        return False, extracted
    for p in preds:
        if verify(g, p, timeout_seconds=None):
            return True, _extracted(p)
    return False, extracted


def main() -> None:
    logging.disable(logging.WARNING)  # math-verify warns on every call that its timeout is off
    import math_verify  # noqa: F401  (imported before "ready": start-up never eats a request's deadline)

    judge("bare", "1", "1")  # warm sympy's caches too
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        try:
            kind, gold, text = json.loads(line)
            out: list[Any] = list(judge(kind, gold, text))
        except Exception:
            out = [False, None]
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
