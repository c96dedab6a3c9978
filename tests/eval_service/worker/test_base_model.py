"""--base-model: a local dir, or a hub id fetched into the HF cache; anything else is a clear error."""

from pathlib import Path

import pytest

from eval_service.worker.main import resolve_base_model


def test_local_dir_is_used_as_is(tiny_model):
    assert resolve_base_model(tiny_model) == tiny_model.resolve()


@pytest.mark.parametrize("ref", ["./no/such/model", "/abs/missing", "not-a-hub-id"])
def test_missing_local_dir_names_the_option(tmp_path, ref):
    with pytest.raises(ValueError, match=r"--base-model .*: no config.json there"):
        resolve_base_model(Path(ref))


def test_unreachable_hub_id_is_a_clear_error(tmp_path, monkeypatch):
    # This machine cannot reach the hub: the real download path fails, and says so.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))

    with pytest.raises(
        ValueError, match=r"--base-model Qwen/Qwen2.5-Math-1.5B: cannot fetch it from the hub"
    ):
        resolve_base_model(Path("Qwen/Qwen2.5-Math-1.5B"))
