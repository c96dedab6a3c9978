"""The real vLLM (CPU) engine on both tiny architectures -- Llama and Qwen2 (tied embeddings, the
`Qwen2ForCausalLM` path GPU users run): in-place swap verified, the canary through `generate`
agrees with transformers, a LoRA adapter is served without a reload, and a stale swap (one layer
left out of the reload) is caught by the canary and rebuilt, with the reason recorded."""

from __future__ import annotations

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

ARCHS = ["tiny_model", "tiny_qwen2_model"]


def _hf_outputs(target: Target, base: Path, prompts: list[str]) -> list[str]:
    hf = HFBackend(WorkerSettings(backend="hf", dtype="float32", base_model=base))
    hf.load(target)
    return [o[0].text.rstrip("\ufffd") for o in hf.generate(prompts, SamplingSpec(max_tokens=12))]


@pytest.mark.slow
@pytest.mark.parametrize("model", ARCHS)
def test_swap_canary_lora_and_stale_swap(model: str, request: pytest.FixtureRequest, tmp_path: Path):
    base = Path(request.getfixturevalue(model))
    lora = make_lora(base, tmp_path / "lora", seed=3, run=None, step=1)
    full = [make_full(base, tmp_path / f"full-{i}", seed=10 + i, run=None, step=i) for i in (1, 2)]
    from transformers import AutoTokenizer

    task = get_task("ones_digit")
    tok = AutoTokenizer.from_pretrained(base)
    prompts = [task.render_prompt(ex, tok) for ex in task.examples("test", limit=4)]
    pfile = tmp_path / "prompts.json"
    pfile.write_text(json.dumps(prompts))
    cmd = [sys.executable, "-m", "tests.eval_service.worker.engine_scenario", "--base", str(base)]
    cmd += ["--lora", str(lora), "--full", *map(str, full), "--prompts", str(pfile)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("SCENARIO "))
    steps = json.loads(line.removeprefix("SCENARIO "))
    info = {name: s["info"] for name, s in steps.items() if "info" in s}

    assert info["base"]["load_mode"] == LoadMode.initial
    # the adapter is served over the loaded base: no reload, no rebuild
    assert info["lora"]["load_mode"] == LoadMode.lora and "load_s" not in info["lora"]
    assert steps["lora"]["out"] != steps["base"]["out"]
    swap = info["swap"]
    assert swap["load_mode"] == LoadMode.swap and swap["swap_verified"] is True
    assert swap["canary_ok"] is True and swap["canary_err"] < 5e-3
    # a swapped engine generates what transformers generates on that checkpoint
    assert [t.rstrip("\ufffd") for t in steps["swap"]["out"]] == _hf_outputs(Target(full[0]), base, prompts)
    assert [t.rstrip("\ufffd") for t in steps["lora"]["out"]] == _hf_outputs(
        Target(lora, "lora", base), base, prompts
    )

    # the stale layer: the canary sees it, the load becomes a rebuild that says why
    assert steps["faulty_canary"]["ok"] is False, steps["faulty_canary"]
    stale = info["stale"]
    assert stale["load_mode"] == LoadMode.rebuild and stale["swap_verified"] is False
    assert "stale" in stale["load_reason"] and "canary" in stale["load_reason"]
    assert [t.rstrip("\ufffd") for t in steps["stale"]["out"]] == _hf_outputs(Target(full[1]), base, prompts)
