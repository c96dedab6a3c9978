"""What the standard graders say on one fixture case (tests/shared/data/grader_cases.jsonl).

Each function re-implements one public grader's *rule* from reading it (no code copied), using the
installed math-verify for equivalence, so duet's grader can be measured against the graders people
compare against:

- math-verify (huggingface/Math-Verify): `parse` with the default extraction targets (latex +
  expression) and `verify` against the parsed gold, applied to the answer the response commits to
  (`committed_answer`: the r1_zero answer tag, the gsm8k `####` line) or else to the whole response.
  Decides only the format-free verdict: math-verify has no notion of an answer format.
- CS336 `r1_zero_reward_fn` (stanford-cs336/assignment5-alignment, cs336_alignment/drgrpo_grader.py):
  format = the literal substrings `</think> <answer>` and `</answer>` are both in the response;
  answer = the text after the last `<answer>` with every `</answer>` removed, reduced to the last
  `\\boxed{}` content when it holds one. CS336 grades it with mathd/sympy normalisers and, with
  fast=False, math-verify configured as here (`$`-wrapped, boxed priority 0, first match, no
  fallback); this harness uses that math-verify path (plus exact string equality) for the answer.
  `question_only_reward_fn` is the same grader for boxed responses (format = a `\\boxed` exists).
- lm-eval GSM8K (EleutherAI/lm-evaluation-harness lm_eval/tasks/gsm8k/gsm8k.yaml, version 3):
  strict-match = first match of `#### (\\-?[0-9\\.\\,]+)`; flexible-extract = the last match of
  `(-?[$0-9.,]{2,})|(-?[0-9]+)`; exact_match after dropping `,`, `$`, everything up to `#### ` and a
  trailing `.` from both sides, case-insensitive. lm-eval compares strings, so `18.0` != `18`.

A verdict a grader cannot give for a case (math-verify has no format rule; lm-eval only grades
gsm8k cases; CS336 only r1_zero and boxed ones) is None.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

# math-verify logs a warning for every unparsable candidate; the harness only wants verdicts.
logging.getLogger("math_verify").setLevel(logging.ERROR)
logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)


class Reference(StrEnum):
    MATH_VERIFY = "math-verify"
    CS336 = "cs336-reward"
    LM_EVAL_STRICT = "lm-eval-strict"
    LM_EVAL_FLEXIBLE = "lm-eval-flexible"


@dataclass(frozen=True)
class Verdicts:
    """One grader's three verdicts on a case; None where that grader has no such verdict."""

    strict: bool | None
    format_ok: bool | None
    answer_correct: bool | None


_DELIMITERS = ("$", "\\(", "\\[", "\\boxed")


def _readings(text: str) -> list[list[Any]]:
    """math-verify's parses of a bare answer: as inline latex and as plain text.

    A bare answer ("[0,1)", "\\frac{10}{9}", "1,000.99") is latex to some graders and an expression
    to others (`1,22` is a decimal as an expression, a pair as latex); an answer counts as equal
    when any of its readings verifies against the gold's.
    """
    if any(d in text for d in _DELIMITERS):
        return [p for p in (parse(text),) if p]
    if "\\" in text:  # latex commands: the plain reading would only pick out stray numbers
        return [p for p in (parse(f"${text}$"),) if p]
    return [p for p in (parse(f"${text}$"), parse(text)) if p]


def parse_gold(gold: str) -> list[Any]:
    """A dataset gold is bare latex: parsed as inline math, as plain text only when that fails.

    (The plain reading of "a + 3z = 0" is the number 0: never let it stand for the equation.)
    """
    readings = _readings(gold)
    return readings[0] if readings else []


def _any_verify(golds: list[list[Any]], preds: list[list[Any]]) -> bool:
    return any(bool(verify(g, p)) for g in golds for p in preds)


_GSM8K_MARK_RE = re.compile(r"####[ \t]*([^\n]*)")


def committed_answer(response: str, fmt: str) -> str | None:
    """The answer a response commits to in its format's own marker, before any fallback.

    r1_zero: the text after the last `<answer>` (up to `</answer>` when it closes); gsm8k: the rest
    of the line after the first `####`. boxed and freeform have none: math-verify reads the whole
    response (boxes, "final answer is" phrases, then latex and numbers).
    """
    if fmt == "r1_zero" and "<answer>" in response:
        return response.split("<answer>")[-1].split("</answer>")[0].strip()
    if fmt == "gsm8k":
        m = _GSM8K_MARK_RE.search(response)
        if m and m.group(1).strip():
            return m.group(1).strip()
    return None


def math_verify_equal(response: str, gold: str, fmt: str = "freeform") -> bool:
    """math-verify's verdict on the committed answer (or the whole response when there is none)."""
    gold_parsed = parse_gold(gold)
    if not gold_parsed:
        return False
    golds = [gold_parsed]
    answer = committed_answer(response, fmt)
    if answer is not None:
        return _any_verify(golds, _readings(answer)) if answer else False
    return _any_verify(golds, [p for p in (parse(response),) if p])


def math_verify_verdicts(response: str, gold: str, fmt: str = "freeform") -> Verdicts:
    return Verdicts(strict=None, format_ok=None, answer_correct=math_verify_equal(response, gold, fmt))


# --- CS336 ---------------------------------------------------------------------------------------

_CS336_CONFIG = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())


def _last_boxed_content(text: str) -> str | None:
    """Content of the last `\\boxed{…}` (balanced braces), or None if it never closes."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    open_brace = text.find("{", start)
    if open_brace < 0:
        return None
    depth = 0
    for i in range(open_brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_brace + 1 : i]
    return None


def cs336_answer_equal(answer: str, gold: str) -> bool:
    """CS336's `grade(answer, gold, fast=False)`, with its math-verify path standing in for mathd/sympy."""
    if "\\boxed" in gold:
        gold = _last_boxed_content(gold) or gold
    if answer.strip() == gold.strip():
        return True
    a = answer if "$" in answer else f"${answer}$"
    g = gold if "$" in gold else f"${gold}$"
    kwargs: dict[str, Any] = {"fallback_mode": "no_fallback", "extraction_mode": "first_match"}
    gp = parse(g, extraction_config=_CS336_CONFIG, **kwargs)
    ap = parse(a, extraction_config=_CS336_CONFIG, **kwargs)
    return bool(gp) and bool(ap) and bool(verify(gp, ap))


def cs336_r1_zero_format_ok(response: str) -> bool:
    """CS336's format rule, verbatim: both literal substrings must be present."""
    return "</think> <answer>" in response and "</answer>" in response


def cs336_r1_zero_reward(response: str, gold: str) -> Verdicts:
    """`r1_zero_reward_fn`: reward = format and answer; no answer verdict without the format."""
    if not cs336_r1_zero_format_ok(response):
        return Verdicts(strict=False, format_ok=False, answer_correct=None)
    answer = response.split("<answer>")[-1].replace("</answer>", "")
    if "\\boxed" in answer:
        boxed = _last_boxed_content(answer)
        if boxed is None:
            return Verdicts(strict=False, format_ok=True, answer_correct=False)
        answer = boxed
    ok = cs336_answer_equal(answer, gold)
    return Verdicts(strict=ok, format_ok=True, answer_correct=ok)


def cs336_question_only_reward(response: str, gold: str) -> Verdicts:
    """`question_only_reward_fn` (boxed answers): format = a `\\boxed{}` can be extracted."""
    answer = _last_boxed_content(response) if "\\boxed" in response else None
    if answer is None:
        return Verdicts(strict=False, format_ok=False, answer_correct=None)
    ok = cs336_answer_equal(answer, gold)
    return Verdicts(strict=ok, format_ok=True, answer_correct=ok)


# --- lm-eval GSM8K -------------------------------------------------------------------------------

LM_EVAL_STRICT_RE = re.compile(r"#### (\-?[0-9\.\,]+)")
LM_EVAL_FLEXIBLE_RE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
LM_EVAL_IGNORE = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))


def lm_eval_strict_extract(response: str) -> str | None:
    """strict-match filter: the first `#### <number>` (take_first)."""
    m = LM_EVAL_STRICT_RE.search(response)
    return m.group(1).strip() if m else None


def lm_eval_flexible_extract(response: str) -> str | None:
    """flexible-extract filter: group_select -1 = the last match, its first non-empty group."""
    matches = LM_EVAL_FLEXIBLE_RE.findall(response)
    if not matches:
        return None
    groups = [g for g in matches[-1] if g]
    return groups[0].strip() if groups else None


def lm_eval_exact_match(prediction: str, gold: str) -> bool:
    """exact_match with gsm8k.yaml's regexes_to_ignore and ignore_case."""

    def clean(s: str) -> str:
        for rx in LM_EVAL_IGNORE:
            s = rx.sub("", s)
        return s.strip().lower()

    return clean(prediction) == clean(gold)


def lm_eval_strict(response: str, gold: str) -> Verdicts:
    value = lm_eval_strict_extract(response)
    ok = value is not None and lm_eval_exact_match(value, gold)
    return Verdicts(strict=ok, format_ok=value is not None, answer_correct=None)


def lm_eval_flexible(response: str, gold: str) -> Verdicts:
    value = lm_eval_flexible_extract(response)
    ok = value is not None and lm_eval_exact_match(value, gold)
    return Verdicts(strict=None, format_ok=None, answer_correct=ok)


# --- all of them ---------------------------------------------------------------------------------


def reference_verdicts(case: dict[str, Any]) -> dict[Reference, Verdicts]:
    """Every reference grader's verdicts on one fixture case (a row of grader_cases.jsonl)."""
    response, gold, fmt = case["response"], str(case["gold"]), case["format"]
    none = Verdicts(None, None, None)
    out = {Reference.MATH_VERIFY: math_verify_verdicts(response, gold, fmt)}
    if fmt == "r1_zero":
        out[Reference.CS336] = cs336_r1_zero_reward(response, gold)
    elif fmt == "boxed":
        out[Reference.CS336] = cs336_question_only_reward(response, gold)
    else:
        out[Reference.CS336] = none
    if fmt == "gsm8k":
        out[Reference.LM_EVAL_STRICT] = lm_eval_strict(response, gold)
        out[Reference.LM_EVAL_FLEXIBLE] = lm_eval_flexible(response, gold)
    else:
        out[Reference.LM_EVAL_STRICT] = none
        out[Reference.LM_EVAL_FLEXIBLE] = none
    return out
