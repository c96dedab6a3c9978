"""End-to-end canary after a swap: one short text through `llm.generate` itself, compared with a
transformers forward of the checkpoint.

The parameter probes of swap_check call modules eagerly, so they cannot see what a captured CUDA
graph (or any other cached kernel state) computes; a canary through the real generate path can.
vLLM scores the canary's own tokens (prompt logprobs) and greedily extends it by a few tokens
(decode steps, where full CUDA graphs run); transformers then scores that same token sequence in
float32 and the mean absolute difference of the per-token logprobs must be within tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

CANARY_TEXT = "Question: A shop sells 12 apples and then 30 more. How many apples? Answer: 42 apples."
CANARY_MAX_PROMPT_TOKENS = 32
CANARY_NEW_TOKENS = 4
# Mean |logprob difference| allowed: float32 engines agree with the float32 reference to ~1e-5;
# 16-bit engines differ by rounding (typically a few 1e-2). Stale weights differ by far more.
TOLERANCE = {"float32": 5e-3, "bfloat16": 0.15, "float16": 0.1}


@dataclass(frozen=True)
class CanaryCheck:
    ok: bool
    mean_abs_err: float
    max_abs_err: float
    n_tokens: int

    def describe(self) -> str:
        return f"canary mean |dlogprob| {self.mean_abs_err:.3g} (max {self.max_abs_err:.3g}, {self.n_tokens} tokens)"


def engine_dtype(worker: Any) -> str:
    """Runs inside a vLLM worker (`collective_rpc`): the dtype the model computes in."""
    return str(worker.model_runner.model_config.dtype).removeprefix("torch.")


def canary_ids(ckpt: Path) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ckpt)
    return list(tok(CANARY_TEXT)["input_ids"][:CANARY_MAX_PROMPT_TOKENS])


def engine_canary(llm: Any, prompt_ids: list[int]) -> tuple[list[int], list[float]]:
    """(all token ids, the engine's logprob of each token after the first) through `llm.generate`."""
    from vllm import SamplingParams

    params = SamplingParams(
        temperature=0.0, max_tokens=CANARY_NEW_TOKENS, logprobs=0, prompt_logprobs=0, ignore_eos=True
    )
    out = llm.generate([{"prompt_token_ids": prompt_ids}], params, use_tqdm=False)[0]
    comp = out.outputs[0]
    ids = list(prompt_ids) + list(comp.token_ids)
    lps: list[float] = []
    for tok, pos in zip(prompt_ids[1:], (out.prompt_logprobs or [])[1:], strict=True):
        lps.append(pos[tok].logprob)
    for tok, pos in zip(comp.token_ids, comp.logprobs or [], strict=True):
        lps.append(pos[tok].logprob)
    return ids, lps


def reference_logprobs(ckpt: Path, ids: list[int]) -> list[float]:
    """transformers (float32, CPU: the engine owns the accelerator) logprob of ids[1:]."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32, use_safetensors=True)
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()
    lp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    return lp.tolist()


def run_canary(llm: Any, ckpt: Path) -> CanaryCheck:
    prompt = canary_ids(ckpt)
    ids, got = engine_canary(llm, prompt)
    ref = reference_logprobs(ckpt, ids)
    errs = [abs(a - b) for a, b in zip(got, ref, strict=True)]
    dtype = llm.collective_rpc(engine_dtype)[0]
    mean = sum(errs) / len(errs)
    return CanaryCheck(
        ok=mean <= TOLERANCE.get(dtype, 0.15), mean_abs_err=mean, max_abs_err=max(errs), n_tokens=len(errs)
    )
