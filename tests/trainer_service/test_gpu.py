"""GPU path of the trainer: bf16 mixed precision on CUDA (runs only where a GPU is present)."""

import math

import pytest

from shared.checkpoint import read_marker, verify_marker
from tests.trainer_service.helpers import TINY_CONFIG

pytestmark = pytest.mark.gpu


def test_bf16_training_on_cuda_publishes_checkpoints(tiny_model, tmp_path):
    import torch

    from trainer_service.config import load_config
    from trainer_service.train import train

    cfg = load_config(
        TINY_CONFIG,
        {
            "model": str(tiny_model),
            "output_dir": str(tmp_path / "run"),
            "max_steps": 6,
            "save_steps": 3,
            "logging_steps": 1,
            "bf16": True,
            "report": False,
        },
    )
    torch.cuda.reset_peak_memory_stats()
    result = train(cfg)
    assert torch.cuda.max_memory_allocated() > 0, "training did not run on the GPU"
    assert result.global_step == 6
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    assert losses and all(math.isfinite(x) for x in losses)
    for ckpt in result.checkpoints:
        marker = read_marker(ckpt)
        assert marker is not None and marker.kind == "full"
        verify_marker(ckpt, marker, hashes=True)
