"""The tiny local models (Llama and Qwen2): HF-loadable with the right architecture and tied
embeddings, digits as single tokens, prompts tokenize as a clean prefix, and vLLM loads them and
generates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from shared.tasks import get_task
from trainer_service.tiny_model import TinyArch, build_tiny_model, verify_with_vllm


def assert_prompts_are_token_prefixes(tok, task) -> None:
    """Training sees what eval sees: the rendered prompt is a token prefix of prompt+target+EOS,
    and the target (tags included) survives decoding."""
    for ex in task.examples("test", limit=20):
        prompt, target = task.render_prompt(ex, tok), task.target(ex)
        p = tok(prompt)["input_ids"]
        full = tok(prompt + target + tok.eos_token)["input_ids"]
        assert full[: len(p)] == p
        assert tok.decode(full[len(p) :], skip_special_tokens=True) == target
        assert full[-1] == tok.eos_token_id


def test_tiny_model_loads_with_transformers(tiny_model: Path):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.config.architectures == ["LlamaForCausalLM"] and model.config.tie_word_embeddings
    assert json.loads((tiny_model / "duet_tiny_model.json").read_text())["arch"] == "llama"
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
    assert_prompts_are_token_prefixes(tok, task)
    # The chat template renders the same text as the plain prompt.
    chat = get_task("ones_digit", use_chat_template=True)
    ex = chat.examples("test", limit=1)[0]
    assert chat.render_prompt(ex, tok) == task.render_prompt(ex, tok)


def test_tiny_qwen2_is_a_qwen2_with_tied_embeddings_and_chatml(tiny_qwen2_model: Path):
    tok = AutoTokenizer.from_pretrained(tiny_qwen2_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_model)
    cfg = model.config
    assert cfg.model_type == "qwen2" and cfg.architectures == ["Qwen2ForCausalLM"]
    assert type(model).__name__ == "Qwen2ForCausalLM"
    # Tied as in Qwen2.5-0.5B/1.5B: one matrix, so a weight swap must not leave a stale lm_head.
    assert cfg.tie_word_embeddings
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert json.loads((tiny_qwen2_model / "duet_tiny_model.json").read_text())["arch"] == "qwen2"
    assert 500_000 <= sum(p.numel() for p in model.parameters()) <= 5_000_000

    # Qwen2 tokens: no BOS, <|im_end|> ends a turn (and generation), <|endoftext|> pads.
    assert tok.bos_token is None and cfg.bos_token_id is None
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert cfg.eos_token_id == tok.eos_token_id != tok.pad_token_id == cfg.pad_token_id
    assert "<|im_start|>" in tok.all_special_tokens
    ids = tok("N+1=1234")["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[-4:] == ["1", "2", "3", "4"]  # no BOS, digits split

    chat = tok.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert chat == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    # Both prompt renderings keep the train/eval token-prefix property on this tokenizer.
    assert_prompts_are_token_prefixes(tok, get_task("ones_digit"))
    chat_task = get_task("ones_digit", use_chat_template=True)
    assert_prompts_are_token_prefixes(tok, chat_task)
    ex = chat_task.examples("test", limit=1)[0]
    assert chat_task.render_prompt(ex, tok).startswith("<|im_start|>user\n")


@pytest.mark.parametrize("arch", list(TinyArch))
def test_build_is_deterministic_and_rejects_bad_dims(tmp_path: Path, arch: TinyArch):
    a = build_tiny_model(tmp_path / "a", seed=3, arch=arch, num_hidden_layers=1)
    b = build_tiny_model(tmp_path / "b", seed=3, arch=arch, num_hidden_layers=1)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    assert json.loads((a / "duet_tiny_model.json").read_text())["dims"]["num_hidden_layers"] == 1
    with pytest.raises(ValueError, match="vLLM CPU needs one of"):
        build_tiny_model(tmp_path / "c", hidden_size=120, num_attention_heads=4)
    with pytest.raises(ValueError, match="unknown size keys"):
        build_tiny_model(tmp_path / "d", arch=arch, layers=2)


def test_unknown_arch_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="gpt2"):
        build_tiny_model(tmp_path / "m", arch="gpt2")
    assert not (tmp_path / "m").exists()  # refused before anything is written


@pytest.mark.slow
def test_vllm_loads_and_generates(tiny_model: Path):
    text = verify_with_vllm(tiny_model)
    assert isinstance(text, str) and text  # random weights: any non-empty greedy continuation


@pytest.mark.slow
def test_vllm_loads_tiny_qwen2_and_generates(tiny_qwen2_model: Path):
    """vLLM's Qwen2ForCausalLM (tied lm_head, qkv bias) loads the tiny model and decodes."""
    text = verify_with_vllm(
        tiny_qwen2_model, "<|im_start|>user\nN=7<|im_end|>\n<|im_start|>assistant\n<think>"
    )
    assert isinstance(text, str) and text
