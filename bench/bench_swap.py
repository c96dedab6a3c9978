"""Hot swap (reload_weights + verify) vs a freshly built vLLM engine on the same checkpoint.

    python bench/bench_swap.py [--model DIR] [--repeats 5]

Without --model, builds the tiny test model and a perturbed copy in a temp dir.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def perturbed(src: Path, dst: Path, seed: int) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    g = torch.Generator().manual_seed(seed)
    sd = {
        k: v + 0.1 * torch.randn(v.shape, generator=g)
        for k, v in load_file(src / "model.safetensors").items()
    }
    save_file(sd, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", default="auto")
    a = ap.parse_args()
    from eval_service.worker.config import WorkerSettings
    from eval_service.worker.engine import Target, VLLMBackend

    tmp = Path(tempfile.mkdtemp())
    base = a.model
    if base is None:
        from trainer_service.tiny_model import build_tiny_model

        base = build_tiny_model(tmp / "base")
    ckpts = [perturbed(base, tmp / f"ck{i}", i) for i in range(2)]
    s = WorkerSettings(dtype=a.dtype)
    eng = VLLMBackend(s)
    t = time.perf_counter()
    eng.load(Target(base))
    fresh = [time.perf_counter() - t]
    swaps, verifies = [], []
    for i in range(a.repeats):
        info = eng.load(Target(ckpts[i % 2]))
        assert info["engine_event"] == "swap" and info["swap_verified"], info
        swaps.append(info["swap_s"])
        verifies.append(info["verify_s"])
    eng.close()
    for _ in range(1):  # a second fresh build on the checkpoint itself
        eng = VLLMBackend(s)
        t = time.perf_counter()
        eng.load(Target(ckpts[0]))
        fresh.append(time.perf_counter() - t)
        eng.close()
    shutil.rmtree(tmp, ignore_errors=True)
    f, sw, v = statistics.median(fresh), statistics.median(swaps), statistics.median(verifies)
    print("| method | median s | n |\n|---|---|---|")
    print(f"| fresh engine (LLM(...)) | {f:.2f} | {len(fresh)} |")
    print(f"| hot swap (reload_weights) | {sw:.4f} | {len(swaps)} |")
    print(f"| swap verification | {v:.4f} | {len(verifies)} |")
    print(f"| swap + verify | {sw + v:.4f} | |")
    print(f"\nfresh / (swap + verify) = {f / (sw + v):.0f}x")


if __name__ == "__main__":
    main()
