"""GPU paths (run only where a GPU is present): the HF backend on CUDA agrees with CPU, and the vLLM
worker engine on CUDA -- CUDA graphs on by default -- swaps in place with the canary through
`generate` agreeing with transformers, serves a LoRA adapter without reload, and catches a stale
swap (the captured graphs must see the new weights, or the canary fails)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval_service.worker.config import WorkerSettings
from eval_service.worker.engine import Target
from eval_service.worker.hf_backend import HFBackend
from shared.schemas import LoadMode, SamplingSpec
from shared.tasks import get_task
from tests.eval_service.worker.conftest import make_full, make_lora

pytestmark = pytest.mark.gpu


def test_hf_backend_on_cuda_matches_cpu_greedy(tiny_model):
    task = get_task("ones_digit")
    examples = task.examples("test", limit=64)
    spec = SamplingSpec(max_tokens=48, logprobs=True)
    outputs = {}
    for device in ("cpu", "cuda"):
        backend = HFBackend(WorkerSettings(backend="hf", hf_device=device, dtype="float32"))
        backend.load(Target(tiny_model))
        assert backend.model.device.type == device
        prompts = [task.render_prompt(ex, backend.tok) for ex in examples]
        outputs[device] = [c[0].text for c in backend.generate(prompts, spec)]
        backend.close()
    same = sum(a == b for a, b in zip(outputs["cpu"], outputs["cuda"], strict=True))
    # float32 on both; kernels differ, so an argmax tie may rarely flip one continuation
    assert same >= 0.95 * len(examples), f"only {same}/{len(examples)} greedy outputs agree"


def test_cuda_defaults_to_graphs():
    assert WorkerSettings().resolved_enforce_eager() is False


@pytest.mark.parametrize("model", ["tiny_model", "tiny_qwen2_model"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_vllm_on_cuda_swap_canary_lora_and_stale_swap(model, dtype, request, tmp_path: Path):
    base = Path(request.getfixturevalue(model))
    lora = make_lora(base, tmp_path / "lora", seed=3, run=None, step=1)
    full = [make_full(base, tmp_path / f"full-{i}", seed=10 + i, run=None, step=i) for i in (1, 2)]
    pfile = tmp_path / "prompts.json"
    task = get_task("ones_digit")
    pfile.write_text(json.dumps([task.render_prompt(ex) for ex in task.examples("test", limit=8)]))
    cmd = [sys.executable, "-m", "tests.eval_service.worker.engine_scenario", "--base", str(base)]
    cmd += ["--lora", str(lora), "--full", *map(str, full), "--prompts", str(pfile), "--dtype", dtype]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    steps = json.loads(next(ln for ln in out.stdout.splitlines() if ln.startswith("SCENARIO "))[9:])
    info = {name: s["info"] for name, s in steps.items() if "info" in s}
    assert info["base"]["enforce_eager"] is False  # CUDA graphs captured
    assert info["lora"]["load_mode"] == LoadMode.lora
    assert info["swap"]["load_mode"] == LoadMode.swap and info["swap"]["canary_ok"] is True
    assert steps["faulty_canary"]["ok"] is False
    assert info["stale"]["load_mode"] == LoadMode.rebuild and "canary" in info["stale"]["load_reason"]
