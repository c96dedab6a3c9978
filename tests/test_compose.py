"""compose.yaml is validated by a real compose implementation (no Docker engine on CI), and the
defaults it ships (.env.example, the train config, the image) are checked to run as they are."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = shutil.which("docker-compose")

needs_compose = pytest.mark.skipif(
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


@needs_compose
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


@needs_compose
def test_single_gpu_variant_shares_gpu0_with_limited_vllm_memory():
    svc = compose_config("compose.yaml", "compose.single-gpu.yaml")["services"]
    assert gpu_ids(svc["trainer"]) == ["0"]
    assert gpu_ids(svc["evaluator-1gpu"]) == ["0"]
    assert float(svc["evaluator-1gpu"]["environment"]["DUET_WORKER_GPU_MEMORY_UTILIZATION"]) < 0.5
    # The two-GPU evaluator is parked in a profile nobody activates.
    assert svc["evaluator"]["profiles"] == ["two-gpu-only"]
    assert "profiles" not in svc["evaluator-1gpu"]


@needs_compose
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


@needs_compose
def test_evaluator_env_names_are_worker_settings():
    """A typo in a DUET_WORKER_* name would be ignored silently by pydantic-settings."""
    from eval_service.worker.config import WorkerSettings

    for files in (("compose.yaml",), ("compose.yaml", "compose.single-gpu.yaml")):
        for name, svc in compose_config(*files)["services"].items():
            for key in svc.get("environment", {}):
                if key.startswith("DUET_WORKER_"):
                    field = key.removeprefix("DUET_WORKER_").lower()
                    assert field in WorkerSettings.model_fields, f"{name}: {key} is not a worker setting"


def flag(command: list[str], name: str) -> str:
    """The value after `name` in a resolved compose command."""
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


@needs_compose
def test_shipped_env_example_as_dot_env_runs_compose_config(tmp_path: Path):
    """What a user does: `cp .env.example .env && docker compose up` — compose must accept it as is."""
    for f in ("compose.yaml", "compose.single-gpu.yaml"):
        shutil.copy(ROOT / f, tmp_path / f)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    for files in (["compose.yaml"], ["compose.yaml", "compose.single-gpu.yaml"]):
        args = [COMPOSE, *(x for f in files for x in ("-f", f)), "config"]
        out = subprocess.run(
            args, capture_output=True, text=True, cwd=tmp_path, env={"PATH": os.environ["PATH"]}
        )
        assert out.returncode == 0, out.stderr
        assert "change-me-worker-token" in out.stdout  # the values did come from .env


@needs_compose
def test_default_train_config_needs_only_repo_files_and_hub_ids():
    """The trainer's resolved command loads, and every file it names exists in the repo (and so in
    the image) or is a hub id: nothing the user must create beyond .env."""
    from trainer_service.config import load_config, parse_overrides

    svc = compose_config("compose.yaml")["services"]
    command = svc["trainer"]["command"]
    assert command[:2] == ["duet", "train"]
    config_path = flag(command, "--config")
    assert (ROOT / config_path).is_file(), f"{config_path} is not in the repo"
    assert Path(config_path).parts[0] in dockerfile_copied_dirs(), f"the image lacks {config_path}"

    rest = command[2:]
    i = rest.index("--config")
    overrides = parse_overrides([a for a in rest[:i] + rest[i + 2 :] if a != "--resume"])
    cfg = load_config(ROOT / config_path, overrides)
    # A model that is no existing path must be a hub id (the config validator tells them apart).
    assert cfg.model == "Qwen/Qwen2.5-Math-1.5B" and not (ROOT / cfg.model).exists()
    assert cfg.model == flag(svc["evaluator"]["command"], "--base-model")  # one base model for both
    assert cfg.task == "math" and cfg.task_options.get("answer_format") == "r1_zero"
    for key, value in cfg.task_options.items():
        if key == "path" or key.endswith("_path"):
            assert (ROOT / value).is_file(), f"task_options.{key}: {value} is not in the repo"

    # Hub downloads go to one cache volume that trainer and evaluator share.
    for name in ("trainer", "evaluator"):
        assert svc[name]["environment"]["HF_HOME"] == "/data/hf-cache"
        assert volume_targets(svc[name])["/data/hf-cache"] == ("hf-cache", False)


@needs_compose
def test_evaluator_env_gives_a_whole_gpu_to_vllm_and_scores_every_example():
    from eval_service.worker.config import WorkerSettings

    env = compose_config("compose.yaml")["services"]["evaluator"]["environment"]
    worker_env = {k: str(v) for k, v in env.items() if k.startswith("DUET_WORKER_")}
    assert worker_env["DUET_WORKER_LIMIT"] == ""  # empty in .env.example: the whole eval split
    # The worker reads these names from its environment exactly as the container would.
    with pytest.MonkeyPatch.context() as mp:
        for k, v in worker_env.items():
            mp.setenv(k, v)
        settings = WorkerSettings()
    assert settings.limit is None
    assert settings.max_tokens == 1024
    assert settings.gpu_memory_utilization == 0.85


def dockerfile_copied_dirs() -> set[str]:
    """Top-level paths the Dockerfile COPYs into the image."""
    text = (ROOT / "docker" / "Dockerfile").read_text()
    out: set[str] = set()
    for m in re.finditer(r"^COPY\s+(?!--from)(.+)$", text, re.MULTILINE):
        *sources, _dest = m[1].split()
        out.update(Path(s).parts[0] for s in sources if not s.startswith("--"))
    return out


def test_dockerfile_copies_every_package_pyproject_installs():
    """The image's non-editable `pip install .` finds every package (a new top-level package that the
    Dockerfile forgets would make `duet` fail to import inside the image only)."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = {p.rstrip("*") for p in find["include"]}
    copied = dockerfile_copied_dirs()
    assert packages <= copied, f"docker/Dockerfile does not COPY {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md", "configs"} <= copied
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r'pip install "\.\[gpu\]"', text), "the image installs duet with the gpu extra"
    assert "-e " not in text  # a regular install: the image must not depend on /app's sources
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".duet", "wandb", "runs", ".git", "*.db"} <= set(ignored)
