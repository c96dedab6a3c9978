"""Worker start-up checks: an engine that cannot reload in place refuses to start (unless
--allow-rebuild), engine settings resolve by device, and LoRA limits are vLLM's own."""

from __future__ import annotations

import json
import logging
import typing

import pytest

from eval_service.worker import engine
from eval_service.worker.config import WorkerSettings
from eval_service.worker.main import run_worker
from shared.lora import VLLM_LORA_RANKS, AdapterRefused, check_adapter


def test_lora_ranks_are_vllms_own():
    from vllm.config.lora import MaxLoRARanks

    assert typing.get_args(MaxLoRARanks) == VLLM_LORA_RANKS


def test_installed_vllm_reloads_in_place():
    ok, version = engine.reload_support()
    assert ok, f"vLLM {version} lost reload_weights(weights_path=...)"
    assert engine.check_engine(WorkerSettings()) is None


@pytest.fixture
def old_vllm(monkeypatch):
    """vLLM 0.32 supports in-place reload, so the probe is made to fail the way 0.11-0.15 would."""
    monkeypatch.setattr(engine, "reload_support", lambda: (False, "0.15.1"))


def test_worker_without_in_place_reload_refuses_to_start(old_vllm, caplog, tmp_path):
    caplog.set_level(logging.ERROR)
    rc = run_worker(WorkerSettings(spool_path=tmp_path / "spool.db", exit_when_idle=True))
    assert rc == 2
    assert "vLLM 0.15.1" in caplog.text and ">= 0.16" in caplog.text and "--allow-rebuild" in caplog.text


def test_allow_rebuild_starts_and_records_why(old_vllm, ledger, tmp_path, monkeypatch, caplog):
    for k, v in ledger.client_env().items():
        monkeypatch.setenv(k, v)
    caplog.set_level(logging.WARNING)
    settings = WorkerSettings(spool_path=tmp_path / "spool.db", exit_when_idle=True, allow_rebuild=True)
    assert run_worker(settings) == 0
    assert "rebuilt for every checkpoint" in caplog.text
    reason = engine.check_engine(settings)
    backend = engine.make_backend(settings, reason)
    assert backend.rebuild_reason == reason  # every full load takes the rebuild path with this reason


def test_engine_settings_resolve(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert WorkerSettings().resolved_enforce_eager() is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert WorkerSettings().resolved_enforce_eager() is False  # CUDA graphs on a GPU
    assert WorkerSettings(enforce_eager=True).resolved_enforce_eager() is True
    assert WorkerSettings().enable_lora is None  # LoRA only when the run has adapters
    with pytest.raises(ValueError, match="max_lora_rank=48 is not one vLLM accepts.*use 64"):
        WorkerSettings(max_lora_rank=48)
    monkeypatch.setenv("DUET_WORKER_TASK_OPTIONS", '{"answer_format": "r1_zero"}')
    assert WorkerSettings().task_options == {"answer_format": "r1_zero"}


def test_adapters_vllm_cannot_serve_are_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 16, "modules_to_save": ["lm_head"]}))
    with pytest.raises(AdapterRefused, match="modules_to_save"):
        check_adapter(tmp_path, 64)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 16}))
    with pytest.raises(AdapterRefused, match="DUET_WORKER_MAX_LORA_RANK=16"):
        check_adapter(tmp_path, 8)
    assert check_adapter(tmp_path, 16)["r"] == 16


def test_trainer_refuses_lora_settings_the_evaluator_cannot_serve():
    from pydantic import ValidationError

    from trainer_service.config import LoraSettings

    with pytest.raises(ValidationError, match="modules_to_save.*vLLM refuses"):
        LoraSettings(modules_to_save=["lm_head"])
    with pytest.raises(ValidationError, match="up to rank 512"):
        LoraSettings(r=600)
    assert LoraSettings(r=64).r == 64
