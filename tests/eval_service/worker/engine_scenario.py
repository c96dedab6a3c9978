"""One vLLM engine (real, CPU) taken through swap, LoRA and an injected stale swap; the load info and
outputs of each step as JSON on stdout. A subprocess, because vLLM must own its process tree.

The stale swap is a fault vLLM 0.32 does not cause by itself: the reload is replaced by one that
skips every weight of one middle decoder layer (which the parameter probes, reading the first and
last layers, do not look at), so only the end-to-end canary can notice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SKIP = ".layers.1."


def reload_skipping_layer(worker: Any, path: str, skip: str) -> int:
    """Runs inside a vLLM worker: reload `path` in place but leave out the weights named `skip`."""
    from safetensors import safe_open

    def weights():
        for f in sorted(Path(path).glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as st:
                for k in st.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    if skip not in k:
                        yield k, st.get_tensor(k)

    worker.reload_weights(weights_iterator=weights())
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--lora", type=Path, required=True)
    ap.add_argument("--full", type=Path, nargs=2, required=True, help="two full checkpoints")
    ap.add_argument("--prompts", type=Path, required=True)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    from eval_service.worker.canary import run_canary
    from eval_service.worker.config import WorkerSettings
    from eval_service.worker.engine import Target, VLLMBackend
    from shared.schemas import SamplingSpec

    prompts = json.loads(a.prompts.read_text())
    spec = SamplingSpec(max_tokens=12)
    settings = WorkerSettings(dtype=a.dtype, enable_lora=True, max_lora_rank=8, base_model=a.base)
    backend = VLLMBackend(settings)
    steps: dict[str, Any] = {}

    def step(name: str, target: Target) -> None:
        info = backend.load(target)
        steps[name] = {"info": info, "out": [o[0].text for o in backend.generate(prompts, spec)]}

    try:
        step("base", Target(a.base))
        step("lora", Target(a.lora, "lora", a.base))
        step("swap", Target(a.full[0]))
        # the fault: reload with one layer left out; the canary alone must see it
        backend._reload = lambda p: backend.llm.collective_rpc(reload_skipping_layer, args=(str(p), SKIP))
        backend._reload(a.full[1])
        steps["faulty_canary"] = run_canary(backend.llm, a.full[1]).__dict__
        # layer 1 now still holds full[0]'s weights: swapping to full[1] again serves a stale layer
        step("stale", Target(a.full[1]))
    finally:
        backend.close()
    sys.stdout.write("\nSCENARIO " + json.dumps(steps) + "\n")


if __name__ == "__main__":
    main()
