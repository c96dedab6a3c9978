import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from shared.checkpoint import (
    MARKER_NAME,
    CheckpointError,
    check_hf_checkpoint,
    check_safe_to_load,
    content_fingerprint,
    detect_kind,
    read_marker,
    stat_signature,
    verify_marker,
    write_marker,
)


def make_ckpt(d, seed=0, shards=1):
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (d / "tokenizer.json").write_text("{}")
    rng = np.random.default_rng(seed)
    if shards == 1:
        save_file({"w": rng.standard_normal((8, 8)).astype(np.float32)}, str(d / "model.safetensors"))
    else:
        weight_map = {}
        for i in range(shards):
            name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({f"w{i}": rng.standard_normal((4, 4)).astype(np.float32)}, str(d / name))
            weight_map[f"w{i}"] = name
        (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return d


def test_marker_roundtrip_lists_eval_files_and_verifies(tmp_path):
    d = make_ckpt(tmp_path / "checkpoint-10")
    (d / "optimizer.pt").write_bytes(b"x" * 10)  # optimizer state is not part of what eval needs
    marker = write_marker(d, run="r", step=10, epoch=0.5, base_model="tiny", train_loss=1.25)
    assert read_marker(d) == marker
    assert {f.path for f in marker.files} == {"config.json", "tokenizer.json", "model.safetensors"}
    assert marker.kind == "full"
    verify_marker(d, marker, hashes=True)
    assert not list(d.glob(".duet_marker.*"))  # no temp file left behind
    assert (d / MARKER_NAME).stat().st_mode & 0o777 == 0o644  # readable by a worker running as another user


def test_verify_marker_catches_changed_or_missing_files(tmp_path):
    d = make_ckpt(tmp_path / "c")
    marker = write_marker(d, run="r", step=1)
    with open(d / "model.safetensors", "ab") as f:
        f.write(b"junk")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: size"):
        verify_marker(d, marker)
    marker = write_marker(d, run="r", step=1)
    (d / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: listed .* but missing"):
        verify_marker(d, marker)


def test_no_weights_no_marker(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no \\*.safetensors"):
        write_marker(d, run="r", step=1)
    assert not (d / MARKER_NAME).exists()


def test_hf_checkpoint_sharded_and_truncated(tmp_path):
    d = make_ckpt(tmp_path / "c", shards=2)
    check_hf_checkpoint(d)
    shard = d / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="00002-of-00002.safetensors: truncated"):
        check_hf_checkpoint(d)
    shard.unlink()
    with pytest.raises(CheckpointError, match="missing weights shard"):
        check_hf_checkpoint(d)


def test_hf_checkpoint_needs_parseable_config(tmp_path):
    d = make_ckpt(tmp_path / "c")
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not JSON"):
        check_hf_checkpoint(d)


def test_refuses_code_and_pickles(tmp_path):
    d = make_ckpt(tmp_path / "c")
    check_safe_to_load(d)
    (d / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "x.Y"}}))
    with pytest.raises(CheckpointError, match="auto_map"):
        check_safe_to_load(d)
    p = tmp_path / "p"
    p.mkdir()
    (p / "config.json").write_text("{}")
    (p / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(CheckpointError, match="pickle-only weights \\(pytorch_model.bin\\)"):
        check_safe_to_load(p)


def test_fingerprint_tracks_weights_not_metadata(tmp_path):
    a, b, c = (
        make_ckpt(tmp_path / "a", seed=1),
        make_ckpt(tmp_path / "b", seed=1),
        make_ckpt(tmp_path / "c", seed=2),
    )
    (b / "tokenizer.json").write_text('{"other": 1}')
    assert content_fingerprint(a) == content_fingerprint(b) != content_fingerprint(c)
    # With a marker the fingerprint comes from the recorded hashes and agrees with hashing.
    before = content_fingerprint(a)
    write_marker(a, run="r", step=1)
    assert read_marker(a).fingerprint() == content_fingerprint(a)
    assert before  # both are stable strings
    assert detect_kind(a) == "full"
    sig = stat_signature(a)
    assert stat_signature(a) == sig


def test_published_checkpoints_are_marked_checkpoint_dirs_by_step(tmp_path):
    from shared.checkpoint import checkpoint_step, published_checkpoints

    for step in (20, 3, 100):
        write_marker(make_ckpt(tmp_path / f"checkpoint-{step}", seed=step), run="r", step=step)
    make_ckpt(tmp_path / "checkpoint-200")  # mid-save: no marker yet
    write_marker(make_ckpt(tmp_path / "ckpt-7"), run="r", step=7)  # not a trainer's checkpoint-N name
    (tmp_path / "checkpoint-300").write_text("a file, not a dir")
    assert [s for s, _ in published_checkpoints(tmp_path)] == [3, 20, 100]
    assert published_checkpoints(tmp_path / "missing") == []
    assert checkpoint_step("/x/checkpoint-42") == 42
    assert checkpoint_step("/x/checkpoint-42-tmp") is None


def test_step_names_the_trainer_owns_and_the_names_the_worker_reads():
    from shared.checkpoint import checkpoint_step

    # Other trainers' names: the worker evaluates them, the trainer never deletes or resumes them.
    for name, step in (("step-7", 7), ("ckpt_12", 12), ("run1-checkpoint5", 5), ("checkpoint-42", 42)):
        assert checkpoint_step(f"/x/{name}", strict=False) == step, name
        assert checkpoint_step(f"/x/{name}") == (step if name == "checkpoint-42" else None), name
    assert checkpoint_step("/x/checkpoint-42-tmp", strict=False) is None
    assert checkpoint_step("/x/base-model", strict=False) is None
