"""Grader throughput: samples/s on plain numbers and on a MATH-style latex batch, through `grade_many`
(the math-verify work spread over a pool of one child process per core in chunks, verdicts cached per
(gold, answer), the cheap exact reading of `canonical.py` before sympy).

.venv/bin/python bench/bench_grader.py [--n-fast 20000] [--questions 500] [--checkpoints 8] [--samples 4]

The latex batch: `--questions` MATH-style golds (fractions, surds, intervals, polynomials, pairs,
multiples of pi), each answered `--samples` times per checkpoint over `--checkpoints` checkpoints, in
the boxed format. Per sample: the gold's own text (45 %), an equivalent other form (20 %) or a wrong
answer (35 %), the answer drawn from a small per-question pool as a model's answers repeat across
samples and checkpoints. Reported separately: the first checkpoint (nothing cached) and all of them.
Every form of that batch is in the cheap exact reading, so it measures that reading; the last row,
`--outside` questions (rational functions, equations, percents) on a cold pool, measures math-verify.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from shared.grading import MathVerifier, grade_many
from shared.grading.grade import Item
from shared.grading.verifier import Request


def fast_cases(n: int, rng: random.Random) -> list[Item]:
    out: list[Item] = []
    for _ in range(n):
        gold = rng.randint(0, 999)
        pred = gold if rng.random() < 0.5 else gold + 1
        out.append(
            (f"N+1={gold}. x=2,7. 1+1=2</think> <answer>{pred}</answer>", str(gold), "r1_zero", "stop")
        )
    return out


def _question(rng: random.Random) -> tuple[str, list[str], list[str]]:
    """(gold, equivalent forms, wrong answers) for one MATH-style question."""
    a, b = rng.randint(1, 40), rng.randint(2, 40)
    kind = rng.randrange(6)
    if kind == 0:
        return (
            f"\\frac{{{a}}}{{{b}}}\\sqrt{{2}}",
            [f"\\frac{{{a}\\sqrt{{2}}}}{{{b}}}"],
            [
                f"\\frac{{{a + 1}}}{{{b}}}\\sqrt{{2}}",
                f"\\frac{{{a}}}{{{b}}}\\sqrt{{3}}",
            ],
        )
    if kind == 1:
        return f"x^2+{a}x", [f"x(x+{a})"], [f"x^2+{a + 1}x", f"x^2-{a}x"]
    if kind == 2:
        return f"({a}, {a + b}]", [f"({a},{a + b}]"], [f"[{a}, {a + b}]", f"({a}, {a + b + 1}]"]
    if kind == 3:
        return (
            f"({a}, {b})",
            [f"({a},{b})"],
            [f"({b}, {a})" if a != b else f"({a}, {b + 1})", f"({a}, {b + 2})"],
        )
    if kind == 4:
        return f"{a}\\pi", [f"\\pi \\cdot {a}"], [f"{a + 1}\\pi", f"{a}"]
    return (
        f"\\frac{{{a}}}{{{b}}}",
        [f"\\dfrac{{{a}}}{{{b}}}"],
        [f"\\frac{{{a + 1}}}{{{b}}}", f"\\frac{{{b}}}{{{a}}}"],
    )


def _outside_question(rng: random.Random) -> tuple[str, list[str], list[str]]:
    """A question whose forms only math-verify reads (rational functions, equations, percents)."""
    a, b = rng.randint(1, 40), rng.randint(2, 40)
    kind = rng.randrange(3)
    if kind == 0:
        return f"\\frac{{x+{a}}}{{x-{b}}}", [f"\\frac{{{a}+x}}{{x-{b}}}"], [f"\\frac{{x+{b}}}{{x-{a}}}"]
    if kind == 1:
        return f"y = {a}x + {b}", [f"y={b}+{a}x"], [f"y = {b}x + {a}"]
    return f"{a}\\%", [f"{a} \\%"], [f"{a + 1}\\%"]


def latex_batches(
    questions: int, checkpoints: int, samples: int, rng: random.Random, make: Any = None
) -> list[list[Item]]:
    qs = [(make or _question)(rng) for _ in range(questions)]
    batches = []
    for _ in range(checkpoints):
        batch: list[Item] = []
        for gold, equivalent, wrong in qs:
            for _ in range(samples):
                u = rng.random()
                answer = gold if u < 0.45 else rng.choice(equivalent) if u < 0.65 else rng.choice(wrong)
                batch.append(
                    (
                        f"Working it out step by step.\nSo the answer is $\\boxed{{{answer}}}$.",
                        gold,
                        "boxed",
                        "stop",
                    )
                )
        batches.append(batch)
    return batches


def timed(batches: list[list[Item]], verifier: MathVerifier) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    graded = [g for batch in batches for g in grade_many(batch, verifier=verifier)]
    return time.perf_counter() - t0, len(graded), sum(g.answer_correct for g in graded)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-fast", type=int, default=20_000)
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--checkpoints", type=int, default=8)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--outside", type=int, default=100, help="questions only math-verify reads")
    ap.add_argument("--processes", type=int, default=None, help="verifier children (default: one per core)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    verifier = MathVerifier(processes=args.processes)
    latex = latex_batches(args.questions, args.checkpoints, args.samples, rng)
    outside = latex_batches(args.outside, 1, args.samples, rng, _outside_question)
    try:
        t0 = time.perf_counter()
        verifier.judge_many([(Request.bare, "1", "1")] * verifier.processes)  # start-up, apart
        startup = time.perf_counter() - t0
        rows = [
            ("plain numbers (r1_zero)", *timed([fast_cases(args.n_fast, rng)], verifier)),
            ("latex, first checkpoint (cold)", *timed(latex[:1], verifier)),
            (f"latex, checkpoints 2-{args.checkpoints} (warm)", *timed(latex[1:], verifier)),
            ("latex outside the cheap reading, cold", *timed(outside, verifier)),
        ]
    finally:
        verifier.close()
    print(
        f"math-verify pool: {verifier.processes} processes, start-up {startup:.2f} s; timeouts {verifier.timeouts}\n"
    )
    print("| path | samples | seconds | samples/s | ms/sample | answer correct |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, secs, n, correct in rows:
        print(f"| {name} | {n} | {secs:.2f} | {n / secs:,.0f} | {1e3 * secs / n:.3f} | {correct} |")
    n_latex = rows[1][2] + rows[2][2]
    s_latex = rows[1][1] + rows[2][1]
    print(f"\nlatex overall: {n_latex} samples in {s_latex:.2f} s = {n_latex / s_latex:,.0f} samples/s")


if __name__ == "__main__":
    main()
