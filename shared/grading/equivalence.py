"""Is a bare answer equal to the gold?

Math-Verify decides (`verifier.py`: parse both, `verify`, in a child process with a deadline). Before
it, a cheap check settles what needs no sympy, with math-verify's own outcome:
- the same text on both sides -> equal;
- both plain numbers (`-12`, `3.5`): equal integers or decimals -> equal; different integers, or
  decimals apart by more than math-verify's 6-decimal rounding could hide -> not equal.
- otherwise `canonical.cheap_verdict`: both sides read exactly (fractions, surds, pi, polynomials,
  thousands separators, tuples/intervals/sets of those) and math-verify's verdict is certain.
Everything else (percents, equations, text, whole responses) goes to math-verify.

`normalize`/`parse_number` are duet's own plain-text reading, used only to group equal answers for
majority voting (maj@k), a question math-verify does not answer.
"""

from __future__ import annotations

import re
from fractions import Fraction

from shared.grading.canonical import cheap_verdict
from shared.grading.verifier import MathVerifier, default_verifier

_NUM_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_FRAC_RE = re.compile(r"^([+-]?\d+)\s*/\s*([+-]?\d+)$")
_LATEX_FRAC_RE = re.compile(r"^([+-]?)\\[dt]?frac\s*\{\s*([+-]?\d+)\s*\}\s*\{\s*([+-]?\d+)\s*\}$")
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TEXT_RE = re.compile(r"\\(?:text|mbox|mathrm)\s*\{[^{}]*\}")
_WORD_UNIT_RE = re.compile(r"^([+-]?[\d.,/]+)\s+[A-Za-z][A-Za-z .^²³0-9]*$")


def normalize(text: str) -> tuple[str, bool]:
    """Plain-text normalisation; returns (text, had_percent_sign)."""
    s = text.strip()
    # Inline-math delimiters around the whole answer.
    for left, right in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(s) > len(left) + len(right) and s.startswith(left) and s.endswith(right):
            s = s[len(left) : -len(right)].strip()
    s = s.rstrip(".").strip()
    s = s.replace("\\!", "").replace("\\,", "").replace("\\ ", " ")
    s = _TEXT_RE.sub("", s).strip()
    s = re.sub(r"^(-?)\\?\$\s*", r"\1", s)  # currency sign: "$5", "\$5", "-$5"
    percent = s.endswith("%")
    if percent:
        s = s[:-1].rstrip("\\").strip()
    s = _THOUSANDS_RE.sub("", s)
    m = _WORD_UNIT_RE.match(s)
    if m:
        s = m.group(1)
    s = s.rstrip(".").strip()
    return s, percent


def parse_number(s: str) -> Fraction | None:
    """A plain number as an exact fraction, or None if `s` is anything else."""
    s = s.replace(" ", "")
    if _NUM_RE.match(s):
        return Fraction(s)
    m = _FRAC_RE.match(s)
    if m:
        den = int(m.group(2))
        return Fraction(int(m.group(1)), den) if den else None
    m = _LATEX_FRAC_RE.match(s)
    if m:
        den = int(m.group(3))
        if not den:
            return None
        value = Fraction(int(m.group(2)), den)
        return -value if m.group(1) == "-" else value
    return None


_PLAIN_NUMBER_RE = re.compile(r"^-?\d+(?:\.\d+)?$")


def fast_equivalent(pred: str, gold: str) -> bool | None:
    """Decide without sympy when the outcome is certain: True/False, or None for math-verify."""
    p, g = pred.strip(), gold.strip()
    if p and p == g:
        return True
    if not (_PLAIN_NUMBER_RE.match(p) and _PLAIN_NUMBER_RE.match(g)):
        return cheap_verdict(gold, pred)  # fractions, surds, pi, intervals...: exact, or None
    a, b = Fraction(p), Fraction(g)
    if a == b:
        return True
    if "." not in p and "." not in g:
        return False
    # math-verify rounds decimals to 6 places before comparing: only a gap it cannot close is certain.
    return False if abs(a - b) >= Fraction(1, 10**5) else None


def is_equivalent(
    pred: str, gold: str, *, verifier: MathVerifier | None = None, timeout_s: float | None = None
) -> bool:
    """Is the bare answer `pred` equal to `gold`? (A timeout counts as not equal.)"""
    fast = fast_equivalent(pred, gold)
    if fast is not None:
        return fast
    return bool((verifier or default_verifier()).verify(gold, pred, timeout_s=timeout_s))
