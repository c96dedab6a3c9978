"""Agreement of duet's grader and the standard graders with the public-case fixture's labels.

.venv/bin/python bench/grader_agreement.py [--cases tests/shared/data/grader_cases.jsonl] [--format r1_zero]

Rows are the three verdicts (strict = format and answer, format, format-free answer); columns are
duet and each reference grader (tests/shared/grader_reference.py); a cell is the share of the
cases that grader decides on which agree with the label, with that number of cases. "n/a": the
grader has no such verdict (math-verify has no format rule; lm-eval only grades gsm8k; CS336
gives no answer verdict without its format). Then the per-format breakdown for duet and the ids of the cases
duet gets wrong, by verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the fixture harness lives in tests/
    sys.path.insert(0, str(ROOT))

from shared.grading import grade_response  # noqa: E402
from tests.shared.grader_reference import Reference, Verdicts, reference_verdicts  # noqa: E402

DEFAULT_CASES = ROOT / "tests" / "shared" / "data" / "grader_cases.jsonl"
VERDICTS = ("strict", "format_ok", "answer_correct")
VERDICT_NAMES = {"strict": "strict", "format_ok": "format", "answer_correct": "format-free"}
DUET = "duet"
COLUMNS = (DUET, *(r.value for r in Reference))


def load_cases(path: Path) -> list[dict[str, Any]]:
    cases = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        case = json.loads(line)
        missing = [k for k in ("id", "format", "response", "gold", *VERDICTS) if k not in case]
        if missing:
            raise ValueError(f"{path}:{lineno}: case lacks field(s) {missing}")
        cases.append(case)
    return cases


def duet_verdicts(case: dict[str, Any]) -> Verdicts:
    """duet's grader on one case: strict (`correct`), format and format-free (`answer_correct`)."""
    g = grade_response(case["response"], str(case["gold"]), case["format"], "stop")
    return Verdicts(strict=g.correct, format_ok=g.format_ok, answer_correct=g.answer_correct)


def tally(cases: list[dict[str, Any]]) -> tuple[dict[tuple[str, str], list[int]], dict[str, list[str]]]:
    """(column, verdict) -> [agree, decided]; duet's disagreeing ids per verdict."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    duet_wrong: dict[str, list[str]] = defaultdict(list)
    for case in cases:
        results: dict[str, Verdicts] = {DUET: duet_verdicts(case)}
        results.update({ref.value: v for ref, v in reference_verdicts(case).items()})
        for column, v in results.items():
            for verdict in VERDICTS:
                said = getattr(v, verdict)
                if said is None:
                    continue
                cell = counts[(column, verdict)]
                cell[1] += 1
                cell[0] += said == case[verdict]
                if column == DUET and said != case[verdict]:
                    duet_wrong[verdict].append(case["id"])
        fmt = case["format"]
        for verdict in VERDICTS:
            said = getattr(results[DUET], verdict)
            if said is not None:
                cell = counts[(f"{DUET}:{fmt}", verdict)]
                cell[1] += 1
                cell[0] += said == case[verdict]
    return counts, duet_wrong


def cell(counts: dict[tuple[str, str], list[int]], column: str, verdict: str) -> str:
    agree, decided = counts.get((column, verdict), (0, 0))
    return "n/a" if decided == 0 else f"{100 * agree / decided:.1f}% ({agree}/{decided})"


def table(counts: dict[tuple[str, str], list[int]], columns: tuple[str, ...]) -> str:
    lines = [
        "| verdict | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for verdict in VERDICTS:
        cells = " | ".join(cell(counts, c, verdict) for c in columns)
        lines.append(f"| {VERDICT_NAMES[verdict]} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    ap.add_argument("--format", dest="fmt", default=None, help="only cases of this answer format")
    args = ap.parse_args()
    cases = load_cases(args.cases)
    if args.fmt:
        cases = [c for c in cases if c["format"] == args.fmt]
    by_format: dict[str, int] = defaultdict(int)
    by_source: dict[str, int] = defaultdict(int)
    for c in cases:
        by_format[c["format"]] += 1
        by_source[c["source"].split(" ")[0].split("#")[0]] += 1
    t0 = time.perf_counter()
    counts, duet_wrong = tally(cases)
    elapsed = time.perf_counter() - t0

    print(f"## Grader agreement with {len(cases)} labelled public cases ({args.cases.name})\n")
    print("cases per format: " + ", ".join(f"{k} {v}" for k, v in sorted(by_format.items())))
    print("cases per source: " + ", ".join(f"{k} {v}" for k, v in sorted(by_source.items())))
    labels = {v: sum(bool(c[v]) for c in cases) for v in VERDICTS}
    print("labels true: " + ", ".join(f"{VERDICT_NAMES[v]} {n}" for v, n in labels.items()) + "\n")
    print(table(counts, COLUMNS) + "\n")
    formats = tuple(sorted(by_format))
    print("### duet by answer format\n")
    print(table(counts, tuple(f"{DUET}:{f}" for f in formats)) + "\n")
    for verdict in VERDICTS:
        wrong = duet_wrong.get(verdict, [])
        print(f"duet disagrees on {VERDICT_NAMES[verdict]} ({len(wrong)}): {' '.join(wrong) or '-'}\n")
    print(f"graded in {elapsed:.1f}s")


if __name__ == "__main__":
    main()
