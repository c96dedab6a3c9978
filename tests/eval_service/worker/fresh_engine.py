"""Greedy outputs of a freshly built backend on one checkpoint, as JSON on stdout (a subprocess,
because vLLM must own its process tree). Used to check that a hot-swapped engine matches."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--kind", default="full")
    ap.add_argument("--base", type=Path)
    ap.add_argument("--prompts", type=Path, required=True, help="JSON list of prompt strings")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    from eval_service.worker.config import WorkerSettings
    from eval_service.worker.engine import Target, make_backend
    from shared.schemas import SamplingSpec

    s = WorkerSettings(backend=a.backend, dtype=a.dtype, base_model=a.base)
    backend = make_backend(s)
    try:
        backend.load(Target(a.model, a.kind, a.base))
        outs = backend.generate(json.loads(a.prompts.read_text()), SamplingSpec(max_tokens=a.max_tokens))
    finally:
        backend.close()
    sys.stdout.write("\nFRESH_OUTPUTS " + json.dumps([o[0].text for o in outs]) + "\n")


if __name__ == "__main__":
    main()
