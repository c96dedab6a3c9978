"""Cluster deployment files: the Kubernetes manifests pass a real Kubernetes schema validator (strict:
unknown fields are errors), and the Kubernetes and Slurm files use the same settings as compose.yaml."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from eval_service.api.core.config import ServerSettings
from eval_service.worker.config import WorkerSettings
from shared.config import ClientSettings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
SBATCH = ROOT / "deploy" / "slurm" / "duet-2gpu.sbatch"
K8S_VERSION = kubernetes_validate.latest_version()
# compose service -> (kind, name) of the Kubernetes workload that runs it
WORKLOADS = {
    "api": ("Deployment", "duet-api"),
    "trainer": ("Job", "duet-trainer"),
    "evaluator": ("Deployment", "duet-evaluator"),
}


def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def workload(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def container(kind: str, name: str) -> dict[str, Any]:
    (c,) = workload(kind, name)["spec"]["template"]["spec"]["containers"]
    return c


def compose_env() -> dict[str, set[str]]:
    """Environment variable names of each compose service (names only: values are ${...})."""
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    return {name: set(svc.get("environment", {})) for name, svc in services.items()}


def env_example_names() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z_]+=", line)}


def known_names() -> set[str]:
    """Every name a duet process reads, plus the deployment knobs of .env.example."""
    names = {f"DUET_{f.upper()}" for f in ServerSettings.model_fields}
    names |= {f"DUET_{f.upper()}" for f in ClientSettings.model_fields}
    names |= {f"DUET_WORKER_{f.upper()}" for f in WorkerSettings.model_fields}
    return names | env_example_names()


# --- Kubernetes -------------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest():
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_kubernetes(doc: dict[str, Any]):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validator_rejects_unknown_fields_and_wrong_types():
    """The check above can fail: a typo'd field or a wrong type is an error, not ignored."""
    bad = copy.deepcopy(workload("Deployment", "duet-evaluator"))
    bad["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # typo of `resources`
    with pytest.raises(kubernetes_validate.ValidationError, match="resource"):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)
    bad = copy.deepcopy(workload("Deployment", "duet-evaluator"))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed (optional extra check)")
def test_kustomize_renders():
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert all(
        d["metadata"].get("namespace") == "duet"
        for d in yaml.safe_load_all(out.stdout)
        if d["kind"] != "Namespace"
    )


def test_gpus_volumes_and_probes():
    pvcs = {d["metadata"]["name"]: d for d in manifests() if d["kind"] == "PersistentVolumeClaim"}
    assert pvcs["duet-checkpoints"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvcs["duet-hf-cache"]["spec"]["accessModes"] == ["ReadWriteMany"]

    evaluator, trainer, api = (container(*WORKLOADS[s]) for s in ("evaluator", "trainer", "api"))
    assert workload(*WORKLOADS["evaluator"])["spec"]["replicas"] >= 1
    assert evaluator["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert trainer["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in api["resources"].get("limits", {})

    def mounts(c: dict[str, Any]) -> dict[str, bool]:
        return {m["mountPath"]: bool(m.get("readOnly")) for m in c["volumeMounts"]}

    assert mounts(trainer)["/data/checkpoints"] is False
    assert mounts(evaluator)["/data/checkpoints"] is True
    assert mounts(api)["/data/checkpoints"] is True
    pod = workload(*WORKLOADS["evaluator"])["spec"]["template"]["spec"]
    (ckpt,) = [v for v in pod["volumes"] if v["name"] == "checkpoints"]
    assert ckpt["persistentVolumeClaim"] == {"claimName": "duet-checkpoints", "readOnly": True}


def test_probes_hit_the_ledgers_health_route(tmp_path: Path):
    from eval_service.api.main import create_app

    app = create_app(ServerSettings(db_url=f"sqlite:///{tmp_path / 'ledger.db'}"))
    paths = {getattr(r, "path", None) for r in app.routes}
    api = container(*WORKLOADS["api"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"]["path"] in paths, probe
        assert api[probe]["httpGet"]["port"] == api["ports"][0]["name"]


def test_env_names_match_compose_and_settings():
    """Every variable compose gives a service, its Kubernetes container gets too; no name is unknown
    (pydantic-settings would ignore a typo silently)."""
    compose = compose_env()
    known = known_names()
    for service, (kind, name) in WORKLOADS.items():
        env = {e["name"] for e in container(kind, name)["env"]}
        assert compose[service] <= env, (
            f"{name} lacks {sorted(compose[service] - env)} of compose's {service}"
        )
        unknown = {n for n in env if n.startswith("DUET_")} - known
        assert not unknown, f"{name}: {sorted(unknown)} are no duet setting"
    # $(NAME) in a command must name a variable of that container, or Kubernetes passes it literally.
    for kind, name in WORKLOADS.values():
        c = container(kind, name)
        env = {e["name"] for e in c["env"]}
        used = set(re.findall(r"\$\((\w+)\)", yaml.safe_dump(c["command"]) + yaml.safe_dump(c["env"])))
        assert used <= env, f"{name}: $({sorted(used - env)}) undefined"


def test_secret_holds_the_tokens():
    (secret,) = [d for d in manifests() if d["kind"] == "Secret"]
    assert {"DUET_API_TOKEN", "DUET_ADMIN_TOKEN", "WANDB_API_KEY"} <= set(secret["stringData"])
    refs = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for kind, name in WORKLOADS.values()
        for e in container(kind, name)["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs <= set(secret["stringData"])


# --- Slurm ------------------------------------------------------------------------------------------


def test_sbatch_is_valid_bash():
    out = subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_sbatch_directives_ask_for_one_node_with_two_gpus():
    lines = SBATCH.read_text().splitlines()
    # Slurm reads #SBATCH lines only before the first command.
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    directives = dict(
        line.removeprefix("#SBATCH ").split("=", 1)
        for line in lines[:first_command]
        if line.startswith("#SBATCH ")
    )
    assert not [line for line in lines[first_command:] if line.startswith("#SBATCH")]
    assert directives["--nodes"] == "1"
    assert directives["--gres"] == "gpu:2"


def test_sbatch_env_names_match_compose_and_settings():
    text = SBATCH.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    names = set(re.findall(r"\b((?:DUET|WANDB|HF)_[A-Z_]+)\b", code))
    for service, env in compose_env().items():
        assert env <= names, f"the sbatch script lacks {sorted(env - names)} of compose's {service}"
    unknown = {n for n in names if n.startswith("DUET_")} - known_names() - {"DUET_DATA", "DUET_VENV"}
    assert not unknown, f"{sorted(unknown)} are no duet setting"
    # trainer on GPU 0, evaluator on GPU 1
    assert re.search(r"CUDA_VISIBLE_DEVICES=0 duet train", text)
    assert re.search(r"CUDA_VISIBLE_DEVICES=1 \\\n(?:.*\\\n)*.*duet worker", text)
