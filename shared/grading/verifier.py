"""math-verify in a child process, with a timeout that works from any thread.

math-verify's own timeouts use `signal.alarm`, which only works in the main thread; the worker
grades off the main thread. So its timeouts are disabled and each comparison runs in a long-lived
child process (a plain `python _verify_child.py` subprocess speaking JSON lines: no multiprocessing
start-method pitfalls, nothing re-imports the caller's `__main__`). A comparison that exceeds the timeout kills
the child; the next call starts a fresh one.
"""

from __future__ import annotations

import atexit
import json
import select
import subprocess
import sys
import threading
from pathlib import Path

DEFAULT_TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 60.0
# Run by file path: the child imports only the standard library and math-verify, so it needs no
# package on sys.path and works the same from a checkout, an editable or a regular install.
_CHILD_SCRIPT = str(Path(__file__).resolve().with_name("_verify_child.py"))


class MathVerifier:
    """A single child process serving `verify(gold, pred)`; calls are serialised by a lock."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self.timeouts = 0  # how many comparisons were cut off (exposed for logs/benchmarks)

    def _start(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            # -P: keep this package's directory off the child's sys.path (its module names, e.g.
            # `metrics`, must not shadow what math-verify and sympy import).
            [sys.executable, "-P", _CHILD_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        # The child says "ready" once sympy is imported, so its start-up never eats a sample's timeout.
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], STARTUP_TIMEOUT_S)
        if not ready or proc.stdout.readline().strip() != "ready":
            proc.kill()
            proc.wait()
            raise RuntimeError(f"math-verify child did not start within {STARTUP_TIMEOUT_S}s")
        return proc

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()
            self._proc = None

    def verify(self, gold: str, pred: str, timeout_s: float | None = None) -> bool | None:
        """True/False from math-verify; None when it timed out or the child died."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps([gold, pred]) + "\n")
                proc.stdin.flush()
                # The first call also pays the child's import of sympy (~1 s): not the sample's fault.
                ready, _, _ = select.select([proc.stdout], [], [], timeout)
                if not ready:
                    self.timeouts += 1
                    self._kill()
                    return None
                line = proc.stdout.readline()
            except (BrokenPipeError, OSError):
                self._kill()
                return None
            if not line:  # the child died (e.g. a crash inside sympy)
                self._kill()
                return None
            return bool(json.loads(line))

    def close(self) -> None:
        with self._lock:
            self._kill()


_default: MathVerifier | None = None
_default_lock = threading.Lock()


def default_verifier() -> MathVerifier:
    global _default
    with _default_lock:
        if _default is None:
            _default = MathVerifier()
            atexit.register(_default.close)
        return _default
