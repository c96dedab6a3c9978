"""A tiny local model for CPU demos and tests: random-init Llama or Qwen2 + a tokenizer trained on
the task.

Nothing is downloaded. The tokenizer is a byte-level BPE trained (`tokenizers`) on the task's own
prompts and targets, with every digit its own token (arithmetic is then per-digit) and the answer
format's tags as whole tokens (so a prompt ending in "<think>" is a clean token prefix of
prompt+completion). Dims are chosen for vLLM's CPU attention (head_dim in its supported set).
The output loads with AutoModelForCausalLM, AutoTokenizer and vllm.LLM. `TinyArch.qwen2` builds a
Qwen2ForCausalLM with Qwen's special tokens and ChatML chat template, so the vLLM code path that
GPU users of Qwen2.5 models hit runs here on CPU too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
# Same text as the plain r1_zero rendering ("User: …\nAssistant: "), so the chat and non-chat
# prompts of a task agree on this model.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)
# Qwen2-style ChatML (an optional system turn, no default system prompt: prompts stay short).
QWEN2_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class TinyArch(StrEnum):
    """Model family of the tiny model: its HF architecture, special tokens and chat template."""

    llama = "llama"  # LlamaForCausalLM, <s>/</s>/<pad>, BOS prepended
    qwen2 = "qwen2"  # Qwen2ForCausalLM, <|endoftext|>/<|im_end|>, no BOS, ChatML


@dataclass(frozen=True)
class TokenizerStyle:
    """The special tokens and chat template of one model family."""

    pad: str
    eos: str
    bos: str | None  # None: nothing is prepended (Qwen2 tokenizers add no BOS)
    chat_template: str
    extra_special: tuple[str, ...] = ()  # e.g. ChatML's <|im_start|>


TOKENIZER_STYLES: dict[TinyArch, TokenizerStyle] = {
    TinyArch.llama: TokenizerStyle(pad=PAD, eos=EOS, bos=BOS, chat_template=CHAT_TEMPLATE),
    # As in Qwen2.5: <|endoftext|> pads, <|im_end|> closes a turn and ends generation.
    TinyArch.qwen2: TokenizerStyle(
        pad="<|endoftext|>",
        eos="<|im_end|>",
        bos=None,
        chat_template=QWEN2_CHAT_TEMPLATE,
        extra_special=("<|im_start|>",),
    ),
}
VLLM_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256)

DEFAULT_SIZE: dict[str, int] = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=1024,  # upper bound for BPE merges; the real size is what the corpus supports
)


def task_corpus(task_name: str, task_options: dict[str, Any] | None = None) -> list[str]:
    """Every prompt and target the task can show the model (train + test)."""
    from shared.tasks import get_task

    task = get_task(task_name, **(task_options or {}))
    texts = []
    for split in ("train", "test"):
        for ex in task.examples(split):
            texts.append(task.render_prompt(ex))
            texts.append(task.target(ex))
    return texts


def train_tokenizer(texts: list[str], vocab_size: int, style: TokenizerStyle | None = None) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    style = style or TOKENIZER_STYLES[TinyArch.llama]
    specials = [style.pad, *([style.bos] if style.bos else []), style.eos, *style.extra_special]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens(TAGS)  # whole tokens, not special: they must survive skip_special_tokens decoding
    if style.bos:
        bos = style.bos
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    return tok


def build_tiny_model(
    out: Path | str,
    task: str = "ones_digit",
    seed: int = 0,
    task_options: dict[str, Any] | None = None,
    arch: TinyArch = TinyArch.llama,
    **size: int,
) -> Path:
    """Write a random-init `arch` model (~1-3M params, tied embeddings) + task tokenizer to `out`
    in HF format; return `out`.

    `size` overrides DEFAULT_SIZE (hidden_size, intermediate_size, num_hidden_layers,
    num_attention_heads, num_key_value_heads, vocab_size)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerFast

    arch = TinyArch(arch)  # a plain "qwen2" from a CLI flag is fine; anything else fails here
    style = TOKENIZER_STYLES[arch]

    unknown = set(size) - set(DEFAULT_SIZE)
    if unknown:
        raise ValueError(f"unknown size keys {sorted(unknown)}; allowed: {sorted(DEFAULT_SIZE)}")
    dims = {**DEFAULT_SIZE, **size}
    head_dim = dims["hidden_size"] // dims["num_attention_heads"]
    if dims["hidden_size"] % dims["num_attention_heads"] or head_dim not in VLLM_HEAD_DIMS:
        raise ValueError(
            f"hidden_size/num_attention_heads = {head_dim}: vLLM CPU needs one of {VLLM_HEAD_DIMS}"
        )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    texts = task_corpus(task, task_options)
    raw = train_tokenizer(texts, dims["vocab_size"], style)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token=style.bos,
        eos_token=style.eos,
        pad_token=style.pad,
        additional_special_tokens=list(style.extra_special),
        chat_template=style.chat_template,
        model_max_length=1024,
        clean_up_tokenization_spaces=False,
    )
    longest = max(len(raw.encode(t).ids) for t in texts)
    # Room for prompt + target + slack; a power of two keeps RoPE tables small.
    max_pos = max(256, 1 << (2 * longest - 1).bit_length())

    config = _model_config(
        arch,
        dict(
            vocab_size=len(tokenizer),
            hidden_size=dims["hidden_size"],
            intermediate_size=dims["intermediate_size"],
            num_hidden_layers=dims["num_hidden_layers"],
            num_attention_heads=dims["num_attention_heads"],
            num_key_value_heads=dims["num_key_value_heads"],
            max_position_embeddings=max_pos,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
            initializer_range=0.02,
            dtype="float32",
        ),
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "duet_tiny_model.json").write_text(
        json.dumps(
            {
                "arch": arch.value,
                "task": task,
                "seed": seed,
                "dims": dims,
                "params": sum(p.numel() for p in model.parameters()),
            },
            indent=2,
        )
    )
    return out


def _model_config(arch: TinyArch, common: dict[str, Any]) -> Any:
    """The HF config of `arch` from the fields both families share, plus each family's own."""
    from transformers import LlamaConfig, Qwen2Config

    if arch == TinyArch.qwen2:
        # Qwen2 has no head_dim field (hidden_size / heads); full attention in every layer, as
        # Qwen2.5 ships (its sliding window is off).
        return Qwen2Config(
            **common,
            rms_norm_eps=1e-6,
            use_sliding_window=False,
            sliding_window=None,
            max_window_layers=common["num_hidden_layers"],
        )
    return LlamaConfig(
        **common, head_dim=common["hidden_size"] // common["num_attention_heads"], rms_norm_eps=1e-5
    )


def _vllm_generate(path: str, prompt: str) -> str:
    from vllm import LLM, SamplingParams

    llm = LLM(model=path, gpu_memory_utilization=0.3, max_model_len=256, enforce_eager=True, seed=0)
    outs = llm.generate([prompt], SamplingParams(temperature=0.0, max_tokens=16))
    return outs[0].outputs[0].text


def verify_with_vllm(
    path: Path | str, prompt: str = "User: hello\nAssistant: <think>", timeout: float = 300
) -> str:
    """Load `path` in vLLM in a fresh interpreter (vLLM must not start in an importing/forked
    context, and a normal interpreter exit is what shuts its engine processes down) and generate
    a few tokens greedily. Returns the text; raises RuntimeError with vLLM's output on failure."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    proc = subprocess.run(
        [sys.executable, "-m", "trainer_service.tiny_model", str(path), prompt],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("DUET_VLLM_OUTPUT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"vLLM failed on {path} (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("DUET_VLLM_OUTPUT "))


if __name__ == "__main__":
    import sys

    print("DUET_VLLM_OUTPUT " + json.dumps(_vllm_generate(sys.argv[1], sys.argv[2])), flush=True)
