"""What a LoRA adapter must look like for the evaluator (vLLM) to serve it; checked by the trainer
at config time and by the worker before it loads an adapter, so a run never trains adapters that
cannot be scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# vLLM 0.32's allowed `max_lora_rank` values (vllm/config/lora.py, `MaxLoRARanks`); a test holds
# this tuple equal to vLLM's own list.
VLLM_LORA_RANKS: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class AdapterRefused(ValueError):
    """The adapter (or the LoRA settings that would produce it) cannot be served by vLLM."""


def smallest_rank_for(r: int) -> int | None:
    """The smallest vLLM max_lora_rank that holds an adapter of rank `r` (None: none does)."""
    return next((m for m in VLLM_LORA_RANKS if m >= r), None)


def check_max_lora_rank(value: int) -> int:
    if value not in VLLM_LORA_RANKS:
        fit = smallest_rank_for(value)
        hint = f"use {fit}" if fit is not None else f"use at most {VLLM_LORA_RANKS[-1]}"
        raise AdapterRefused(
            f"max_lora_rank={value} is not one vLLM accepts ({', '.join(map(str, VLLM_LORA_RANKS))}); {hint}"
        )
    return value


def check_lora_settings(r: int, modules_to_save: list[str] | None, where: str) -> None:
    """Refuse LoRA settings whose adapters the vLLM evaluator could not load; `where` names the
    config block in the message."""
    if modules_to_save:
        raise AdapterRefused(
            f"{where}.modules_to_save={modules_to_save}: vLLM refuses adapters with modules_to_save "
            "for causal LMs, so the evaluator could not score these checkpoints; remove it (train "
            "those modules with full fine-tuning instead, or add them to target_modules)"
        )
    if smallest_rank_for(r) is None:
        raise AdapterRefused(
            f"{where}.r={r}: vLLM serves adapters up to rank {VLLM_LORA_RANKS[-1]}; use a smaller r"
        )


def check_adapter(adapter_dir: Path, max_lora_rank: int) -> dict[str, Any]:
    """Refuse an adapter the engine cannot serve; returns its adapter_config.json."""
    path = Path(adapter_dir) / "adapter_config.json"
    try:
        conf = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise AdapterRefused(f"{path}: unreadable: {e}") from e
    r = int(conf.get("r", 8))
    try:
        check_lora_settings(r, conf.get("modules_to_save"), str(path))
    except AdapterRefused as e:
        raise AdapterRefused(str(e)) from None
    if r > max_lora_rank:
        raise AdapterRefused(
            f"{path}: r={r} exceeds the worker's max_lora_rank={max_lora_rank}; restart the worker "
            f"with DUET_WORKER_MAX_LORA_RANK={smallest_rank_for(r)}"
        )
    return conf
