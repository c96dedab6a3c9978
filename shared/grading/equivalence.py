"""Is an extracted answer equivalent to the gold answer?

Two paths:
- fast path (no sympy): after normalisation both sides are plain numbers (integers, decimals,
  `a/b`, `\\frac{a}{b}`); compared exactly as fractions. Most samples end here.
- slow path: math-verify (latex, sets, intervals, expressions) in a child process with a per-call
  timeout (see `verifier.py`); a timeout counts as not equivalent.

Normalisation policy (what math-verify would not do, or not predictably):
- thousands commas are dropped ("1,234" == "1234"); a leading "$"/"\\$" currency sign is dropped;
  a trailing period is dropped; `\\text{…}`/`\\mbox{…}` units and trailing plain-word units after a
  number ("12 cm", "5 dollars") are dropped.
- percentages: "X%" (or "X\\%") equals both X and X/100 (so "50%" matches gold "50" and gold
  "0.5"), but a bare number is never read as a percent ("0.5" does not match gold "50").
- numbers compare exactly (0.5 == 1/2, 0.33 != 1/3); no rounding tolerance on the fast path.
"""

from __future__ import annotations

import re
from fractions import Fraction

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


def _values(text: str) -> set[Fraction] | None:
    s, percent = normalize(text)
    v = parse_number(s)
    if v is None:
        return None
    return {v, v / 100} if percent else {v}


def fast_equivalent(pred: str, gold: str) -> bool | None:
    """Decide without sympy when possible: True/False, or None when the slow path is needed."""
    if pred.strip() == gold.strip():
        return True
    p, g = _values(pred), _values(gold)
    if p is not None and g is not None:
        return bool(p & g)
    if normalize(pred)[0] == normalize(gold)[0] and normalize(pred)[0]:
        return True
    return None


def is_equivalent(
    pred: str, gold: str, *, verifier: MathVerifier | None = None, timeout_s: float | None = None
) -> bool:
    fast = fast_equivalent(pred, gold)
    if fast is not None:
        return fast
    v = verifier or default_verifier()
    # Give math-verify the normalised forms (commas/units/currency gone), keeping a percent sign.
    (ps, pp), (gs, gp) = normalize(pred), normalize(gold)
    result = v.verify(gs + ("\\%" if gp else ""), ps + ("\\%" if pp else ""), timeout_s=timeout_s)
    return bool(result)
