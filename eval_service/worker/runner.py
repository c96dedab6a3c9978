"""The job loop: claim -> (heartbeat while) load, generate, grade -> post, with a local spool.

Failure policy: a checkpoint that is refused (would run code) or broken (truncated, fails to load)
fails its job with retryable=False and the engine is brought back to the last good weights; a
crash during generation fails retryably. A lost lease (StaleAttempt) drops the work silently: a
newer attempt owns the job. Results that cannot reach the ledger are spooled and replayed; the
ledger makes a same-attempt replay idempotent and fences stale ones, so nothing is duplicated.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Any

from eval_service.worker.config import WorkerSettings
from eval_service.worker.engine import Backend, LoadError, Target, tokenizer_dir
from eval_service.worker.heartbeat import Heartbeat
from shared.checkpoint import (
    CheckpointError,
    check_hf_checkpoint,
    check_safe_to_load,
    read_marker,
    verify_marker,
)
from shared.client import DuetClientError, LedgerClient, LedgerError, LedgerUnavailable, StaleAttempt
from shared.schemas import CompleteRequest, FailRequest, Lease, LoadMode, Sample
from shared.spool import Spool
from shared.suite import LM_EVAL_PREFIX

log = logging.getLogger("duet.worker.runner")


class Write(StrEnum):
    """The ledger writes that must not be lost: the kinds of the worker's spool records."""

    complete = "complete"
    fail = "fail"


def preflight(path: Path, kind: str) -> None:
    """Cheap checks before the engine touches a checkpoint. Raises CheckpointError naming the file."""
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint directory does not exist")
    check_safe_to_load(path)
    marker = read_marker(path)
    if marker is not None:
        verify_marker(path, marker)
    check_hf_checkpoint(path)  # also catches a truncated shard published under a marker
    if kind == "lora" and not (path / "adapter_config.json").is_file():
        raise CheckpointError(f"{path / 'adapter_config.json'}: missing for a LoRA checkpoint")


class _Abandon(Exception):
    """Stop working on this job without writing anything more for it."""


class _Released(Exception):
    """Shutting down: the job was handed back."""


class JobRunner:
    def __init__(
        self,
        settings: WorkerSettings,
        client: LedgerClient,
        backend: Backend,
        spool: Spool,
        stop: threading.Event,
        run_id: int | None = None,
    ):
        self.settings, self.client, self.backend = settings, client, backend
        self.spool, self.stop = spool, stop
        self.run_id = None if settings.any_run else run_id
        self.wake = threading.Event()
        self._tokenizers: dict[Path, Any] = {}
        self.jobs_done = 0
        # The checkpoint the engine serves: its queued jobs (a suite) are claimed first, unswapped.
        self.loaded_checkpoint_id: int | None = None

    # --- loop ---------------------------------------------------------------------------------

    def run(self, idle_ok: threading.Event | None = None) -> None:
        """Claim and run jobs until `stop` is set (or, with exit_when_idle, nothing is left)."""
        while not self.stop.is_set():
            self.replay_spool()
            try:
                lease = self.client.claim(
                    self.settings.worker_id,
                    lease_seconds=self.settings.lease_seconds,
                    run_id=self.run_id,
                    prefer_checkpoint_id=self.loaded_checkpoint_id,
                )
            except DuetClientError as e:
                log.warning("claim failed: %s", e)
                lease = None
            if lease is None:
                idle = idle_ok is None or idle_ok.is_set()
                if self.settings.exit_when_idle and idle and not len(self.spool):
                    return
                self.wake.wait(self.settings.claim_interval_s)
                self.wake.clear()
                continue
            try:
                self.run_job(lease)
            except Exception:  # never let one job take the worker down
                log.exception("job %d: unexpected error in the worker", lease.job.id)

    def run_job(self, lease: Lease) -> None:
        job = lease.job
        recover = False
        log.info(
            "job %d: step %d %s (%s), attempt %d",
            job.id,
            job.step,
            job.checkpoint_path,
            job.checkpoint_kind,
            lease.attempt,
        )
        with Heartbeat(self.client, lease, self.settings.lease_seconds) as hb:
            try:
                body = self._evaluate(lease, hb)
            except _Abandon:
                return
            except _Released:
                self._release(lease)
                return
            except CheckpointError as e:
                self._fail(lease, str(e), retryable=False)
                return
            except Exception as e:
                if self.stop.is_set():
                    # Shutting down: a Ctrl-C in a terminal also reaches vLLM's engine processes, so
                    # whatever broke is not the checkpoint's fault. Hand the job back untouched.
                    log.warning("job %d interrupted by shutdown (%s); releasing it", job.id, e)
                    self._release(lease)
                    return
                if isinstance(e, LoadError):
                    self._fail(lease, f"checkpoint failed to load: {e}", retryable=False)
                else:
                    log.exception("job %d failed", job.id)
                    self._fail(lease, f"{type(e).__name__}: {e}\n{traceback.format_exc()}", retryable=True)
                recover = True
            else:
                self.post_complete(job.id, body)
        if recover:  # after the heartbeat stopped: the job is no longer ours
            self._recover()

    # --- one job ------------------------------------------------------------------------------

    def _checkpoint_boundary(self, hb: Heartbeat) -> None:
        if hb.lost.is_set():
            raise _Abandon
        if self.stop.is_set():
            raise _Released

    def _tokenizer(self, d: Path) -> Any:
        if d not in self._tokenizers:
            from transformers import AutoTokenizer

            self._tokenizers[d] = AutoTokenizer.from_pretrained(d)
        return self._tokenizers[d]

    def _evaluate(self, lease: Lease, hb: Heartbeat) -> CompleteRequest:
        from shared.grading import GRADER_VERSION, aggregate, token_entropy
        from shared.tasks import get_task

        job, spec = lease.job, lease.job.spec
        path = Path(job.checkpoint_path)
        preflight(path, job.checkpoint_kind)
        options = dict(spec.options)
        if spec.dataset is not None:  # file-backed tasks (gsm8k, math, custom) read it as their `path`
            options.setdefault("path", spec.dataset)
        harness_task = (
            spec.task.removeprefix(LM_EVAL_PREFIX) if spec.task.startswith(LM_EVAL_PREFIX) else None
        )
        try:
            task = get_task(spec.task, **options) if harness_task is None else None
        except ValueError as e:
            raise CheckpointError(f"spec.task: {e}") from e  # a bad spec never gets better: not retryable
        examples = task.examples("test", limit=spec.limit) if task is not None else []

        t0 = time.perf_counter()
        target = Target(path, job.checkpoint_kind, self.settings.base_model)
        info: dict[str, Any] = self._load(job.checkpoint_id, target)
        info["load_total_s"] = round(time.perf_counter() - t0, 4)
        self._checkpoint_boundary(hb)

        tokenizer = self._tokenizer(tokenizer_dir(target))
        if harness_task is not None:  # the harness renders, generates on this engine, and scores
            from eval_service.worker.harness_job import run_harness_job

            metrics, samples, extra = run_harness_job(self.backend, harness_task, spec, tokenizer)
            info.update(extra, backend=self.backend.name, worker_id=self.settings.worker_id)
            return self._complete_request(lease, hb, metrics, samples, info)
        assert task is not None
        prompts = [task.render_prompt(ex, tokenizer) for ex in examples]

        t1 = time.perf_counter()
        outputs = []
        chunk = self.settings.gen_chunk
        for i in range(0, len(prompts), chunk):
            outputs.extend(self.backend.generate(prompts[i : i + chunk], spec.sampling))
            self._checkpoint_boundary(hb)
        gen_s = time.perf_counter() - t1
        n_tokens = sum(c.num_tokens for outs in outputs for c in outs)

        t2 = time.perf_counter()
        samples = []
        # One batch for the whole job: math-verify's work is spread over its process pool in chunks.
        pairs = [
            (c.text, ex, c.finish_reason) for ex, outs in zip(examples, outputs, strict=True) for c in outs
        ]
        grades = iter(task.grade_many(pairs))
        for i, (ex, prompt, outs) in enumerate(zip(examples, prompts, outputs, strict=True)):
            for j, c in enumerate(outs):
                g = next(grades)
                samples.append(
                    Sample(
                        index=i,
                        question_id=ex.id,
                        sample=j,
                        prompt=prompt,
                        response=c.text,
                        gold=str(ex.answer),
                        extracted=g.extracted,
                        correct=g.correct,
                        answer_correct=g.answer_correct,
                        format_ok=g.format_ok,
                        category=g.category,
                        num_tokens=c.num_tokens,
                        finish_reason=c.finish_reason,
                        mean_entropy=token_entropy(c.top_logprobs) if c.top_logprobs else None,
                    )
                )
        metrics = aggregate(samples, k=spec.sampling.n)
        grade_s = time.perf_counter() - t2
        info.update(
            backend=self.backend.name,
            gen_s=round(gen_s, 4),
            gen_tokens=n_tokens,
            tokens_per_s=round(n_tokens / gen_s, 1) if gen_s > 0 else None,
            grade_s=round(grade_s, 4),
            n_prompts=len(prompts),
            grader_version=GRADER_VERSION,
            worker_id=self.settings.worker_id,
        )
        if not getattr(self.backend, "per_request_seed", True):
            info["seed_note"] = "vLLM CPU: per-request seed unsupported; sampled from the engine seed"
        return self._complete_request(lease, hb, metrics, samples, info)

    def _load(self, checkpoint_id: int, target: Target) -> dict[str, Any]:
        """Load `target` into the engine, unless it already serves that checkpoint (the next job of
        its suite): then nothing is loaded."""
        if checkpoint_id == self.loaded_checkpoint_id:
            return {"engine_event": LoadMode.reuse.value, "load_mode": LoadMode.reuse.value}
        self.loaded_checkpoint_id = None  # until this load succeeds
        try:
            info = dict(self.backend.load(target))
        except (CheckpointError, LoadError):
            raise
        except Exception as e:
            raise LoadError(f"{type(e).__name__}: {e}") from e
        self.loaded_checkpoint_id = checkpoint_id
        return info

    def _complete_request(
        self,
        lease: Lease,
        hb: Heartbeat,
        metrics: dict[str, float],
        samples: list[Sample],
        info: dict[str, Any],
    ) -> CompleteRequest:
        if hb.lost.is_set():
            raise _Abandon
        return CompleteRequest(
            worker_id=lease.worker_id,
            attempt=lease.attempt,
            metrics=metrics,
            samples=samples,
            info=info,
            load_mode=info.get("load_mode"),
            load_reason=info.get("load_reason"),
        )

    def _recover(self) -> None:
        self.loaded_checkpoint_id = None  # the engine goes back to other weights
        try:
            event = self.backend.recover()
            log.info("engine recovered: %s", event)
        except Exception:
            log.exception("engine recovery failed; the next job will rebuild it")

    # --- writes -------------------------------------------------------------------------------

    def post_complete(self, job_id: int, body: CompleteRequest) -> None:
        self._post(Write.complete, {"job_id": job_id, "body": body.model_dump(mode="json")})
        self.jobs_done += 1

    def _fail(self, lease: Lease, error: str, *, retryable: bool) -> None:
        log.warning(
            "job %d failed (retryable=%s): %s",
            lease.job.id,
            retryable,
            error.splitlines()[0] if error else "",
        )
        body = FailRequest.clipped(
            worker_id=lease.worker_id, attempt=lease.attempt, error=error, retryable=retryable
        )
        self._post(Write.fail, {"job_id": lease.job.id, "body": body.model_dump(mode="json")})

    def _release(self, lease: Lease) -> None:
        try:
            self.client.release(lease)
            log.info("job %d released (shutting down)", lease.job.id)
        except DuetClientError as e:  # the lease will simply expire
            log.warning("job %d: release failed: %s", lease.job.id, e)

    def _send(self, kind: Write, payload: dict[str, Any]) -> None:
        job_id, body = payload["job_id"], payload["body"]
        if kind == Write.complete:
            self.client.complete(job_id, CompleteRequest.model_validate(body))
        else:
            self.client.fail_job(job_id, FailRequest.model_validate(body))

    def _post(self, kind: Write, payload: dict[str, Any]) -> None:
        """Post now; if the ledger stays unreachable, keep it in the spool for `replay_spool`."""
        if len(self.spool):  # keep order behind what is already waiting
            self.spool.append(kind, payload)
            self.replay_spool()
            return
        try:
            self._send(kind, payload)
        except StaleAttempt as e:
            log.warning("job %d: %s dropped, attempt is stale: %s", payload["job_id"], kind, e)
        except LedgerError as e:
            # refused (e.g. validation): retrying the same body cannot help; record why on the job
            log.error("job %d: ledger refused the %s: %s", payload["job_id"], kind, e)
            if kind == Write.complete:
                body = payload["body"]
                fail = FailRequest.clipped(
                    worker_id=body["worker_id"],
                    attempt=body["attempt"],
                    error=f"result refused: {e}",
                    retryable=False,
                )
                self._post(Write.fail, {"job_id": payload["job_id"], "body": fail.model_dump(mode="json")})
        except LedgerUnavailable as e:
            log.warning("job %d: ledger down, %s spooled: %s", payload["job_id"], kind, e)
            self.spool.append(kind, payload)

    def replay_spool(self) -> int:
        sent = 0
        for rec in self.spool.pending():
            try:
                self._send(Write(rec.kind), rec.payload)
            except LedgerUnavailable:
                break
            except LedgerError as e:  # stale attempt or refused: replaying again cannot help
                log.warning("spooled %s for job %s dropped: %s", rec.kind, rec.payload.get("job_id"), e)
            self.spool.ack(rec.id)
            sent += 1
        if sent:
            log.info("replayed %d spooled write(s)", sent)
        return sent
