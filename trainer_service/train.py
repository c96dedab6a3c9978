"""The SFT recipe: config -> (checks) -> dataset -> model -> TRL SFTTrainer with DuetCallback.

Order matters: everything that can be wrong with the config or the data fails before the model
(possibly gigabytes) is loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.checkpoint import (
    MARKER_NAME,
    CheckpointError,
    checkpoint_step,
    published_checkpoints,
    read_marker,
    verify_marker,
)
from trainer_service.config import Algorithm, ConfigError, TrainConfig
from trainer_service.retention import apply_retention

log = logging.getLogger("duet.trainer")

SPOOL_NAME = ".duet/spool.sqlite"
# Keys owned by duet's own config keys or by the publishing protocol; sft_args may not set them.
_RESERVED_SFT_ARGS = {"report_to", "save_total_limit", "save_strategy", "output_dir", "run_name"}


@dataclass
class TrainResult:
    output_dir: Path
    run_name: str
    run_id: int | None
    global_step: int
    checkpoints: list[Path]
    resumed_from: Path | None
    spool_pending: int
    spool_path: Path | None
    log_history: list[dict]  # everything the Trainer logged (what was sent to the ledger)


def spool_path(output_dir: Path | str) -> Path:
    return Path(output_dir) / SPOOL_NAME


def find_resume_checkpoint(output_dir: Path) -> Path | None:
    """The newest `checkpoint-N` with a valid duet marker and a trainer state. Unlike HF's
    `get_last_checkpoint` this never picks a dir a crash left half-written."""
    for _step, path in reversed(published_checkpoints(output_dir)):
        try:
            marker = read_marker(path)
            if marker is None:
                continue
            verify_marker(path, marker)
        except CheckpointError as e:
            log.warning("not resuming from %s: %s", path, e)
            continue
        if (path / "trainer_state.json").is_file():
            return path
    return None


def remove_unpublished_after(output_dir: Path, step: int) -> list[Path]:
    """Delete `checkpoint-N` dirs (N > step) without a marker: leftovers of a crash mid-save, which
    the resumed run will write again."""
    removed = []
    for d in Path(output_dir).iterdir():
        n = checkpoint_step(d)
        if n is not None and n > step and not (d / MARKER_NAME).is_file():
            shutil.rmtree(d)
            removed.append(d)
    return removed


def check_passthrough_args(
    key: str, args: dict[str, Any], config_cls: type, reserved: set[str], reserved_by: str
) -> None:
    """`sft_args` / `grpo_args` go to TRL's config as they are: each must be a field of `config_cls`,
    neither one duet sets itself (`reserved`, set by `reserved_by`) nor a top-level duet key."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    bad = []
    for k in args:
        if k in reserved:
            bad.append(f"{key}.{k}: set by duet ({reserved_by})")
        elif k in TrainConfig.model_fields:
            bad.append(f"{key}.{k}: is a top-level key; set it there")
        elif k not in known:
            close = difflib.get_close_matches(k, sorted(known), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            bad.append(f"{key}.{k}: not a TRL {config_cls.__name__} field{hint}")
    if bad:
        raise ConfigError("invalid config: " + "; ".join(bad))


def check_sft_args(cfg: TrainConfig) -> None:
    from trl import SFTConfig

    check_passthrough_args(
        "sft_args", cfg.sft_args, SFTConfig, _RESERVED_SFT_ARGS, "checkpoint publishing / ledger reporting"
    )


def check_hardware(cfg: TrainConfig) -> None:
    import importlib.util

    import torch

    if cfg.load_in_4bit:
        if not torch.cuda.is_available():
            raise ConfigError(
                "load_in_4bit: QLoRA needs a CUDA GPU (bitsandbytes 4-bit); none is available here"
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("load_in_4bit: needs the `bitsandbytes` package; pip install bitsandbytes")
    if cfg.bf16 and not torch.cuda.is_available():
        log.warning("bf16 on CPU: supported but usually slower than float32 on small models")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def common_trainer_args(cfg: TrainConfig) -> dict[str, Any]:
    """The TrainingArguments both recipes (SFT, GRPO) set alike from duet's top-level keys."""
    kw: dict[str, Any] = dict(
        output_dir=cfg.output_dir,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        lr_scheduler_type=cfg.lr_scheduler_type,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        # GRPOConfig defaults both to True; duet's config decides (CPU runs want neither).
        bf16=cfg.bf16,
        gradient_checkpointing=cfg.gradient_checkpointing,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        # HF rotation could delete a checkpoint the eval worker is loading; duet's retention decides.
        save_total_limit=None,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        dataloader_num_workers=cfg.dataloader_num_workers,
        # The ledger is the single W&B writer; the trainer must never open its own W&B run.
        report_to="none",
        run_name=cfg.resolved_run_name,
        disable_tqdm=True,
        dataloader_pin_memory=_has_cuda(),
    )
    # transformers 5 folded warmup_ratio into warmup_steps (a float < 1 is a ratio).
    if cfg.warmup_ratio is not None:
        kw["warmup_steps"] = cfg.warmup_ratio
    elif cfg.warmup_steps is not None:
        kw["warmup_steps"] = cfg.warmup_steps
    return kw


def build_sft_args(cfg: TrainConfig) -> Any:
    from trl import SFTConfig

    kw = common_trainer_args(cfg)
    kw.update(max_length=cfg.max_length, completion_only_loss=cfg.completion_only_loss)
    kw.update(cfg.sft_args)
    return SFTConfig(**kw)


def load_model(cfg: TrainConfig) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {}
    if cfg.torch_dtype != "auto":
        kwargs["dtype"] = getattr(torch, cfg.torch_dtype)
    elif cfg.bf16:
        kwargs["dtype"] = torch.bfloat16
    else:
        kwargs["dtype"] = torch.float32 if not torch.cuda.is_available() else "auto"
    if cfg.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
    model = AutoModelForCausalLM.from_pretrained(cfg.model, **kwargs)
    if cfg.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    return model


def peft_config(cfg: TrainConfig) -> Any:
    if cfg.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        modules_to_save=cfg.lora.modules_to_save,
        bias=cfg.lora.bias,
        task_type="CAUSAL_LM",
    )


def _quiet_progress_bars() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def start_reporter(cfg: TrainConfig, output_dir: Path) -> Any:
    """The ledger reporter (spooling under output_dir), or None when `report: false`."""
    from trainer_service.reporter import Reporter

    output_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.report:
        return None
    return Reporter(spool_path(output_dir), settings=cfg.client_settings()).start()


def run_published(
    cfg: TrainConfig,
    make_trainer: Callable[[list], Any],
    *,
    output_dir: Path,
    run_name: str,
    base_model: str,
    reporter: Any,
    resume_from: Path | None,
    publish: bool,
    callbacks: list | None,
    **callback_kw: Any,
) -> TrainResult:
    """Train with DuetCallback publishing checkpoints (both recipes): `make_trainer(callbacks)`
    loads the model and builds the TRL trainer; the callback and the reporter are closed even when
    training fails."""
    from trainer_service.callbacks import DuetCallback

    def retention(client: Any) -> None:
        apply_retention(output_dir, client, run_name, cfg.retention, task=cfg.task)

    callback = DuetCallback(
        run_name=run_name,
        kind=cfg.kind,
        base_model=base_model,
        reporter=reporter,
        after_save=[retention] if cfg.retention.enabled else [],
        **callback_kw,
    )
    try:
        trainer = make_trainer([*([callback] if publish else []), *(callbacks or [])])
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        global_step = trainer.state.global_step
        history = list(trainer.state.log_history)
    finally:
        callback.close()  # markers first: the reporter then has every checkpoint to register
        summary = reporter.close(cfg.reporter_flush_timeout_s) if reporter is not None else None

    return TrainResult(
        output_dir=output_dir.resolve(),
        run_name=run_name,
        run_id=summary.run_id if summary else None,
        global_step=global_step,
        checkpoints=[p for _, p in published_checkpoints(output_dir)],
        resumed_from=resume_from,
        spool_pending=summary.pending if summary else 0,
        spool_path=summary.spool_path if summary else None,
        log_history=history,
    )


def train(
    cfg: TrainConfig, *, resume: bool = False, callbacks: list | None = None, publish: bool = True
) -> TrainResult:
    """Run the recipe. `callbacks`: extra TrainerCallbacks (tests, hooks). `publish=False` drops
    DuetCallback (plain TRL; only the overhead benchmark wants that). `algorithm: grpo` runs the
    GRPO recipe (trainer_service/grpo.py) with the same contract."""
    if cfg.algorithm is Algorithm.grpo:
        from trainer_service.grpo import train_grpo

        return train_grpo(cfg, resume=resume, callbacks=callbacks, publish=publish)
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    from trainer_service.data import build_sft_dataset

    # --- checks (no model yet) -----------------------------------------------------------------
    check_sft_args(cfg)
    check_hardware(cfg)
    output_dir = Path(cfg.output_dir)
    run_name = cfg.resolved_run_name
    resume_from: Path | None = None
    if resume:
        if output_dir.is_dir():
            resume_from = find_resume_checkpoint(output_dir)
        if resume_from is None:
            log.warning("--resume: no published checkpoint in %s; starting from scratch", output_dir)
        else:
            step = checkpoint_step(resume_from)
            for d in remove_unpublished_after(output_dir, step):
                log.warning("removed half-written %s (no %s)", d, MARKER_NAME)
            log.info("resuming from %s", resume_from)
    elif output_dir.is_dir() and published_checkpoints(output_dir):
        raise ConfigError(
            f"output_dir: {output_dir} already holds published checkpoints; pass --resume to continue "
            "that run, or choose another output_dir"
        )

    _quiet_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    dataset = build_sft_dataset(cfg, tokenizer)
    sft_args = build_sft_args(cfg)

    # --- reporting, train ------------------------------------------------------------------------
    reporter = start_reporter(cfg, output_dir)
    if reporter is not None:
        reporter.register_run(run_name, base_model=cfg.model, primary_task=cfg.task, config=cfg.public_dict())

    def make_trainer(trainer_callbacks: list) -> Any:
        return SFTTrainer(
            model=load_model(cfg),
            args=sft_args,
            train_dataset=dataset,
            processing_class=tokenizer,  # so that every checkpoint carries its tokenizer
            peft_config=peft_config(cfg),
            callbacks=trainer_callbacks,
        )

    return run_published(
        cfg,
        make_trainer,
        output_dir=output_dir,
        run_name=run_name,
        base_model=cfg.model,
        reporter=reporter,
        resume_from=resume_from,
        publish=publish,
        callbacks=callbacks,
    )


def sync_spool(output_dir: Path, cfg_settings: Any, timeout: float = 30.0) -> Any:
    """Send what an earlier run left in its spool (ledger was down when it ended)."""
    from trainer_service.reporter import Reporter

    return Reporter(spool_path(output_dir), settings=cfg_settings).start().close(timeout)
