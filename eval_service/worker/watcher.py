"""Notice complete checkpoints under a root and turn each into exactly one eval job.

File events (watchdog) are only hints: they fire before a checkpoint is complete and go missing on
NFS or Docker Desktop mounts. So the watcher also rescans on start and on a timer (or only on the
timer with `poll`), and reconciles with the ledger: every checkpoint the ledger knows for the run is
(re-)enqueued, which the ledger dedupes, so one that appeared while the worker was down, or whose
event was lost, is still evaluated exactly once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval_service.worker.config import WorkerSettings
from shared.checkpoint import (
    MARKER_NAME,
    CheckpointError,
    check_hf_checkpoint,
    checkpoint_step,
    content_fingerprint,
    detect_kind,
    read_marker,
    stat_signature,
    verify_marker,
)
from shared.client import DuetClientError, LedgerClient, LedgerError
from shared.schemas import Algorithm, CheckpointCreate, CheckpointState, EvalSpec, RunRead
from shared.suite import Suite, checkpoint_ordinals, is_final_checkpoint

log = logging.getLogger("duet.worker.watcher")


def candidate_dirs(root: Path, depth: int) -> list[Path]:
    """Dirs under `root` (to `depth` levels) that look like a checkpoint, sorted by path."""
    out: list[Path] = []
    root = Path(root)
    if not root.is_dir():
        return out
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if len(here.parts) - base_depth >= depth:
            dirnames[:] = []
        if here != root and ({MARKER_NAME, "config.json", "adapter_config.json"} & set(filenames)):
            out.append(here)
            dirnames[:] = []  # a checkpoint's subdirs are not checkpoints
    return out


def _marker_algorithm(d: Path) -> Algorithm | None:
    """The training stage a duet marker records (SFT, GRPO), for the ledger's `stage` column; None
    without a marker or for a stage this worker does not know."""
    try:
        marker = read_marker(d)
    except CheckpointError:
        return None
    name = marker.algorithm if marker else None
    return Algorithm(name) if name in {a.value for a in Algorithm} else None


class CheckpointWatcher:
    def __init__(
        self,
        settings: WorkerSettings,
        client: LedgerClient,
        run: RunRead,
        spec: EvalSpec,
        on_enqueued: Callable[[], None] | None = None,
        suite: Suite | None = None,
    ):
        assert settings.watch is not None
        self.settings, self.client, self.run, self.spec = settings, client, run, spec
        self.suite = suite  # None: one job per checkpoint, of `spec`
        self.root = Path(settings.watch)
        self.on_enqueued = on_enqueued or (lambda: None)
        self.published: set[Path] = set()
        self._last_sig: dict[Path, tuple] = {}
        self._warned: set[tuple[Path, str]] = set()
        self._marker_mode = False  # becomes True once any checkpoint under the root has our marker
        self._wake = threading.Event()
        self._marker_event = threading.Event()  # a duet marker appeared: nothing left to wait for
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer = None
        self.first_pass_done = threading.Event()
        self.scans = 0  # completed passes (tests wait on it)

    # --- completeness -------------------------------------------------------------------------

    def _warn_once(self, d: Path, msg: str) -> None:
        if (d, msg) not in self._warned:
            self._warned.add((d, msg))
            log.warning("%s", msg)

    def complete_step(self, d: Path) -> int | None:
        """The checkpoint's step if `d` is complete and ours to evaluate, else None."""
        try:
            marker = read_marker(d)
        except CheckpointError as e:
            self._warn_once(d, str(e))
            return None
        if marker is not None:
            self._marker_mode = True
            try:
                verify_marker(d, marker)
            except CheckpointError as e:
                self._warn_once(d, f"not evaluated yet: {e}")
                return None
            if marker.run != self.run.name:
                self._warn_once(d, f"{d}: marker is for run {marker.run!r}, not {self.run.name!r}; skipped")
                return None
            return marker.step
        if self.settings.require_marker == "always" or (
            self.settings.require_marker == "auto" and self._marker_mode
        ):
            return None  # a writer that uses markers has not finished this one (or was killed)
        try:
            check_hf_checkpoint(d)
        except CheckpointError:
            self._last_sig.pop(d, None)
            return None
        sig = stat_signature(d)
        stable = self._last_sig.get(d) == sig
        self._last_sig[d] = sig
        if not stable:
            return None
        step = checkpoint_step(d, strict=False)  # other trainers' names count too: only read, never deleted
        if step is None:
            self._warn_once(
                d, f"{d}: complete but no step (no {MARKER_NAME}, name not checkpoint-N); skipped"
            )
        return step

    # --- ledger -------------------------------------------------------------------------------

    def publish(self, d: Path, step: int, priority: int = 0) -> None:
        """Register `d` and enqueue its eval (both idempotent in the ledger)."""
        ck = self.client.register_checkpoint(
            CheckpointCreate(
                run_id=self.run.id,
                step=step,
                path=str(d),
                kind=detect_kind(d),
                fingerprint=content_fingerprint(d),
                algorithm=_marker_algorithm(d),
            )
        )
        steps = [c.step for c in self.client.list_checkpoints(self.run.id)] if self.suite else []
        created = self._enqueue(ck.id, ck.step, d, steps, priority)
        self.published.add(d)
        self._last_sig.pop(d, None)
        log.info("checkpoint %s step %d -> %d new job(s)", d, step, created)
        if created:
            self.on_enqueued()

    def due_specs(self, step: int, path: Path, steps: list[int]) -> list[EvalSpec]:
        """The specs due for the checkpoint at `step` among the run's `steps`: every suite entry
        whose cadence hits its ordinal (all on the baseline and the final checkpoint), or `spec`."""
        if self.suite is None:
            return [self.spec]
        ordinal = checkpoint_ordinals([*steps, step])[step]
        entries = self.suite.due_entries(ordinal, final=is_final_checkpoint(path))
        return [e.spec(self.spec.grader_version) for e in entries]

    def _enqueue(self, ckpt_id: int, step: int, path: Path, steps: list[int], priority: int) -> int:
        """Enqueue the due specs of one checkpoint (deduped by the ledger); returns how many are new."""
        created = 0
        for spec in self.due_specs(step, path, steps):
            created += self.client.enqueue(spec, checkpoint_id=ckpt_id, priority=priority).created
        return created

    def publish_base(self) -> None:
        if self.settings.base_model is not None and self.settings.base_model not in self.published:
            self.publish(Path(self.settings.base_model), 0, priority=self.settings.base_priority)

    def reconcile(self) -> None:
        """Enqueue every checkpoint the ledger has for the run (deduped there)."""
        created = 0
        checkpoints = self.client.list_checkpoints(self.run.id)
        steps = [c.step for c in checkpoints]
        for ck in checkpoints:
            if ck.state != CheckpointState.present:  # taken by retention: enqueue would be a 409
                self.published.add(Path(ck.path))
                continue
            priority = self.settings.base_priority if ck.step == 0 else 0
            created += self._enqueue(ck.id, ck.step, Path(ck.path), steps, priority)
            self.published.add(Path(ck.path))
        if created:
            log.info("reconcile: enqueued %d missing job(s)", created)
            self.on_enqueued()

    def scan(self) -> list[Path]:
        """One pass over the root; returns the dirs published in this pass."""
        new = []
        for d in candidate_dirs(self.root, self.settings.scan_depth):
            if d in self.published:
                continue
            step = self.complete_step(d)
            if step is None:
                continue
            try:
                self.publish(d, step)
            except LedgerError as e:
                if e.status != 409:
                    raise
                # The ledger has other weights at this step (a run restarted into the same
                # directory): refused, loudly, once; retrying every scan cannot change that.
                self.published.add(d)
                self._warn_once(d, f"{d}: not evaluated: {e}")
                continue
            new.append(d)
        self.scans += 1
        return new

    # --- loop ---------------------------------------------------------------------------------

    def _tick(self, reconcile: bool) -> None:
        try:
            self.publish_base()
            if reconcile:
                self.reconcile()
            self.scan()
        except DuetClientError as e:
            log.warning("ledger write failed, will retry on the next scan: %s", e)

    def _loop(self) -> None:
        import time

        self._tick(reconcile=True)
        self.first_pass_done.set()
        next_reconcile = time.monotonic() + self.settings.reconcile_interval_s
        while not self._stop.is_set():
            # unmarked checkpoints need a second look to prove they stopped changing
            timeout = (
                self.settings.rescan_interval_s if not self._last_sig else max(self.settings.settle_s, 0.2)
            )
            if self._wake.wait(timeout):
                self._wake.clear()
                # Debounce a burst of file events; the marker, renamed into place last, ends it at once.
                self._marker_event.wait(self.settings.settle_s)
                self._marker_event.clear()
            if self._stop.is_set():
                break
            due = time.monotonic() >= next_reconcile
            if due:
                next_reconcile = time.monotonic() + self.settings.reconcile_interval_s
            self._tick(reconcile=due)

    def start(self) -> None:
        if not self.settings.poll:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            wake, marker_event = self._wake, self._marker_event

            class _Hint(FileSystemEventHandler):
                def on_any_event(self, event: Any) -> None:
                    # The trainer renames the marker into place last, so its event ends the burst.
                    if str(getattr(event, "dest_path", "") or event.src_path).endswith(MARKER_NAME):
                        marker_event.set()
                    wake.set()

            self.root.mkdir(parents=True, exist_ok=True)
            self._observer = Observer()
            self._observer.schedule(_Hint(), str(self.root), recursive=True)
            self._observer.start()
        self._thread = threading.Thread(target=self._loop, name="duet-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._marker_event.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=30)
