"""Worker entry point. vLLM starts its engine in spawned processes, so everything that builds the
engine runs from `run_worker`, never at import time."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from eval_service.worker.config import WorkerSettings
from shared.schemas import EvalSpec, SamplingSpec

log = logging.getLogger("duet.worker")


def build_spec(settings: WorkerSettings) -> EvalSpec:
    from shared.grading import GRADER_VERSION

    sampling = SamplingSpec(
        temperature=settings.temperature,
        top_p=settings.top_p,
        max_tokens=settings.max_tokens,
        n=settings.n,
        seed=settings.seed,
    )
    return EvalSpec(
        task=settings.task,
        limit=settings.limit,
        sampling=sampling,
        grader_version=GRADER_VERSION,
        options=settings.task_options,
    )


def check_task(settings: WorkerSettings) -> None:
    """The task this worker enqueues must build and have its test data at hand: a missing dataset
    stops the worker at start with the task's own message (how to supply the data), instead of
    failing every job later."""
    from shared.tasks import get_task

    get_task(settings.task, **settings.task_options).examples("test", limit=1)


def watches_adapters(root: Path | None) -> bool:
    """A LoRA checkpoint already under the watched root: the run evaluates adapters, so the engine
    starts with LoRA on (otherwise it stays off until an adapter arrives)."""
    from shared.checkpoint import detect_kind, published_checkpoints, read_marker

    if root is None or not root.is_dir():
        return False
    for _, path in published_checkpoints(root):
        marker = read_marker(path)
        kind = marker.kind if marker is not None else detect_kind(path)
        return kind == "lora"  # the first checkpoint decides (a run is all-full or all-adapters)
    return False


# Files inference needs from a hub snapshot (no optimizer state, no pickles).
_SNAPSHOT_FILES = ["*.json", "*.safetensors", "*.jinja", "tokenizer*", "*.txt", "*.model"]


def resolve_base_model(ref: Path) -> Path:
    """A local model dir as is; a hub id (`Qwen/Qwen2.5-Math-1.5B`) fetched into the HF cache, so
    the baseline row and LoRA adapters work on hosts that only know the model by name."""
    if (ref / "config.json").is_file():
        return ref.resolve()
    text = str(ref)
    if ref.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ValueError(f"--base-model {text}: no config.json there (and not a hub id like 'org/name')")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(text, allow_patterns=_SNAPSHOT_FILES))
    except Exception as e:  # offline, gated, missing: all end the same way for the user
        raise ValueError(f"--base-model {text}: cannot fetch it from the hub: {type(e).__name__}: {e}") from e


def run_worker(settings: WorkerSettings) -> int:
    """Run until SIGTERM/SIGINT (or until idle with exit_when_idle). Returns the exit code."""
    from eval_service.worker.engine import EngineUnsupported, check_engine, make_backend
    from eval_service.worker.reaper import start_reaper
    from eval_service.worker.runner import JobRunner
    from eval_service.worker.watcher import CheckpointWatcher
    from shared.client import DuetClientError, LedgerClient
    from shared.spool import Spool

    if settings.watch is not None and not settings.run:
        log.error("--watch needs --run (the run the checkpoints belong to)")
        return 2
    if settings.base_model is not None:
        try:
            settings = settings.model_copy(
                update={"base_model": resolve_base_model(Path(settings.base_model))}
            )
        except ValueError as e:
            log.error("%s", e)
            return 2
    try:
        rebuild_reason = check_engine(settings)
    except EngineUnsupported as e:
        log.error("refusing to start: %s", e)
        return 2
    if rebuild_reason:
        log.warning("%s", rebuild_reason)
    suite = None
    if settings.suite is not None:
        from shared.suite import SuiteError, check_tasks, load_suite

        try:
            suite = load_suite(settings.suite)
            check_tasks(suite, str(settings.suite))
        except SuiteError as e:
            log.error("%s", e)
            return 2
    elif settings.watch is not None:
        try:
            check_task(settings)
        except ValueError as e:
            log.error("task %s: %s", settings.task, e)
            return 2
    if settings.enable_lora is None and watches_adapters(settings.watch):
        settings = settings.model_copy(update={"enable_lora": True})
        log.info("LoRA checkpoints under %s: engine starts with LoRA on", settings.watch)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing or releasing the current job, then exiting", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    client = LedgerClient()
    try:
        run = None
        if settings.run:
            run = client.create_run(
                settings.run,
                base_model=str(settings.base_model) if settings.base_model else None,
                primary_task=suite.headline.name if suite else settings.task,
            )
    except DuetClientError as e:
        log.error("cannot reach the ledger: %s", e)
        return 1
    # the engine's processes must die with this one, even on SIGKILL (and a dead worker's go now)
    start_reaper(Path(settings.spool_path).parent)
    backend = make_backend(settings, rebuild_reason)
    spool = Spool(settings.spool_path)
    runner = JobRunner(settings, client, backend, spool, stop, run_id=run.id if run else None)
    watcher = None
    idle_ok = threading.Event()
    if settings.watch is not None and run is not None:
        watcher = CheckpointWatcher(
            settings, client, run, build_spec(settings), on_enqueued=runner.wake.set, suite=suite
        )
        watcher.start()
        idle_ok = watcher.first_pass_done
    else:
        idle_ok.set()
    stop_wakes_runner = threading.Thread(target=lambda: (stop.wait(), runner.wake.set()), daemon=True)
    stop_wakes_runner.start()
    log.info(
        "worker %s up: run=%s backend=%s watch=%s",
        settings.worker_id,
        settings.run,
        settings.backend,
        settings.watch,
    )
    try:
        runner.run(idle_ok)
    finally:
        if watcher is not None:
            watcher.stop()
        backend.close()
        spool.close()
        client.close()
    log.info("worker %s exiting after %d job(s)", settings.worker_id, runner.jobs_done)
    return 0


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
