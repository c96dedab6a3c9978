"""The `duet` entry point: light to start, and complete when installed as a regular (non-editable)
package, away from the repository."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.ledger import REPO

HEAVY = ("torch", "vllm", "transformers", "sqlmodel", "fastapi", "trl")

# Runs the real `duet` app with the given arguments, then reports which heavy modules it imported.
PROBE = (
    f"HEAVY = {HEAVY!r}\n"
    + """
import json, sys
from cli.app import app
try:
    app(sys.argv[1:], prog_name="duet")
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "heavy": [m for m in HEAVY if m in sys.modules]}))
"""
)


@pytest.mark.parametrize("args", [["--help"], ["runs", "--help"]])
def test_help_imports_no_heavy_library(args):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    assert "Usage: duet" in out.stdout


def test_every_command_group_is_registered():
    out = subprocess.run(
        [sys.executable, "-m", "cli", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    for command in ("serve", "runs", "scores", "best", "compare", "enqueue", "jobs", "cancel", "samples",
                    "worker", "grade", "regrade", "train", "train-sync", "init-tiny-model", "up"):  # fmt: skip
        assert f" {command} " in out.stdout, command


@pytest.mark.slow
def test_regular_install_runs_up_and_grade_outside_the_repo(tmp_path):
    # Build from a copy of what the Docker image copies, so the build writes nothing into the repo.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("cli", "shared", "eval_service", "trainer_service"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    # --no-deps: the dependencies are this interpreter's already; only duet itself is installed.
    built = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    assert (target / "cli" / "configs" / "tiny.yaml").is_file(), "the default config is package data"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("DUET_API_URL", None)

    def duet(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(target / "bin" / "duet"), *args],
            input=stdin, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    where = subprocess.run(
        [sys.executable, "-c", "import cli, shared; print(cli.__file__); print(shared.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert all(Path(p).is_relative_to(target) for p in where.stdout.split()), where.stdout

    assert duet("up", "--help").returncode == 0
    # With no --config, `duet up` gets past the config check (the packaged tiny config is found)
    # and stops at the next one, the busy port.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        up = duet("up", "--workdir", str(tmp_path / "wd"), "--port", str(port))
    assert up.returncode == 1
    assert f"port {port} is in use" in up.stdout, up.stdout + up.stderr

    # A fraction spelt differently needs math-verify, which runs in the grading child process.
    sample = {"response": "x</think> <answer>\\frac{\\sqrt{4}}{4}</answer>", "gold": "1/2"}
    graded = duet("grade", "--format", "r1_zero", stdin=json.dumps(sample) + "\n")
    assert graded.returncode == 0, graded.stderr
    assert json.loads(graded.stdout)["correct"] is True
