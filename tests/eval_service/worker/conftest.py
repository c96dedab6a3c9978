"""Checkpoints for worker tests, made from the tiny test model: perturbed full copies, a LoRA
adapter, a truncated shard and a shape-mismatched one (passes header checks, crashes the load)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.checkpoint import write_marker

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
)


@pytest.fixture(scope="session")
def base_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return Path(request.getfixturevalue("tiny_model"))
    except pytest.FixtureLookupError:
        from trainer_service.tiny_model import build_tiny_model

        return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def ledger(ledger_factory, tmp_path: Path):
    """A ledger whose checkpoint root is the test's tmp dir (it refuses paths outside its root)."""
    return ledger_factory(checkpoint_root=tmp_path)


@pytest.fixture
def local_base(base_model: Path, tmp_path: Path) -> Path:
    """The tiny model copied under the ledger's checkpoint root."""
    dst = tmp_path / "base_model"
    shutil.copytree(base_model, dst)
    return dst


def make_full(base: Path, dst: Path, *, seed: int, run: str | None, step: int, scale: float = 0.5) -> Path:
    """A full checkpoint: every weight of `base` plus seeded noise; marker last when `run` is given."""
    import torch
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True)
    for p in base.iterdir():
        if p.is_file() and p.name != "model.safetensors" and not p.name.startswith("duet_"):
            shutil.copy2(p, dst / p.name)
    g = torch.Generator().manual_seed(seed)
    sd = load_file(base / "model.safetensors")
    sd = {k: (v + scale * torch.randn(v.shape, generator=g)).contiguous() for k, v in sd.items()}
    save_file(sd, dst / "model.safetensors", metadata={"format": "pt"})
    if run is not None:
        write_marker(dst, run=run, step=step)
    return dst


def make_lora(base: Path, dst: Path, *, seed: int, run: str | None, step: int) -> Path:
    """A PEFT adapter whose B matrices are non-zero, so its outputs differ from the base's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0.0, 0.5)
    peft.save_pretrained(dst)
    for name in TOKENIZER_FILES:
        if (base / name).is_file():
            shutil.copy2(base / name, dst / name)
    if run is not None:
        write_marker(dst, run=run, step=step, kind="lora", base_model=str(base))
    return dst


def make_truncated(base: Path, dst: Path, *, run: str, step: int) -> Path:
    """A shard cut short, published under a marker (the writer hit a full disk, say)."""
    make_full(base, dst, seed=step, run=None, step=step)
    shard = dst / "model.safetensors"
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size // 2)
    write_marker(dst, run=run, step=step)
    return dst


def make_shape_mismatch(base: Path, dst: Path, *, run: str, step: int) -> Path:
    """Valid safetensors with a wrongly shaped tensor: passes every file check, fails in the engine."""
    import torch
    from safetensors.torch import load_file, save_file

    make_full(base, dst, seed=step, run=None, step=step)
    sd = load_file(dst / "model.safetensors")
    key = next(k for k in sd if k.endswith("input_layernorm.weight"))
    sd[key] = torch.ones(sd[key].shape[0] + 3)
    save_file(sd, dst / "model.safetensors", metadata={"format": "pt"})
    write_marker(dst, run=run, step=step)
    return dst


def wait_for(pred: Callable[[], object], timeout: float, what: str, proc: WorkerProc | None = None) -> object:
    """Poll `pred` until truthy; fail naming `what` (and the worker's log tail) on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        if proc is not None and proc.proc.poll() is not None:
            pytest.fail(
                f"worker exited ({proc.proc.returncode}) while waiting for {what}:\n{proc.log_tail()}"
            )
        time.sleep(0.2)  # poll interval, not synchronisation
    pytest.fail(f"timed out waiting for {what}" + (f":\n{proc.log_tail()}" if proc else ""))


class WorkerProc:
    """`duet worker` as a real subprocess (vLLM must own its process tree)."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        log = open(log_path, "ab")  # noqa: SIM115  (owned by the child)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", *args], env=env, stdout=log, stderr=log
        )
        log.close()

    def log_tail(self, n: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def terminate(self, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def worker_env(ledger, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **ledger.client_env(),
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "DUET_WORKER_SPOOL_PATH": str(tmp_path / "spool.db"),
    }
    env.update({k: str(v) for k, v in extra.items()})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return {k: v for k, v in env.items() if v is not None and k in env} | {"PATH": os.environ.get("PATH", "")}
