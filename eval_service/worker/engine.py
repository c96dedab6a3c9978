"""Generation backends: one long-lived engine per worker that is pointed at checkpoint after checkpoint.

`VLLMBackend` keeps one `vllm.LLM`; a full checkpoint of the same architecture and tokenizer is
swapped in place (`reload_weights`) and the swap is verified (see swap_check); anything else --
a different architecture or tokenizer, a failed or unverified swap -- rebuilds the engine. LoRA
adapters are served through vLLM's LoRA support on the loaded base, without reload.
`HFBackend` (hf_backend.py) is plain transformers `generate` (torch only): for hosts without vLLM
and as a cross-check. torch/vllm/transformers are imported lazily so that importing this module is
cheap.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from eval_service.worker.config import WorkerSettings
from shared.checkpoint import CheckpointError
from shared.schemas import SamplingSpec

log = logging.getLogger("duet.worker.engine")

# config.json keys that do not change the computation graph
_CONFIG_IGNORE = {
    "transformers_version",
    "_name_or_path",
    "use_cache",
    "dtype",
    "torch_dtype",
    "architectures_version",
}


@dataclass(frozen=True)
class Target:
    """What the engine should serve: full weights at `path`, or a LoRA adapter at `path` over `base`."""

    path: Path
    kind: str = "full"  # "full" | "lora"
    base: Path | None = None


@dataclass
class Completion:
    text: str
    num_tokens: int
    finish_reason: str | None
    top_logprobs: list[dict[int, float]] = field(default_factory=list)


class LoadError(Exception):
    """The checkpoint could not be loaded into the engine (the checkpoint is at fault, not the job)."""


class Backend(Protocol):
    name: str

    def load(self, target: Target) -> dict[str, Any]:
        """Make the engine serve `target`; returns the engine event for CompleteRequest.info."""
        ...

    def generate(self, prompts: list[str], sampling: SamplingSpec) -> list[list[Completion]]: ...

    def recover(self) -> dict[str, Any]:
        """Bring the engine back to the last weights that loaded fine (after a failed load)."""
        ...

    def close(self) -> None: ...


def arch_signature(model_dir: Path) -> dict[str, Any]:
    cfg = Path(model_dir) / "config.json"
    try:
        conf = json.loads(cfg.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{cfg}: unreadable: {e}") from e
    return {k: v for k, v in conf.items() if k not in _CONFIG_IGNORE}


# Bookkeeping transformers writes into tokenizer_config.json when it re-saves a tokenizer (the
# trainer saves one into every checkpoint); they do not change how text is tokenized.
_TOKENIZER_CONFIG_IGNORE = {"is_local", "local_files_only", "name_or_path", "_commit_hash", "tokenizer_file"}


def tokenizer_hash(model_dir: Path) -> str:
    """Hash of what decides tokenization and prompt rendering, insensitive to re-save noise."""
    h = hashlib.sha256()
    for name in (
        "tokenizer.json",
        "tokenizer.model",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "chat_template.jinja",
    ):
        p = Path(model_dir) / name
        if not p.is_file():
            continue
        data = p.read_bytes()
        if name.endswith(".json"):
            try:
                obj = json.loads(data)
            except ValueError:
                pass  # hash the raw bytes; a broken file then differs from any good one
            else:
                if name == "tokenizer_config.json":
                    obj = {k: v for k, v in obj.items() if k not in _TOKENIZER_CONFIG_IGNORE}
                data = json.dumps(obj, sort_keys=True).encode()
        h.update(name.encode() + b"\0" + data)
    return h.hexdigest()[:16]


def lora_base(target: Target, fallback: Path | None) -> Path:
    base = target.base or fallback
    if base is None:
        raw = json.loads((target.path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        base = Path(raw) if raw and Path(raw).is_dir() else None
    if base is None:
        raise CheckpointError(
            f"{target.path}: LoRA adapter without a usable base model; pass --base-model "
            "(adapter_config.json base_model_name_or_path is not a local directory)"
        )
    return base


def tokenizer_dir(target: Target, fallback_base: Path | None = None) -> Path:
    """Where `target`'s tokenizer lives: the checkpoint itself (the trainer saves one into every
    checkpoint), or for a LoRA adapter saved without one, its base model (see `lora_base`)."""
    if target.kind == "full" or (target.path / "tokenizer.json").is_file():
        return target.path
    return lora_base(target, fallback_base)


def lora_rank(adapter: Path) -> int:
    conf = json.loads((adapter / "adapter_config.json").read_text())
    return int(conf.get("r", 8))


class VLLMBackend:
    name = "vllm"

    def __init__(self, settings: WorkerSettings):
        self.settings = settings
        self.llm: Any = None
        self.model_dir: Path | None = None  # what the engine was built from (arch + tokenizer)
        self.weights: Path | None = None  # full weights currently loaded
        self.last_good: Path | None = None
        self._lora: Any = None
        self._lora_ids = 0
        self._recovered: dict[str, Any] | None = None  # reported on the next job's info

    # --- engine lifecycle ---------------------------------------------------------------------

    def _build(self, model_dir: Path) -> None:
        # Our own process: the verify function is sent by value to the vLLM workers.
        os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        from vllm import LLM

        self._shutdown()
        kw: dict[str, Any] = {}
        if self.settings.max_model_len:
            kw["max_model_len"] = self.settings.max_model_len
        if self.settings.enable_lora:
            kw.update(enable_lora=True, max_lora_rank=self.settings.max_lora_rank, max_loras=1)
        self.llm = LLM(
            model=str(model_dir),
            tokenizer=str(model_dir),
            dtype=self.settings.dtype,
            seed=self.settings.seed,
            gpu_memory_utilization=self.settings.gpu_memory_utilization,
            enforce_eager=self.settings.enforce_eager,
            trust_remote_code=False,
            **kw,
        )
        self.model_dir = self.weights = Path(model_dir)

    def _shutdown(self) -> None:
        if self.llm is None:
            return
        with contextlib.suppress(Exception):
            self.llm.llm_engine.engine_core.shutdown()
        self.llm = None
        gc.collect()

    def close(self) -> None:
        self._shutdown()

    def _rebuild(self, model_dir: Path, event: str, reason: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            self._build(model_dir)
        except Exception as e:
            self.llm = self.weights = None
            raise LoadError(f"engine build on {model_dir} failed: {type(e).__name__}: {e}") from e
        info = {"engine_event": event, "load_s": round(time.perf_counter() - t0, 3)}
        if reason:
            info["rebuild_reason"] = reason
        log.info("engine %s on %s in %.1fs %s", event, model_dir, info["load_s"], reason)
        return info

    def _load_full(self, path: Path) -> dict[str, Any]:
        if self.llm is None:
            return self._rebuild(path, "initial" if self.last_good is None else "rebuild", "")
        assert self.model_dir is not None
        reason = ""
        if arch_signature(path) != arch_signature(self.model_dir):
            reason = "architecture differs (config.json)"
        elif tokenizer_hash(path) != tokenizer_hash(self.model_dir):
            reason = "tokenizer differs"
        if reason:
            return self._rebuild(path, "rebuild", reason)
        t0 = time.perf_counter()
        try:
            from eval_service.worker.swap_check import refresh_lm_head, ties_word_embeddings

            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})
            refreshed = ties_word_embeddings(path) and all(self.llm.collective_rpc(refresh_lm_head))
            self.llm.reset_prefix_cache()
        except Exception as e:
            log.warning("in-place swap to %s failed (%s); rebuilding", path, e)
            return self._rebuild(path, "rebuild", f"swap failed: {type(e).__name__}: {e}")
        swap_s = time.perf_counter() - t0
        self.weights = path
        info: dict[str, Any] = {"engine_event": "swap", "swap_s": round(swap_s, 4)}
        if refreshed:
            info["lm_head_refreshed"] = True
        if self.settings.verify_swaps:
            from eval_service.worker.swap_check import verify_swap_full

            t1 = time.perf_counter()
            check = verify_swap_full(self.llm, path)
            info.update(swap_verified=check.verified, verify_s=round(time.perf_counter() - t1, 4))
            if check.verified is False:
                log.warning("swap to %s served stale weights (%s); rebuilding", path, check.mismatched)
                out = self._rebuild(path, "rebuild", f"swap not verified: {check.mismatched}")
                return {**out, "swap_verified": False}
        return info

    def load(self, target: Target) -> dict[str, Any]:
        info = self._load(target)
        if self._recovered is not None:
            info["recovered_before"], self._recovered = self._recovered, None
        return info

    def _load(self, target: Target) -> dict[str, Any]:
        from vllm.lora.request import LoRARequest

        if target.kind == "lora":
            base = lora_base(target, self.settings.base_model)
            if not self.settings.enable_lora:
                raise CheckpointError(f"{target.path}: LoRA adapter but the worker runs with enable_lora off")
            if lora_rank(target.path) > self.settings.max_lora_rank:
                raise CheckpointError(
                    f"{target.path / 'adapter_config.json'}: r={lora_rank(target.path)} exceeds "
                    f"max_lora_rank={self.settings.max_lora_rank} (DUET_WORKER_MAX_LORA_RANK)"
                )
            info = {"engine_event": "lora"}
            if self.weights is None or self.weights.resolve() != base.resolve():
                info = {**self._load_full(base), "lora": True}
            self.last_good = base
            self._lora_ids += 1  # a fresh id per job: vLLM caches adapters by id
            self._lora = LoRARequest(f"adapter-{self._lora_ids}", self._lora_ids, str(target.path))
            return info
        self._lora = None
        info = self._load_full(target.path)
        self.last_good = target.path
        return info

    def recover(self) -> dict[str, Any]:
        self._lora = None
        good = self.last_good or self.settings.base_model
        if good is None:
            self._shutdown()
            self.weights = None
            return {"engine_event": "none"}
        self._recovered = self._rebuild(good, "rebuild", "recover after failed load")
        return self._recovered

    # --- generation ---------------------------------------------------------------------------

    def generate(self, prompts: list[str], sampling: SamplingSpec) -> list[list[Completion]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed,
            logprobs=self.settings.top_logprobs if sampling.logprobs else None,
        )
        outs = self.llm.generate(prompts, params, lora_request=self._lora, use_tqdm=False)
        result = []
        for o in outs:
            comps = []
            for c in o.outputs:
                tops = [{tid: lp.logprob for tid, lp in pos.items()} for pos in (c.logprobs or [])]
                comps.append(Completion(c.text, len(c.token_ids), c.finish_reason, tops))
            result.append(comps)
        return result


def make_backend(settings: WorkerSettings) -> Backend:
    if settings.backend == "vllm":
        return VLLMBackend(settings)
    from eval_service.worker.hf_backend import HFBackend

    return HFBackend(settings)
