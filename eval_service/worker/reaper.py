"""Engine processes die with the worker.

vLLM runs its engine in processes of its own (`VLLM::EngineCore`, `VLLM::Worker`, a resource
tracker). When the worker is killed with SIGKILL nothing runs in it, so they are re-parented to
PID 1 and keep their memory -- on a GPU, the memory the restarted worker needs. Two defences:

- a reaper: a tiny process in its own session, started by the worker, that records the worker's
  descendants (pid + start time, in a state file) while the worker lives, and SIGKILLs the last
  recorded ones when the worker is gone, however it ended;
- at start, a worker kills what a dead worker's state file lists (the reaper may have been killed
  too: a `kill -9` of a whole process group, a container stop).

A process is only killed when its pid still has the recorded start time, so a reused pid is safe.

    python -m eval_service.worker.reaper OWNER_PID STATE_FILE
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import psutil

log = logging.getLogger("duet.worker.reaper")

POLL_S = 0.5  # how often the reaper re-reads the worker's process tree
STATE_GLOB = "duet-worker-*.procs.json"

Ident = tuple[int, float]  # (pid, create_time): a process, not just a pid


def _ident(p: psutil.Process) -> Ident:
    return (p.pid, p.create_time())


def _alive(ident: Ident) -> psutil.Process | None:
    try:
        p = psutil.Process(ident[0])
        return p if p.create_time() == ident[1] and p.status() != psutil.STATUS_ZOMBIE else None
    except psutil.Error:
        return None


def kill_all(idents: list[Ident]) -> int:
    """SIGKILL each still-living process of `idents` and its children; returns how many died."""
    procs: dict[int, psutil.Process] = {}
    for ident in idents:
        p = _alive(ident)
        if p is None:
            continue
        procs[p.pid] = p
        try:
            procs.update({c.pid: c for c in p.children(recursive=True)})
        except psutil.Error:
            pass
    procs.pop(os.getpid(), None)
    for p in procs.values():
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(list(procs.values()), timeout=30)
    return len(procs)


def _read_state(path: Path) -> tuple[Ident, list[Ident]] | None:
    try:
        data = json.loads(path.read_text())
        return tuple(data["owner"]), [tuple(x) for x in data["procs"]]  # type: ignore[return-value]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_state(path: Path, owner: Ident, procs: list[Ident]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"owner": owner, "procs": procs}))
    os.replace(tmp, path)


def clean_leftovers(state_dir: Path) -> int:
    """Kill the engine processes of workers that died (their state file outlived them)."""
    killed = 0
    for path in sorted(Path(state_dir).glob(STATE_GLOB)):
        state = _read_state(path)
        if state is not None and _alive(state[0]) is not None:
            continue  # a living worker's
        if state is not None:
            n = kill_all(state[1])
            if n:
                log.warning("killed %d engine process(es) left behind by dead worker pid %d", n, state[0][0])
            killed += n
        path.unlink(missing_ok=True)
    return killed


def start_reaper(state_dir: Path) -> subprocess.Popen:
    """Clean up after dead workers, then start this worker's reaper (returned; it exits by itself
    once this process is gone)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    clean_leftovers(state_dir)
    state = state_dir / f"duet-worker-{os.getpid()}.procs.json"
    return subprocess.Popen(
        [sys.executable, "-m", "eval_service.worker.reaper", str(os.getpid()), str(state)],
        start_new_session=True,  # not in the worker's process group: a group kill must not take it
        stdin=subprocess.DEVNULL,
        close_fds=True,
    )


def watch(owner_pid: int, state: Path) -> None:
    """Record the owner's descendants until it is gone, then kill them and drop the state file."""
    try:
        owner = psutil.Process(owner_pid)
        owner_id = _ident(owner)
    except psutil.Error:
        return
    recorded: list[Ident] = []
    while True:
        try:
            owner.wait(timeout=POLL_S)
            break  # the owner exited (or was killed)
        except psutil.TimeoutExpired:
            pass
        except psutil.Error:
            break
        try:
            now = sorted(_ident(c) for c in owner.children(recursive=True) if c.pid != os.getpid())
        except psutil.Error:
            continue
        if now and now != recorded:
            # keep the living ones that left the tree (re-parented to PID 1): still ours
            recorded = sorted(i for i in set(recorded) | set(now) if _alive(i) is not None)
            _write_state(state, owner_id, recorded)
    kill_all(recorded)
    state.unlink(missing_ok=True)


if __name__ == "__main__":
    watch(int(sys.argv[1]), Path(sys.argv[2]))
