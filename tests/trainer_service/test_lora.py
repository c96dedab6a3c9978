"""LoRA through PEFT: adapter checkpoints, published with markers of kind `lora`, loadable on the base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.trainer_service.helpers import assert_published, tiny_config
from trainer_service.train import train


@pytest.mark.slow
def test_lora_run_publishes_adapter_checkpoints(tiny_model: Path, tmp_path: Path):
    cfg = tiny_config(
        tiny_model,
        tmp_path / "out",
        run_name="t-lora",
        max_steps=8,
        save_steps=4,
        report=False,
        lora={"r": 4, "alpha": 8, "dropout": 0.0},  # default targets: attention + MLP projections
    )
    result = train(cfg)

    assert [p.name for p in result.checkpoints] == ["checkpoint-4", "checkpoint-8"]
    for ckpt in result.checkpoints:
        assert_published(ckpt, run="t-lora", step=int(ckpt.name.split("-")[1]), kind="lora")
        assert (ckpt / "adapter_model.safetensors").is_file()
        assert not (ckpt / "model.safetensors").exists()  # adapters only, not a merged copy
    adapter = json.loads((result.checkpoints[-1] / "adapter_config.json").read_text())
    assert {"q_proj", "v_proj", "gate_proj", "down_proj"} <= set(adapter["target_modules"])
    assert adapter["r"] == 4

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), result.checkpoints[-1]
    )
    trained = [n for n, p in model.named_parameters() if "lora_B" in n and p.abs().sum() > 0]
    assert trained  # lora_B starts at zero: non-zero means the adapters were trained and saved
