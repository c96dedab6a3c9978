"""`HFBackend`: plain transformers `generate` (torch only), for hosts without vLLM and as a cross-check
of the vLLM backend. torch/transformers are imported lazily so that importing this module is cheap."""

from __future__ import annotations

import time
from typing import Any

from eval_service.worker.config import WorkerSettings
from eval_service.worker.engine import Completion, LoadError, Target, lora_base, tokenizer_dir
from shared.checkpoint import CheckpointError
from shared.schemas import SamplingSpec


class HFBackend:
    """transformers generate, batched and left-padded; greedy at temperature 0, else sampled."""

    name = "hf"

    def __init__(self, settings: WorkerSettings):
        self.settings = settings
        self.model: Any = None
        self.tok: Any = None
        self.loaded: Target | None = None
        self.last_good: Target | None = None

    def _dtype(self) -> Any:
        import torch

        if self.settings.dtype != "auto":
            return getattr(torch, self.settings.dtype)
        # bf16 on GPUs that have it (what training used there); float32 on CPU, where it is exact
        if self._device().type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32

    def _device(self) -> Any:
        import torch

        if self.settings.hf_device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.settings.hf_device)

    def load(self, target: Target) -> dict[str, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        t0 = time.perf_counter()
        event = "initial" if self.loaded is None else "rebuild"
        try:
            if target.kind == "lora":
                from peft import PeftModel

                base = lora_base(target, self.settings.base_model)
                model = AutoModelForCausalLM.from_pretrained(base, dtype=self._dtype(), use_safetensors=True)
                model = PeftModel.from_pretrained(model, str(target.path))
            else:
                model = AutoModelForCausalLM.from_pretrained(
                    target.path, dtype=self._dtype(), use_safetensors=True
                )
            tok = AutoTokenizer.from_pretrained(tokenizer_dir(target, self.settings.base_model))
        except CheckpointError:
            raise
        except Exception as e:
            raise LoadError(f"loading {target.path} failed: {type(e).__name__}: {e}") from e
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self.model, self.tok, self.loaded = model.to(self._device()).eval(), tok, target
        self.last_good = target
        info = {"engine_event": event, "load_mode": event, "load_s": round(time.perf_counter() - t0, 3)}
        if event == "rebuild":  # plain transformers has no in-place swap: every model is loaded anew
            info["load_reason"] = "hf backend loads every checkpoint from scratch"
        return info

    def recover(self) -> dict[str, Any]:
        return {"engine_event": "none"}  # nothing persistent to repair: the next load starts clean

    def close(self) -> None:
        self.model = None

    def generate(self, prompts: list[str], sampling: SamplingSpec) -> list[list[Completion]]:
        import torch
        from transformers import GenerationConfig

        tok, model = self.tok, self.model
        greedy = sampling.temperature == 0
        cfg = GenerationConfig(
            max_new_tokens=sampling.max_tokens,
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=None,
            num_return_sequences=sampling.n,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            return_dict_in_generate=True,
            output_logits=sampling.logprobs,
        )
        torch.manual_seed(sampling.seed)
        result: list[list[Completion]] = []
        bs = self.settings.hf_batch_size
        for i in range(0, len(prompts), bs):
            enc = tok(prompts[i : i + bs], return_tensors="pt", padding=True).to(model.device)
            with torch.inference_mode():
                out = model.generate(**enc, generation_config=cfg)
            new = out.sequences[:, enc["input_ids"].shape[1] :]
            logits = torch.stack(out.logits, dim=1) if sampling.logprobs else None
            batch: list[Completion] = []
            for r in range(new.shape[0]):
                ids = new[r].tolist()
                stop = ids.index(tok.eos_token_id) if tok.eos_token_id in ids else None
                gen = ids[:stop] if stop is not None else [t for t in ids if t != tok.pad_token_id]
                n_tok = stop + 1 if stop is not None else len(gen)
                tops: list[dict[int, float]] = []
                if logits is not None:
                    lp = torch.log_softmax(logits[r, :n_tok].float(), dim=-1)
                    v, idx = lp.topk(self.settings.top_logprobs, dim=-1)
                    tops = [dict(zip(idx[j].tolist(), v[j].tolist(), strict=True)) for j in range(n_tok)]
                text = tok.decode(gen, skip_special_tokens=True)
                batch.append(Completion(text, n_tok, "stop" if stop is not None else "length", tops))
            for p in range(len(batch) // sampling.n):
                result.append(batch[p * sampling.n : (p + 1) * sampling.n])
        return result
