"""The child side of `MathVerifier`: read `[gold, pred]` JSON lines, answer `true`/`false` lines.

Run as a script by file path, so it imports only the standard library and math-verify (no `shared`)."""

from __future__ import annotations

import json
import logging
import sys


def _as_latex(text: str) -> str:
    # Bare answers ("1/2", "\frac{1}{2}") parse most reliably as inline math.
    return text if "$" in text or "\\(" in text or "\\[" in text else f"${text}$"


def main() -> None:
    logging.disable(logging.WARNING)  # math-verify warns on every call that its timeout is off
    from math_verify import parse, verify

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        try:
            gold, pred = json.loads(line)
            g = parse(_as_latex(gold), parsing_timeout=None)
            p = parse(_as_latex(pred), parsing_timeout=None)
            ok = bool(g) and bool(p) and bool(verify(g, p, timeout_seconds=None))
        except Exception:
            ok = False
        sys.stdout.write("true\n" if ok else "false\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
