"""A cheap exact reading of the answer forms that dominate MATH/GSM8K, decided before math-verify.

`canonical(text)` reads integers (thousands separators, also as `,\\!`), decimals, signs,
`\\frac`/`\\dfrac`/`\\tfrac`/`a/b`, `\\sqrt{n}`, `\\pi`, single-letter variables, `+ - * ^` with
integer powers, and tuples/intervals/sets of those, with the wrappers math-verify drops (`\\$`,
`^\\circ`, a trailing `\\text{unit}`), into an exact canonical value: a polynomial over Q in
`\\sqrt{squarefree}`, `\\pi` and the variables (a unique form, so equal values are equal forms).
Anything else reads as None.

`cheap_verdict(gold, pred)` answers only where math-verify's own verdict is certain (checked
against it case by case in tests/shared/test_grading_canonical.py): equal values are equal; it says
"not equal" only for two exact constants (or polynomials), or two tuples/intervals/sets of exact
constants of the same kind, and only where math-verify has no second reading of the answer that
could still match (a plain-text answer such as `- 5` is also read as the number 5). Decimals are
"not equal" only when apart by more than math-verify's 6-place rounding could hide. Otherwise None:
math-verify decides.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

# A monomial: (squarefree radicand, power of pi, ((variable, power), ...)).
Monomial = tuple[int, int, tuple[tuple[str, int], ...]]
Poly = dict[Monomial, Fraction]
ONE: Monomial = (1, 0, ())

_MAX_SQRT = 10**8  # trial division stays cheap
_MAX_POWER = 32
_MAX_DECIMAL_DIGITS = 12  # math-verify's Floats carry 15 digits: stay well inside them
_VARIABLES = frozenset("abcdfghjkmnpqrstuvwxyz")  # not e (Euler's number) nor i (the imaginary unit)
_ROUNDING_GAP = Fraction(1, 10**5)  # math-verify rounds to 6 places: a larger gap always shows

_TOKEN_RE = re.compile(r"\s*(\d+\.\d+|\d+|\\[a-zA-Z]+|[a-z]|[-+*/^(){}\[\],])")
# "11,\\! 111" is 11111; math-verify joins no other thin space ("1\\,000" is not 1000)
_THIN_RE = re.compile(r"(?<=\d),\\!\s*(?=\d)")
_SPACING_RE = re.compile(r"\\[ !,;:]|~|\\left(?![a-zA-Z])|\\right(?![a-zA-Z])")
_TRAILING_UNIT_RE = re.compile(
    r"\s*(?:\\text\{\s*[A-Za-z][A-Za-z .]*\}|\^\s*\\circ|\^\s*\{\s*\\circ\s*\})\s*\.?$"
)
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_PLAIN_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?|-?\d{1,3}(?:,\d{3})+")
# What makes the verifier read a bare answer as plain text too (mirrors `_verify_child._parses`).
_LATEX_ONLY_RE = re.compile(r"[\\$()\[\]{}^_=]")


class _Unreadable(Exception):
    """Outside the cheap grammar: math-verify decides."""


@dataclass(frozen=True)
class Scalar:
    terms: frozenset[tuple[Monomial, Fraction]]
    decimal: bool  # a decimal literal took part (math-verify compares those after rounding)

    @property
    def constant(self) -> bool:
        return all(not m[2] for m, _ in self.terms)

    @property
    def rational(self) -> Fraction | None:
        if all(m == ONE for m, _ in self.terms):
            return sum((c for _, c in self.terms), Fraction(0))
        return None

    def approx(self) -> float:
        return float(sum(float(c) * math.sqrt(r) * math.pi**p for (r, p, _), c in self.terms))


@dataclass(frozen=True)
class Bracketed:
    open: str  # "(", "[" or "{"
    close: str
    items: tuple[Scalar, ...]


Value = Scalar | Bracketed


# --- polynomial arithmetic ----------------------------------------------------------------------


def _squarefree(n: int) -> tuple[int, int]:
    """n = k^2 * m with m squarefree: (k, m)."""
    if n > _MAX_SQRT:
        raise _Unreadable
    k, m, p = 1, n, 2
    while p * p <= m:
        while m % (p * p) == 0:
            m //= p * p
            k *= p
        p += 1
    return k, m


def _mono_mul(a: Monomial, b: Monomial) -> tuple[Fraction, Monomial]:
    g = math.gcd(a[0], b[0])
    powers = dict(a[2])
    for v, e in b[2]:
        powers[v] = powers.get(v, 0) + e
    mono = (a[0] // g * (b[0] // g), a[1] + b[1], tuple(sorted((v, e) for v, e in powers.items() if e)))
    return Fraction(g), mono


def _add(a: Poly, b: Poly, sign: int = 1) -> Poly:
    out = dict(a)
    for m, c in b.items():
        out[m] = out.get(m, Fraction(0)) + sign * c
    return {m: c for m, c in out.items() if c}


def _mul(a: Poly, b: Poly) -> Poly:
    out: Poly = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            k, m = _mono_mul(ma, mb)
            out[m] = out.get(m, Fraction(0)) + k * ca * cb
    return {m: c for m, c in out.items() if c}


def _inverse(a: Poly) -> Poly:
    """1/a for a single constant term c * sqrt(r) * pi^p (anything else is outside the grammar)."""
    if len(a) != 1:
        raise _Unreadable
    (((r, p, variables), c),) = a.items()
    if variables:
        raise _Unreadable
    return {(r, -p, ()): 1 / (c * r)}


def _sqrt(a: Poly) -> Poly:
    q = _rational(a)
    if q is None or q < 0:
        raise _Unreadable
    k, m = _squarefree(q.numerator * q.denominator)
    return {(m, 0, ()): Fraction(k, q.denominator)} if m and k else {}


def _rational(a: Poly) -> Fraction | None:
    if not a:
        return Fraction(0)
    if set(a) == {ONE}:
        return a[ONE]
    return None


# --- parser ---------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str):
        self.tokens: list[str] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if m is None:
                raise _Unreadable
            self.tokens.append(m.group(1))
            pos = m.end()
        self.i = 0
        self.decimal = False

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise _Unreadable
        self.i += 1
        return tok

    def done(self) -> Poly:
        value = self.expr()
        if self.peek() is not None:
            raise _Unreadable
        return value

    def expr(self) -> Poly:
        sign = -1 if self.peek() == "-" else 1
        if self.peek() in ("+", "-"):
            self.take()
        value = _mul({ONE: Fraction(sign)}, self.term())
        while self.peek() in ("+", "-"):
            sign = 1 if self.take() == "+" else -1
            value = _add(value, self.term(), sign)
        return value

    def term(self) -> Poly:
        value = self.power()
        previous_number = self.tokens[self.i - 1][0].isdigit()
        while True:
            tok = self.peek()
            if tok in ("*", "\\cdot", "\\times"):
                self.take()
            elif tok is None or tok in ("+", "-", ")", "}", "]", ",", "/", "^"):
                break
            elif tok[0].isdigit() and previous_number:
                raise _Unreadable  # "2 3": latex readers disagree on what it means
            value = _mul(value, self.power())
            previous_number = self.tokens[self.i - 1][0].isdigit()
        return value

    def power(self) -> Poly:
        base = self.atom()
        if self.peek() != "^":
            return base
        self.take()
        if self.peek() == "{":
            self.take()
            exp = self.take()
            self.take("}")
        else:
            exp = self.take()
            exp = exp[0] if exp.isdigit() else exp  # x^23 is x^2 * 3 in latex
            if exp != self.tokens[self.i - 1]:
                raise _Unreadable
        if not exp.isdigit() or int(exp) > _MAX_POWER:
            raise _Unreadable
        value: Poly = {ONE: Fraction(1)}
        for _ in range(int(exp)):
            value = _mul(value, base)
        return value

    def argument(self) -> Poly:
        """A command's argument: `{expr}`, or one digit/letter (`\\frac12`, `\\sqrt2`)."""
        tok = self.peek()
        if tok == "{":
            self.take()
            value = self.expr()
            self.take("}")
            return value
        if tok is not None and tok.isdigit():
            if len(tok) > 1:  # "\frac12": one digit is the argument, the rest is what follows
                self.tokens[self.i] = tok[1:]
            else:
                self.take()
            return {ONE: Fraction(int(tok[0]))}
        return self.atom()

    def atom(self) -> Poly:
        tok = self.take()
        if tok[0].isdigit():
            if len(tok) > 1 and tok[0] == "0" and tok[1] != ".":
                raise _Unreadable  # leading zeros
            if "." in tok:
                if len(tok) - 1 > _MAX_DECIMAL_DIGITS:
                    raise _Unreadable
                self.decimal = True
            value = Fraction(tok)
            return {ONE: value} if value else {}
        if tok in _VARIABLES:
            return {(1, 0, ((tok, 1),)): Fraction(1)}
        if tok == "\\pi":
            return {(1, 1, ()): Fraction(1)}
        if tok in ("\\frac", "\\dfrac", "\\tfrac"):
            num = self.argument()
            return _mul(num, _inverse(self.argument()))
        if tok == "\\sqrt":
            return _sqrt(self.argument())
        if tok in ("(", "{"):
            value = self.expr()
            self.take(")" if tok == "(" else "}")
            return value
        raise _Unreadable


def _scalar(text: str) -> Scalar:
    if _THOUSANDS_RE.fullmatch(text):
        text = text.replace(",", "")
    if "/" in text:  # only "p/q" of integers: other slashes read differently in different readers
        m = re.fullmatch(r"\s*(-?)\s*(\d+)\s*/\s*(\d+)\s*", text)
        if m is None or int(m.group(3)) == 0:
            raise _Unreadable
        text = f"{m.group(1)}\\frac{{{m.group(2)}}}{{{m.group(3)}}}"
    parser = _Parser(text)
    return Scalar(frozenset(parser.done().items()), parser.decimal)


_BRACKETS = {"(": ")", "[": "]", "{": "}"}


def _split_top(text: str) -> list[str] | None:
    """The comma-separated parts of `text` at bracket depth 0 (None when the brackets don't nest)."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts if depth == 0 else None


def _strip(text: str) -> str:
    s = text.strip()
    if s.startswith("$") and s.endswith("$") and s.count("$") == 2 and len(s) > 2:
        s = s[1:-1]
    s = (
        _SPACING_RE.sub(" ", _THIN_RE.sub(",", s))
        .replace("{,}", ",")
        .replace("\\dfrac", "\\frac")
        .replace("\\tfrac", "\\frac")
    )
    s = s.strip()
    if s.startswith("\\$"):
        s = s[2:]
    stripped = _TRAILING_UNIT_RE.sub("", s)
    return (stripped if stripped.strip() else s).strip()


def canonical(text: str) -> Value | None:
    """The exact value of `text` when it is in the cheap grammar, else None."""
    s = _strip(text)
    if not s:
        return None
    s = s.replace("\\{", "{").replace("\\}", "}")
    try:
        if s[0] in _BRACKETS and s[-1] in ")]}" and len(s) > 2:
            inner = _split_top(s[1:-1])
            if inner is not None and len(inner) > 1:
                if (s[0] == "{") != (s[-1] == "}"):
                    raise _Unreadable
                if len(inner) != 2 and s[0] + s[-1] not in ("()", "{}"):
                    raise _Unreadable  # "[1, 2, 3)": no interval; readers differ on what it is
                return Bracketed(s[0], s[-1], tuple(_scalar(part) for part in inner))
        if "," in s and not _THOUSANDS_RE.fullmatch(s):
            return None  # a bare list ("1, 2"): math-verify reads it as a set, or a number
        return _scalar(s)
    except (_Unreadable, ZeroDivisionError, ValueError):
        return None


# --- verdict ------------------------------------------------------------------------------------


def _unequal_scalars(a: Scalar, b: Scalar) -> bool | None:
    """False when math-verify surely finds a != b; None when it might not."""
    if a.decimal or b.decimal:
        ra, rb = a.rational, b.rational
        if ra is None or rb is None or abs(ra - rb) < _ROUNDING_GAP:
            return None
    return False


def _increasing(v: Bracketed) -> bool:
    lo, hi = v.items[0].approx(), v.items[1].approx()
    return hi - lo > 1e-9 * max(1.0, abs(lo), abs(hi))


def _unequal_bracketed(a: Bracketed, b: Bracketed) -> bool | None:
    if len(a.items) != len(b.items) or not all(x.constant and not x.decimal for x in a.items + b.items):
        return None
    kinds = {(a.open, a.close), (b.open, b.close)}
    if ("{", "}") in kinds:  # sets: compared as sets of exact values
        return False if len(kinds) == 1 and set(a.items) != set(b.items) else None
    if len(a.items) == 2:
        if len(kinds) == 1 and kinds == {("(", ")")}:
            return False  # open interval or tuple: compared end by end in order
        # intervals with a closed end: certain only when both are proper intervals
        return False if _increasing(a) and _increasing(b) else None
    return False if kinds == {("(", ")")} else None  # tuples of 3+


def _shape(v: Bracketed) -> tuple[str, str, int]:
    return v.open, v.close, len(v.items)


def cheap_verdict(gold: str, pred: str) -> bool | None:
    """math-verify's verdict on the bare answer `pred` against `gold`, where certain without sympy."""
    g, p = canonical(gold), canonical(pred)
    if g is None or p is None:
        return None
    if g == p or (isinstance(g, Scalar) and isinstance(p, Scalar) and g.terms == p.terms):
        return True
    if isinstance(g, Bracketed) and isinstance(p, Bracketed) and _shape(g) == _shape(p):
        same = set(g.items) == set(p.items) if g.open == "{" else g.items == p.items
        if same or [x.terms for x in g.items] == [x.terms for x in p.items]:
            return True
    # A plain-text answer has a second, plain reading in math-verify ("- 5" is also 5, "x+1" also 1).
    if not _LATEX_ONLY_RE.search(pred) and not _PLAIN_NUMBER_RE.fullmatch(pred.strip()):
        return None
    if isinstance(g, Scalar) and isinstance(p, Scalar):
        return _unequal_scalars(g, p)
    if isinstance(g, Bracketed) and isinstance(p, Bracketed):
        return _unequal_bracketed(g, p)
    return None
