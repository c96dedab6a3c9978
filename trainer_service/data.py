"""The SFT dataset: prompt/completion pairs from a shared.tasks task.

The prompt is `task.render_prompt(ex, tokenizer)`, the very string the eval worker sends to vLLM,
so the model is trained on exactly the context it is evaluated in.
"""

from __future__ import annotations

from typing import Any

from trainer_service.config import ConfigError, TrainConfig


def load_task(cfg: TrainConfig) -> Any:
    from shared.tasks import get_task

    try:
        return get_task(cfg.task, **cfg.task_options)
    except (KeyError, ValueError, TypeError, FileNotFoundError) as e:
        raise ConfigError(f"task / task_options: {e}") from e


def sft_rows(task: Any, examples: list, tokenizer: Any) -> list[dict[str, str]]:
    eos = tokenizer.eos_token or ""
    rows = []
    for ex in examples:
        target = task.target(ex)
        # Generation must learn to stop: the completion ends with EOS (TRL would add it too).
        if eos and not target.endswith(eos):
            target += eos
        rows.append({"prompt": task.render_prompt(ex, tokenizer), "completion": target})
    return rows


def build_sft_dataset(cfg: TrainConfig, tokenizer: Any) -> Any:
    from datasets import Dataset

    task = load_task(cfg)
    return Dataset.from_list(sft_rows(task, train_examples(cfg, task), tokenizer))


def train_examples(cfg: TrainConfig, task: Any) -> list:
    """The training split's examples (SFT and GRPO alike); a bad split or an empty one is a ConfigError."""
    try:
        examples = task.examples(cfg.train_split, limit=cfg.train_limit, seed=cfg.seed)
    except (ValueError, FileNotFoundError, KeyError) as e:
        raise ConfigError(f"train_split / task_options: {e}") from e
    if not examples:
        raise ConfigError(f"task {cfg.task!r} has no examples in split {cfg.train_split!r}")
    return examples
