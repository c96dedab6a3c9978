"""vLLM vs HF generate on the same checkpoint and task: same greedy outputs, throughput ratio.

python bench/bench_backends.py [--model DIR] [--limit 200] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--task", default="ones_digit")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    from transformers import AutoTokenizer

    from eval_service.worker.config import WorkerSettings
    from eval_service.worker.engine import Target, make_backend
    from shared.schemas import SamplingSpec
    from shared.tasks import get_task

    model = a.model
    if model is None:
        from trainer_service.tiny_model import build_tiny_model

        model = build_tiny_model(Path(tempfile.mkdtemp()) / "base")
    task = get_task(a.task)
    examples = task.examples("test", limit=a.limit)
    tok = AutoTokenizer.from_pretrained(model)
    prompts = [task.render_prompt(ex, tok) for ex in examples]
    spec = SamplingSpec(max_tokens=a.max_tokens)
    rows, texts = [], {}
    for name in ("vllm", "hf"):
        be = make_backend(WorkerSettings(backend=name, dtype=a.dtype, hf_batch_size=64))
        be.load(Target(model))
        be.generate(prompts[:4], spec)  # warm-up
        t = time.perf_counter()
        outs = be.generate(prompts, spec)
        dt = time.perf_counter() - t
        be.close()
        n_tok = sum(o[0].num_tokens for o in outs)
        texts[name] = [o[0].text.rstrip("\ufffd") for o in outs]
        rows.append((name, dt, n_tok, n_tok / dt))
    same = sum(x == y for x, y in zip(texts["vllm"], texts["hf"], strict=True))
    print("| backend | gen s | tokens | tok/s |\n|---|---|---|---|")
    for name, dt, n, tps in rows:
        print(f"| {name} | {dt:.2f} | {n} | {tps:.0f} |")
    print(
        f"\nsame greedy outputs: {same}/{len(prompts)}; vLLM/HF throughput = {rows[0][3] / rows[1][3]:.1f}x"
    )


if __name__ == "__main__":
    main()
