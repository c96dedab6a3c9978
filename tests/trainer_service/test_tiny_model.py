"""The tiny local model: HF-loadable, digits as single tokens, prompts tokenize as a clean prefix,
and vLLM loads it and generates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from shared.tasks import get_task
from trainer_service.tiny_model import build_tiny_model, verify_with_vllm


def test_tiny_model_loads_with_transformers(tiny_model: Path):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    n = sum(p.numel() for p in model.parameters())
    assert 500_000 <= n <= 5_000_000
    assert model.config.head_dim in (32, 64, 80, 96, 112, 128)
    for f in (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ):
        assert (tiny_model / f).is_file(), f
    assert tok.bos_token and tok.eos_token and tok.pad_token and tok.chat_template
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3

    # Each digit is its own token: "1234" -> four tokens, whatever the context.
    ids = tok("N+1=1234", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[-4:] == ["1", "2", "3", "4"]

    task = get_task("ones_digit")
    for ex in task.examples("test", limit=20):
        prompt, target = task.render_prompt(ex, tok), task.target(ex)
        p = tok(prompt)["input_ids"]
        full = tok(prompt + target + tok.eos_token)["input_ids"]
        assert full[: len(p)] == p  # the prompt is a token prefix: training sees what eval sees
        assert tok.decode(full[len(p) :], skip_special_tokens=True) == target  # tags survive decoding
        assert full[-1] == tok.eos_token_id
    # The chat template renders the same text as the plain prompt.
    chat = get_task("ones_digit", use_chat_template=True)
    ex = chat.examples("test", limit=1)[0]
    assert chat.render_prompt(ex, tok) == task.render_prompt(ex, tok)


def test_build_is_deterministic_and_rejects_bad_dims(tmp_path: Path):
    a = build_tiny_model(tmp_path / "a", seed=3, num_hidden_layers=1)
    b = build_tiny_model(tmp_path / "b", seed=3, num_hidden_layers=1)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    assert json.loads((a / "duet_tiny_model.json").read_text())["dims"]["num_hidden_layers"] == 1
    with pytest.raises(ValueError, match="vLLM CPU needs one of"):
        build_tiny_model(tmp_path / "c", hidden_size=120, num_attention_heads=4)
    with pytest.raises(ValueError, match="unknown size keys"):
        build_tiny_model(tmp_path / "d", layers=2)


@pytest.mark.slow
def test_vllm_loads_and_generates(tiny_model: Path):
    text = verify_with_vllm(tiny_model)
    assert isinstance(text, str) and text  # random weights: any non-empty greedy continuation
