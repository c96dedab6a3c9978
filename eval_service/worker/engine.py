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

from eval_service.worker.config import WorkerSettings, cuda_available
from shared.checkpoint import CheckpointError
from shared.lora import AdapterRefused, check_adapter
from shared.schemas import LoadMode, SamplingSpec

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


MIN_VLLM_RELOAD = "0.16"  # first vLLM whose reload_weights takes a weights_path (layerwise reload)


class EngineUnsupported(RuntimeError):
    """The installed engine cannot do what the worker needs (and the user did not opt out)."""


def reload_support() -> tuple[bool, str]:
    """(can reload weights in place from a path, vLLM version): signature of the model runner's
    reload_weights, which the workers of every device type inherit."""
    import inspect

    import vllm
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    params = inspect.signature(GPUModelRunner.reload_weights).parameters
    return "weights_path" in params, vllm.__version__


def check_engine(settings: WorkerSettings) -> str | None:
    """At worker start: None when in-place swap works; with --allow-rebuild the reason every load
    will rebuild instead; else EngineUnsupported naming the version found and the minimum."""
    if settings.backend != "vllm":
        return None
    ok, version = reload_support()
    if ok:
        return None
    reason = f"vLLM {version} cannot reload weights in place (needs >= {MIN_VLLM_RELOAD})"
    if settings.allow_rebuild:
        return reason + "; --allow-rebuild: the engine is rebuilt for every checkpoint"
    raise EngineUnsupported(
        f"{reason}: every checkpoint would rebuild the whole engine. Install vllm>={MIN_VLLM_RELOAD} "
        "(duet pins 0.32.0), or pass --allow-rebuild (DUET_WORKER_ALLOW_REBUILD=1) to accept it."
    )


def _mode(event: str, reason: str = "", **extra: Any) -> dict[str, Any]:
    """The engine event of a load, with its LoadMode (and the reason, for a rebuild)."""
    mode = LoadMode(event) if event in LoadMode.__members__ else LoadMode.rebuild
    info: dict[str, Any] = {"engine_event": event, "load_mode": mode.value, **extra}
    if reason:
        info["load_reason"] = info["rebuild_reason"] = reason
    return info


class VLLMBackend:
    name = "vllm"

    def __init__(self, settings: WorkerSettings, rebuild_reason: str | None = None):
        self.settings = settings
        self.rebuild_reason = rebuild_reason  # set: no in-place reload, every load rebuilds
        self.llm: Any = None
        self.lora_on = False
        self.model_dir: Path | None = None  # what the engine was built from (arch + tokenizer)
        self.weights: Path | None = None  # full weights currently loaded
        self.last_good: Path | None = None
        self._lora: Any = None
        self._lora_ids = 0
        self._recovered: dict[str, Any] | None = None  # reported on the next job's info
        self.per_request_seed = True  # False after a CPU generate that had to drop the seed

    # --- engine lifecycle ---------------------------------------------------------------------

    def _build(self, model_dir: Path, lora: bool) -> None:
        # Our own process: the verify function is sent by value to the vLLM workers.
        os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        from vllm import LLM

        self._shutdown()
        kw: dict[str, Any] = {}
        if self.settings.max_model_len:
            kw["max_model_len"] = self.settings.max_model_len
        if self.settings.tensor_parallel_size > 1:
            kw["tensor_parallel_size"] = self.settings.tensor_parallel_size
        if self.settings.data_parallel_size > 1:
            kw["data_parallel_size"] = self.settings.data_parallel_size
        if lora:
            kw.update(enable_lora=True, max_lora_rank=self.settings.max_lora_rank, max_loras=1)
        self.llm = LLM(
            model=str(model_dir),
            tokenizer=str(model_dir),
            dtype=self.settings.dtype,
            seed=self.settings.seed,
            gpu_memory_utilization=self.settings.gpu_memory_utilization,
            enforce_eager=self.settings.resolved_enforce_eager(),
            trust_remote_code=False,
            **kw,
        )
        self.model_dir = self.weights = Path(model_dir)
        self.lora_on = lora

    def _shutdown(self) -> None:
        if self.llm is None:
            return
        with contextlib.suppress(Exception):
            self.llm.llm_engine.engine_core.shutdown()
        self.llm = None
        gc.collect()

    def close(self) -> None:
        self._shutdown()

    def _rebuild(self, model_dir: Path, event: str, reason: str, lora: bool | None = None) -> dict[str, Any]:
        if lora is None:  # keep LoRA on once it is on; configured on from the start
            lora = self.lora_on or bool(self.settings.enable_lora)
        t0 = time.perf_counter()
        try:
            self._build(model_dir, lora)
        except Exception as e:
            self.llm = self.weights = None
            raise LoadError(f"engine build on {model_dir} failed: {type(e).__name__}: {e}") from e
        info = _mode(event, reason, load_s=round(time.perf_counter() - t0, 3))
        info["enforce_eager"] = self.settings.resolved_enforce_eager()  # False: CUDA graphs captured
        log.info("engine %s on %s in %.1fs %s", event, model_dir, info["load_s"], reason)
        return info

    def _reload(self, path: Path) -> None:
        """Reload `path`'s weights into the running engine (tests replace this to inject faults)."""
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})

    def _load_full(self, path: Path) -> dict[str, Any]:
        if self.llm is None:
            event = "initial" if self.last_good is None else "rebuild"
            return self._rebuild(path, event, "" if event == "initial" else "engine was down")
        assert self.model_dir is not None
        reason = self.rebuild_reason or ""
        if not reason and arch_signature(path) != arch_signature(self.model_dir):
            reason = "architecture differs (config.json)"
        elif not reason and tokenizer_hash(path) != tokenizer_hash(self.model_dir):
            reason = "tokenizer differs"
        if reason:
            return self._rebuild(path, "rebuild", reason)
        t0 = time.perf_counter()
        try:
            from eval_service.worker.swap_check import refresh_lm_head, ties_word_embeddings

            self._reload(path)
            refreshed = ties_word_embeddings(path) and all(self.llm.collective_rpc(refresh_lm_head))
            self.llm.reset_prefix_cache()
        except Exception as e:
            log.warning("in-place swap to %s failed (%s); rebuilding", path, e)
            return self._rebuild(path, "rebuild", f"swap failed: {type(e).__name__}: {e}")
        self.weights = path
        info = _mode("swap", swap_s=round(time.perf_counter() - t0, 4))
        if refreshed:
            info["lm_head_refreshed"] = True
        if self.settings.verify_swaps:
            return self._verify(path, info)
        return info

    def _verify(self, path: Path, info: dict[str, Any]) -> dict[str, Any]:
        """Parameter probes, then the canary through generate; either failing rebuilds."""
        from eval_service.worker.canary import run_canary
        from eval_service.worker.swap_check import verify_swap_full

        t1 = time.perf_counter()
        check = verify_swap_full(self.llm, path)
        stale = f"swap not verified: {check.mismatched}" if check.verified is False else ""
        if not stale:
            canary = run_canary(self.llm, path)
            info.update(canary_ok=canary.ok, canary_err=round(canary.mean_abs_err, 6))
            if not canary.ok:
                stale = f"swap served stale weights: {canary.describe()}"
        info.update(swap_verified=not stale, verify_s=round(time.perf_counter() - t1, 4))
        if stale:
            log.warning("swap to %s: %s; rebuilding", path, stale)
            return {**self._rebuild(path, "rebuild", stale), "swap_verified": False}
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
            if self.settings.enable_lora is False:
                raise CheckpointError(
                    f"{target.path}: a LoRA adapter, but the worker runs with LoRA off "
                    "(--no-lora / DUET_WORKER_ENABLE_LORA=0); restart it without that to score adapters"
                )
            try:
                check_adapter(target.path, self.settings.max_lora_rank)
            except AdapterRefused as e:
                raise CheckpointError(str(e)) from None
            if self.llm is None or not self.lora_on:
                # vLLM cannot switch LoRA on in a running engine: build (again) over the base with it
                event = "initial" if self.llm is None and self.last_good is None else "rebuild"
                why = "" if event == "initial" else "a LoRA adapter arrived; rebuilt the engine with LoRA on"
                info = {**self._rebuild(base, event, why, lora=True), "lora": True}
            elif self.weights is None or self.weights.resolve() != base.resolve():
                info = {**self._load_full(base), "lora": True}
            else:
                info = _mode("lora")
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

        seed: int | None = sampling.seed
        if sampling.temperature > 0 and not cuda_available():
            # vLLM 0.32's CPU runner crashes on a seeded request whose sampled token is discarded
            # (chunked prefill: "CPU Generator does not use offset"). Sample from the engine's own
            # seeded generator instead; the runner records this in the result's info.
            seed = None
        self.per_request_seed = seed is not None or sampling.temperature == 0
        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=seed,
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


def make_backend(settings: WorkerSettings, rebuild_reason: str | None = None) -> Backend:
    if settings.backend == "vllm":
        return VLLMBackend(settings, rebuild_reason)
    from eval_service.worker.hf_backend import HFBackend

    return HFBackend(settings)
