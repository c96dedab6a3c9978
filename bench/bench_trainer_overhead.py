"""Trainer overhead of duet's callbacks: steps/s with DuetCallback (markers + reporter to a real
ledger) vs plain TRL, same model, seeds and data, side by side in one process.

    .venv/bin/python bench/bench_trainer_overhead.py --steps 60 --save-steps 20 --repeats 2

Needs a ledger for the `duet` arm: it starts one (uvicorn subprocess, temp SQLite, offline W&B)
unless --ledger-url is given. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_arm(arm: str, model: Path, out: Path, args: argparse.Namespace, ledger) -> dict:
    from transformers import TrainerCallback

    from trainer_service import train as train_mod
    from trainer_service.config import load_config

    cfg = load_config(
        REPO / "cli/configs/tiny.yaml",
        dict(
            model=str(model),
            output_dir=str(out),
            run_name=f"bench-{out.name}",
            max_steps=args.steps,
            save_steps=args.save_steps,
            logging_steps=args.logging_steps,
            per_device_train_batch_size=args.batch,
            report=arm == "duet",
            ledger_url=ledger.url if ledger else None,
            ledger_token=ledger.token if ledger else None,
            retention={"enabled": arm == "duet"},
        ),
    )

    class Clock(TrainerCallback):
        """Times the training loop only (from the first step's start), not model load."""

        t0: float | None = None
        t1: float | None = None

        def on_step_begin(self, a, state, control, **kw):
            if self.t0 is None:
                self.t0 = time.perf_counter()

        def on_train_end(self, a, state, control, **kw):
            self.t1 = time.perf_counter()

    clock = Clock()
    result = train_mod.train(cfg, callbacks=[clock], publish=arm == "duet")
    elapsed = clock.t1 - clock.t0
    return {"steps_per_s": result.global_step / elapsed, "pending": result.spool_pending}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--save-steps", type=int, default=20)
    p.add_argument("--logging-steps", type=int, default=1, help="1 = worst case for the reporter")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    from tests.fixtures.ledger import LedgerServer
    from trainer_service.tiny_model import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="duet-bench-trainer-"))
    ledger = LedgerServer(tmp / "ledger").start()
    try:
        model = build_tiny_model(tmp / "tiny")
        rows: dict[str, list[float]] = {"plain": [], "duet": []}
        for r in range(args.repeats):
            for arm in ("plain", "duet"):  # interleaved so background load hits both arms alike
                out = ledger.checkpoint_root / f"{arm}-{r}"
                res = run_arm(arm, model, out, args, ledger)
                rows[arm].append(res["steps_per_s"])
                print(f"  {arm} repeat {r}: {res['steps_per_s']:.3f} steps/s", file=sys.stderr)
    finally:
        ledger.stop()
    plain, duet = statistics.median(rows["plain"]), statistics.median(rows["duet"])
    print(
        f"\ntiny model, {args.steps} steps, batch {args.batch}, save every {args.save_steps}, "
        f"log every {args.logging_steps}, {args.repeats} repeats (median), {os.cpu_count()} CPUs\n"
    )
    print("| arm | steps/s (median) | runs |")
    print("|---|---|---|")
    print(f"| plain TRL (no duet callbacks) | {plain:.3f} | {', '.join(f'{x:.3f}' for x in rows['plain'])} |")
    print(
        f"| duet (markers + ledger reporter + retention) | {duet:.3f} | {', '.join(f'{x:.3f}' for x in rows['duet'])} |"
    )
    print(f"| ratio duet/plain | {duet / plain:.3f} | |")


if __name__ == "__main__":
    main()
