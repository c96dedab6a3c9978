"""GPU eval benchmark: one checkpoint through the worker's vLLM engine on a whole eval set (GSM8K
test, 1,319 problems, by default), against transformers `generate` on a subset.

Reports: engine build time, in-place swap time (+ verification and canary), generation time,
generated tokens/s, accuracy, and the tokens/s ratio vLLM / HF `generate` (same prompts, greedy,
same max tokens; HF on a subset because it is slow). Uses the worker's own classes (VLLMBackend,
HFBackend, task, grader), so the figures are what `duet worker` gets.

    python bench/bench_gpu_eval.py --model Qwen/Qwen2.5-Math-1.5B --answer-format r1_zero
    # a CPU smoke check on the tiny model (seconds of generation):
    python bench/bench_gpu_eval.py --model /tmp/tiny --task gsm8k_sample --limit 8 --max-tokens 16 \\
        --hf-subset 4 --dtype float32
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="base model dir or hub id (built into the engine)")
    ap.add_argument("--checkpoint", type=Path, help="checkpoint swapped in (default: the model itself)")
    ap.add_argument("--task", default="gsm8k")
    ap.add_argument("--answer-format", help="task option answer_format (e.g. r1_zero)")
    ap.add_argument("--limit", type=int, help="eval examples (default: the whole test split)")
    ap.add_argument("--max-tokens", type=int, default=1024)
    ap.add_argument("--hf-subset", type=int, default=64, help="prompts for the HF generate comparison")
    ap.add_argument("--hf-batch-size", type=int, default=32)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    ap.add_argument("--out", type=Path, help="also write the report here (JSON)")
    a = ap.parse_args()

    from eval_service.worker.config import WorkerSettings
    from eval_service.worker.engine import Target, VLLMBackend
    from eval_service.worker.hf_backend import HFBackend
    from eval_service.worker.main import resolve_base_model
    from shared.schemas import SamplingSpec
    from shared.tasks import get_task

    model = resolve_base_model(Path(a.model))
    ckpt = a.checkpoint or model
    options = {"answer_format": a.answer_format} if a.answer_format else {}
    task = get_task(a.task, **options)
    examples = task.examples("test", limit=a.limit)
    settings = WorkerSettings(
        dtype=a.dtype, gpu_memory_utilization=a.gpu_memory_utilization, hf_batch_size=a.hf_batch_size
    )
    spec = SamplingSpec(max_tokens=a.max_tokens)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    prompts = [task.render_prompt(ex, tok) for ex in examples]

    vllm = VLLMBackend(settings)
    try:
        build = vllm.load(Target(model))
        swap = vllm.load(Target(ckpt))  # an in-place swap, verified (probes + canary)
        t0 = time.perf_counter()
        outs = vllm.generate(prompts, spec)
        gen_s = time.perf_counter() - t0
        sub_vllm = outs[: a.hf_subset]
    finally:
        vllm.close()
    tokens = sum(c.num_tokens for o in outs for c in o)
    grades = [task.grade(o[0].text, ex, o[0].finish_reason) for ex, o in zip(examples, outs, strict=True)]
    accuracy = sum(g.correct for g in grades) / max(len(grades), 1)

    hf = HFBackend(settings.model_copy(update={"backend": "hf"}))
    hf.load(Target(ckpt))
    t1 = time.perf_counter()
    hf_outs = hf.generate(prompts[: a.hf_subset], spec)
    hf_s = time.perf_counter() - t1
    hf.close()
    hf_tokens = sum(c.num_tokens for o in hf_outs for c in o)
    sub_tokens = sum(c.num_tokens for o in sub_vllm for c in o)
    vllm_tps, hf_tps = tokens / gen_s, hf_tokens / hf_s
    report = {
        "model": str(a.model),
        "task": a.task,
        "n_prompts": len(prompts),
        "max_tokens": a.max_tokens,
        "device": _device(),
        "engine_build_s": build.get("load_s"),
        "enforce_eager": build.get("enforce_eager"),
        "swap_mode": swap.get("load_mode"),
        "swap_s": swap.get("swap_s"),
        "verify_s": swap.get("verify_s"),
        "canary_ok": swap.get("canary_ok"),
        "gen_s": round(gen_s, 3),
        "gen_tokens": tokens,
        "tokens_per_s": round(vllm_tps, 1),
        "accuracy": round(accuracy, 4),
        "hf_subset": len(hf_outs),
        "hf_gen_s": round(hf_s, 3),
        "hf_tokens": hf_tokens,
        "hf_tokens_per_s": round(hf_tps, 1),
        "vllm_subset_tokens": sub_tokens,
        "speedup_tokens_per_s": round(vllm_tps / hf_tps, 2) if hf_tps else None,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({os.cpu_count()} cores)"


if __name__ == "__main__":
    main()
