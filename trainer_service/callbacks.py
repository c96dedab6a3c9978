"""DuetCallback: publishes each saved checkpoint (marker) and forwards train logs to the reporter.

Nothing here blocks the training loop on the network (the reporter's thread does that, and runs
retention) or on hashing: a checkpoint of a 1.5B model is gigabytes to sha256, so markers are
written by one background thread, in save order, right after the Trainer finished the directory."""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from shared.checkpoint import write_marker
from trainer_service.config import Algorithm
from trainer_service.reporter import Reporter

log = logging.getLogger("duet.trainer")


class DuetCallback(TrainerCallback):
    def __init__(
        self,
        *,
        run_name: str,
        kind: Literal["full", "lora"],
        base_model: str | None,
        reporter: Reporter | None,
        after_save: list | None = None,
        algorithm: Algorithm = Algorithm.sft,
        stage: int | None = None,
        init_step: int | None = None,
    ):
        self.run_name = run_name
        self.kind = kind
        self.base_model = base_model
        self.reporter = reporter
        self.after_save = after_save or []  # callables(client) run on the reporter thread (retention)
        self.algorithm = algorithm  # recorded in every marker
        self.stage = stage  # logged as train/stage with every log when set (0 = sft, 1 = grpo)
        # A later stage's start on the shared axis (GRPO from SFT step 300 continues at 400+k):
        # logged as train/init_step so the W&B curve's branch point is visible next to it.
        self.init_step = init_step
        self._last_loss: float | None = None
        self._tokens_at: tuple[float, float] | None = None  # (num_tokens, perf_counter) at last log
        self._publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duet-publish")
        self._pending: list[Future] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self._tokens_at = None

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs
    ):
        if not logs or not state.is_world_process_zero:
            return
        step = state.global_step
        metrics = {
            f"train/{k}": float(v)
            for k, v in logs.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        if self.stage is not None:
            metrics["train/stage"] = float(self.stage)
        if self.init_step is not None:
            metrics["train/init_step"] = float(self.init_step)
        if "loss" in logs:
            self._last_loss = float(logs["loss"])
        # TRL logs a running total of trained (non-padding) tokens; the rate is its slope.
        if "num_tokens" in logs:
            now = time.perf_counter()
            if self._tokens_at is not None and now > self._tokens_at[1]:
                metrics["train/tokens_per_s"] = (logs["num_tokens"] - self._tokens_at[0]) / (
                    now - self._tokens_at[1]
                )
            self._tokens_at = (float(logs["num_tokens"]), now)
        if self.reporter is not None:
            self.reporter.log(self.run_name, step, metrics)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if not state.is_world_process_zero:
            return
        # Trainer calls on_save after weights, tokenizer, optimizer and trainer_state are written.
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        job = self._publisher.submit(self._publish, ckpt, state.global_step, state.epoch, self._last_loss)
        self._pending.append(job)

    def _publish(self, ckpt: Path, step: int, epoch: float | None, loss: float | None) -> None:
        marker = write_marker(
            ckpt,
            run=self.run_name,
            step=step,
            kind=self.kind,
            epoch=epoch,
            base_model=self.base_model,
            train_loss=loss,
            algorithm=self.algorithm.value,
        )
        if self.reporter is not None:
            self.reporter.checkpoint(
                self.run_name, step, ckpt.resolve(), self.kind, marker.fingerprint(), self.algorithm.value
            )
            for fn in self.after_save:
                self.reporter.call(fn)

    def close(self) -> None:
        """Wait until every saved checkpoint is published; a failure is logged, never raised, so
        that training results are still reported (that checkpoint just stays unpublished)."""
        self._publisher.shutdown(wait=True)
        for job in self._pending:
            if job.exception() is not None:
                log.error("publishing a checkpoint failed: %s", job.exception())
        self._pending.clear()

    def on_train_end(self, args, state, control, **kwargs):
        self.close()
