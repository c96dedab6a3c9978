"""compose.yaml is validated by a real compose implementation (no Docker engine on CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = shutil.which("docker-compose")

pytestmark = pytest.mark.skipif(
    COMPOSE is None and not os.environ.get("DUET_REQUIRE_COMPOSE"),
    reason="docker-compose not installed (apt-get install docker-compose); CI installs it",
)


def compose_config(*files: str, env_file: Path | None = ROOT / ".env.example") -> dict:
    assert COMPOSE, "DUET_REQUIRE_COMPOSE is set but docker-compose is not installed"
    args = [COMPOSE, "--project-directory", str(ROOT)]
    if env_file is not None:
        args += ["--env-file", str(env_file)]
    for f in files:
        args += ["-f", str(ROOT / f)]
    out = subprocess.run(
        [*args, "config"], capture_output=True, text=True, cwd=ROOT, env={"PATH": os.environ["PATH"]}
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def gpu_ids(service: dict) -> list[str]:
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert all(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    return [i for d in devices for i in d["device_ids"]]


def volume_targets(service: dict) -> dict[str, tuple[str, bool]]:
    """target -> (named volume, read_only)"""
    out = {}
    for v in service["volumes"]:
        if isinstance(v, str):
            src, target, *mode = v.split(":")
            out[target] = (src, mode == ["ro"])
        else:
            out[v["target"]] = (v["source"], bool(v.get("read_only")))
    return out


def test_two_gpu_assignment_volumes_and_health_ordering():
    cfg = compose_config("compose.yaml")
    svc = cfg["services"]
    assert set(svc) == {"api", "trainer", "evaluator"}
    assert gpu_ids(svc["trainer"]) == ["0"]
    assert gpu_ids(svc["evaluator"]) == ["1"]
    assert "deploy" not in svc["api"]  # the ledger needs no GPU

    # One checkpoints volume: the trainer writes it, evaluator and api only read it.
    assert volume_targets(svc["trainer"])["/data/checkpoints"] == ("checkpoints", False)
    assert volume_targets(svc["evaluator"])["/data/checkpoints"] == ("checkpoints", True)
    assert volume_targets(svc["api"])["/data/checkpoints"] == ("checkpoints", True)
    assert volume_targets(svc["api"])["/data/db"][0] == "db"
    assert volume_targets(svc["api"])["/data/wandb"][0] == "wandb"
    assert {"checkpoints", "db", "wandb"} <= set(cfg["volumes"])
    # The api's checkpoint root covers the checkpoints and the base model in the HF cache.
    assert svc["api"]["environment"]["DUET_CHECKPOINT_ROOT"] == "/data"
    assert volume_targets(svc["api"])["/data/hf-cache"] == ("hf-cache", True)
    assert volume_targets(svc["evaluator"])["/data/hf-cache"][0] == "hf-cache"
    assert svc["evaluator"]["command"][-2:] == ["--base-model", "Qwen/Qwen2.5-Math-1.5B"]

    assert "healthcheck" in svc["api"]
    for name in ("trainer", "evaluator"):
        assert svc[name]["depends_on"]["api"]["condition"] == "service_healthy"
        assert svc[name]["environment"]["DUET_API_URL"] == "http://api:8477"
        assert svc[name]["restart"] in ("on-failure", "unless-stopped", "always")
    # Values come from the .env file.
    assert svc["trainer"]["environment"]["DUET_API_TOKEN"] == "change-me-worker-token"
    assert svc["api"]["environment"]["DUET_ADMIN_TOKEN"] == "change-me-admin-token"


def test_single_gpu_variant_shares_gpu0_with_limited_vllm_memory():
    svc = compose_config("compose.yaml", "compose.single-gpu.yaml")["services"]
    assert gpu_ids(svc["trainer"]) == ["0"]
    assert gpu_ids(svc["evaluator-1gpu"]) == ["0"]
    assert float(svc["evaluator-1gpu"]["environment"]["DUET_WORKER_GPU_MEMORY_UTILIZATION"]) < 0.5
    # The two-GPU evaluator is parked in a profile nobody activates.
    assert svc["evaluator"]["profiles"] == ["two-gpu-only"]
    assert "profiles" not in svc["evaluator-1gpu"]


def test_missing_token_is_a_clear_error(tmp_path):
    env = tmp_path / "empty.env"
    env.write_text("DUET_RUN_NAME=x\n")
    out = subprocess.run(
        [
            COMPOSE,
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(env),
            "-f",
            str(ROOT / "compose.yaml"),
            "config",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": os.environ["PATH"]},
    )
    assert out.returncode != 0
    assert "DUET_API_TOKEN" in out.stderr


def test_evaluator_env_names_are_worker_settings():
    """A typo in a DUET_WORKER_* name would be ignored silently by pydantic-settings."""
    from eval_service.worker.config import WorkerSettings

    for files in (("compose.yaml",), ("compose.yaml", "compose.single-gpu.yaml")):
        for name, svc in compose_config(*files)["services"].items():
            for key in svc.get("environment", {}):
                if key.startswith("DUET_WORKER_"):
                    field = key.removeprefix("DUET_WORKER_").lower()
                    assert field in WorkerSettings.model_fields, f"{name}: {key} is not a worker setting"
