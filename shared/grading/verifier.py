"""math-verify in a pool of child processes, with a per-request deadline that works from any thread.

math-verify's own timeouts use `signal.alarm`, which only works in the main thread; the worker
grades off the main thread. So its timeouts are disabled and every request runs in one of a few
long-lived children (plain `python _verify_child.py` subprocesses speaking JSON lines: no
multiprocessing start-method pitfalls, nothing re-imports the caller's `__main__`), one child per
core by default. Each child gets a chunk of requests at a time and answers them in order; a
request past its deadline (counted from the previous answer) kills that child (the verdict is None:
not equal), the rest of its chunk is requeued and a fresh child takes its place.
Children start lazily, when a request first needs their slot.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 60.0
# Requests written to a child at once: few round trips, and a killed child loses little work.
CHUNK = 16
CHUNK_BYTES = 16_384  # well under a pipe's 64 KiB buffer
# Run by file path: the child imports only the standard library and math-verify, so it needs no
# package on sys.path and works the same from a checkout, an editable or a regular install.
_CHILD_SCRIPT = str(Path(__file__).resolve().with_name("_verify_child.py"))


class Request(StrEnum):
    bare = "bare"  # a bare committed answer (tag content, `####` value, lone box content)
    text = "text"  # a whole response: math-verify's own extraction picks the answer


# (equal, extracted): equal is None when the request timed out or its child died.
Verdict = tuple[bool | None, str | None]


def default_processes() -> int:
    """One child per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _Child:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            # -P: keep this package's directory off the child's sys.path (its module names, e.g.
            # `metrics`, must not shadow what math-verify and sympy import).
            [sys.executable, "-P", _CHILD_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.ready = False

    @property
    def stdout(self) -> Any:
        return self.proc.stdout

    def wait_ready(self) -> None:
        # The child says "ready" once sympy is imported, so its start-up never eats a request's deadline.
        ready, _, _ = select.select([self.stdout], [], [], STARTUP_TIMEOUT_S)
        if not ready or self.stdout.readline().strip() != "ready":
            self.kill()
            raise RuntimeError(f"math-verify child did not start within {STARTUP_TIMEOUT_S}s")
        self.ready = True

    def send_many(self, requests: Sequence[tuple[Request, str, str]]) -> None:
        """One write for a chunk of requests (answers are read from the raw pipe, not `stdout`)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("".join(json.dumps([k.value, g, t]) + "\n" for k, g, t in requests))
        self.proc.stdin.flush()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class MathVerifier:
    """A pool of `processes` math-verify children; `judge_many` spreads requests over them.

    Calls are serialised by a lock (one batch at a time; the batch itself runs in parallel)."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, processes: int | None = None):
        self.timeout_s = timeout_s
        self.processes = processes or default_processes()
        self._children: list[_Child | None] = [None] * self.processes
        self._lock = threading.Lock()
        self.timeouts = 0  # how many requests were cut off (exposed for logs/benchmarks)

    def _child(self, slot: int) -> _Child:
        """The child of `slot`, started where missing or dead."""
        child = self._children[slot]
        if child is None or child.proc.poll() is not None:
            child = self._children[slot] = _Child()
            try:
                child.wait_ready()
            except RuntimeError:
                self._children[slot] = None
                raise
        return child

    def _drop(self, slot: int) -> None:
        child = self._children[slot]
        if child is not None:
            child.kill()
        self._children[slot] = None

    def judge_many(
        self, requests: Sequence[tuple[Request, str, str]], timeout_s: float | None = None
    ) -> list[Verdict]:
        """Verdicts for (kind, gold, text) requests, in order; each request has `timeout_s`.

        A request goes to the child its gold hashes to, so each gold is parsed by one child only
        (its LRU keeps it); an idle child with nothing of its own takes from the longest queue.
        Requests go to a child in chunks (up to `CHUNK` written at once, answered one line each),
        so a batch costs few round trips; the deadline runs per request, from the previous answer."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        out: list[Verdict] = [(None, None)] * len(requests)
        if not requests:
            return out
        with self._lock:
            queues: list[deque[int]] = [deque() for _ in range(self.processes)]
            for i, (_, gold, _) in enumerate(requests):
                queues[zlib.crc32(gold.encode()) % self.processes].append(i)
            # slot -> its requests in flight (answered in order) and the deadline of the first
            flight: dict[int, deque[int]] = {}
            deadline: dict[int, float] = {}
            pending: dict[int, bytes] = {}  # slot -> bytes read past the last whole answer line
            while any(queues) or flight:
                for slot in range(self.processes):
                    if slot in flight or not any(queues):
                        continue
                    queue = queues[slot] if queues[slot] else max(queues, key=len)
                    chunk, size = [queue.popleft()], 0
                    # bounded in bytes too: a write must never block on a child stuck mid-chunk
                    while queue and len(chunk) < CHUNK and size < CHUNK_BYTES:
                        size += len(requests[queue[0]][2]) + len(requests[queue[0]][1])
                        chunk.append(queue.popleft())
                    try:
                        self._child(slot).send_many([requests[i] for i in chunk])
                    except (BrokenPipeError, OSError):  # died between requests: a fresh one next round
                        self._drop(slot)
                        queue.extendleft(reversed(chunk))
                        continue
                    flight[slot], pending[slot] = deque(chunk), b""
                    deadline[slot] = time.monotonic() + timeout
                if not flight:
                    continue
                wait = max(0.0, min(deadline[slot] for slot in flight) - time.monotonic())
                fds = {self._children[slot].stdout.fileno(): slot for slot in flight}  # type: ignore[union-attr]
                ready, _, _ = select.select(list(fds), [], [], wait)
                for fd in ready:
                    slot = fds[fd]
                    data = os.read(fd, 1 << 16)
                    if not data:  # the child died (e.g. a crash inside sympy): its request is not equal
                        self._give_up(slot, flight, queues)
                        continue
                    *lines, pending[slot] = (pending[slot] + data).split(b"\n")
                    for line in lines:
                        equal, extracted = json.loads(line)
                        out[flight[slot].popleft()] = (bool(equal), extracted)
                    deadline[slot] = time.monotonic() + timeout
                    if not flight[slot]:
                        del flight[slot]
                now = time.monotonic()
                for slot in list(flight):
                    if deadline[slot] <= now:  # stuck: kill it; the slot gets a fresh child next round
                        self.timeouts += 1
                        self._give_up(slot, flight, queues)
        return out

    def _give_up(self, slot: int, flight: dict[int, deque[int]], queues: list[deque[int]]) -> None:
        """Kill `slot`'s child: its current request stays unanswered, the rest of its chunk is requeued."""
        held = flight.pop(slot)
        held.popleft()
        queues[slot].extendleft(reversed(held))
        self._drop(slot)

    def judge(self, kind: Request, gold: str, text: str, timeout_s: float | None = None) -> Verdict:
        return self.judge_many([(kind, gold, text)], timeout_s)[0]

    def verify(self, gold: str, pred: str, timeout_s: float | None = None) -> bool | None:
        """Is the bare answer `pred` equal to `gold`? None when it timed out or the child died."""
        return self.judge(Request.bare, gold, pred, timeout_s)[0]

    def close(self) -> None:
        with self._lock:
            for slot in range(self.processes):
                self._drop(slot)


_default: MathVerifier | None = None
_default_lock = threading.Lock()


def default_verifier() -> MathVerifier:
    global _default
    with _default_lock:
        if _default is None:
            _default = MathVerifier()
            atexit.register(_default.close)
        return _default
