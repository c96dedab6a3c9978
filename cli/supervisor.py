"""The process side of `duet up`: services as child processes of the `duet` CLI, their logs,
a free-port check, and the one environment all three share."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


def duet_argv(*args: str) -> list[str]:
    """A `duet ...` command line that runs this very installation (`python -m cli`), so the
    services match the supervisor's code whether duet is installed, editable or not on PATH."""
    return [sys.executable, "-m", "cli", *args]


@dataclass
class Service:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child for its whole life
        # Own process group: Ctrl-C reaches `duet up` only, which then stops each child in order.
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None:
            return
        # SIGTERM to the service itself, not its group: the worker must stop its own engine
        # processes after releasing its job; killing those first would fail the job.
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Then nothing of the service may outlive it (stuck service, orphaned engine processes).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def service_env(workdir: Path, run: str, url: str) -> dict[str, str]:
    """The environment of all three services: one database, one checkpoint root, offline W&B and
    no hub access under `workdir`; tokens and W&B mode from the caller's environment if set."""
    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("DUET_API_TOKEN", "duet-dev-token")
    env.setdefault("DUET_ADMIN_TOKEN", "duet-dev-admin")
    env.update(
        {
            "DUET_API_URL": url,
            "DUET_DB_URL": f"sqlite:///{workdir / 'duet.db'}",
            # The root holds the checkpoints and the base model (registered as the step-0 baseline).
            "DUET_CHECKPOINT_ROOT": str(workdir),
            "DUET_WORKER_SPOOL_PATH": str(workdir / "spool" / f"worker-{run}.db"),
            "DUET_WANDB_DIR": str(workdir / "wandb"),
            "VLLM_CPU_KVCACHE_SPACE": env.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
        }
    )
    return env
