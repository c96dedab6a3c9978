"""Grader throughput: samples/s on the fast path (plain numbers, no sympy) vs the math-verify path.

.venv/bin/python bench/bench_grader.py [--n-fast 20000] [--n-slow 300]
"""

from __future__ import annotations

import argparse
import random
import time

from shared.grading import MathVerifier, grade_response


def fast_cases(n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    out = []
    for _ in range(n):
        gold = rng.randint(0, 999)
        pred = gold if rng.random() < 0.5 else gold + 1
        out.append((f"N+1={gold}. x=2,7. 1+1=2</think> <answer>{pred}</answer>", str(gold), "r1_zero"))
    return out


def slow_cases(n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    out = []
    for _ in range(n):
        a, b = rng.randint(1, 50), rng.randint(2, 50)
        kind = rng.randrange(3)
        if kind == 0:
            out.append(
                (
                    f"so \\boxed{{\\frac{{{a}\\sqrt{{2}}}}{{{b}}}}}",
                    f"\\frac{{{a}}}{{{b}}}\\sqrt{{2}}",
                    "boxed",
                )
            )
        elif kind == 1:
            out.append((f"\\boxed{{x^2+{a}x}}", f"x(x+{a})", "boxed"))
        else:
            out.append((f"\\boxed{{({a},{a + b}]}}", f"({a}, {a + b}]", "boxed"))
    return out


def run(cases: list[tuple[str, str, str]], verifier: MathVerifier) -> tuple[float, int]:
    t0 = time.perf_counter()
    correct = sum(grade_response(r, g, f, "stop", verifier=verifier).correct for r, g, f in cases)
    return time.perf_counter() - t0, correct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-fast", type=int, default=20_000)
    ap.add_argument("--n-slow", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    verifier = MathVerifier()
    try:
        t0 = time.perf_counter()
        verifier.verify("1", "1")  # child start-up + sympy import, reported separately
        startup = time.perf_counter() - t0
        rows = []
        for name, cases in (
            ("fast path (plain numbers)", fast_cases(args.n_fast, rng)),
            ("math-verify path (latex)", slow_cases(args.n_slow, rng)),
        ):
            secs, correct = run(cases, verifier)
            rows.append((name, len(cases), secs, len(cases) / secs, 1e3 * secs / len(cases), correct))
    finally:
        verifier.close()
    print(f"math-verify child start-up: {startup:.2f} s\n")
    print("| path | samples | seconds | samples/s | ms/sample | correct |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n, secs, rate, ms, correct in rows:
        print(f"| {name} | {n} | {secs:.2f} | {rate:,.0f} | {ms:.3f} | {correct} |")


if __name__ == "__main__":
    main()
