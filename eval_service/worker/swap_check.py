"""Check that an in-place weight swap really took.

vLLM has had bugs where `reload_weights` returns but the engine keeps serving the old weights, so
after every swap we read a few parameters back from the engine (a function run on each vLLM worker
through `collective_rpc`) and compare them with the same tensors read from the checkpoint's
safetensors files. Only unfused parameters are probed (embeddings, norms, lm_head): vLLM fuses
q/k/v and gate/up and, on CPU, repacks linear weights, so those cannot be compared by name.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBE_SUFFIXES = (
    "embed_tokens.weight",
    "lm_head.weight",
    "model.norm.weight",
    "layers.0.input_layernorm.weight",
)
PROBE_ROWS = 16
LM_HEAD = "lm_head.weight"


@dataclass(frozen=True)
class SwapCheck:
    verified: bool | None  # None: nothing comparable (e.g. an exotic architecture)
    compared: list[str]
    mismatched: list[str]


def _stats(t: Any) -> tuple[float, float]:
    """Plain sum and position-weighted sum: the second catches permuted/shifted rows."""
    import torch

    flat = t.detach().reshape(-1).to(torch.float64)
    w = torch.arange(1, flat.numel() + 1, dtype=torch.float64) / max(flat.numel(), 1)
    return float(flat.sum()), float((flat * w).sum())


def engine_probe(worker: Any, names: list[str], rows: int = PROBE_ROWS) -> dict[str, Any]:
    """Runs inside a vLLM worker process (`collective_rpc`): stats of the first rows of params."""
    model = worker.model_runner.get_model()
    # remove_duplicate=False: a tied lm_head shows up under its own name, so a broken tie is seen
    params = {n.replace(".base_layer.", "."): p for n, p in model.named_parameters(remove_duplicate=False)}
    out: dict[str, Any] = {}
    for name in names:
        p = params.get(name)
        if p is None or p.numel() == 0:  # absent, or repacked into a kernel format
            continue
        sl = p.data[: min(rows, p.shape[0])].cpu()
        out[name] = {
            "dtype": str(sl.dtype).removeprefix("torch."),
            "shape": list(sl.shape),
            "stats": _stats(sl),
        }
    return out


def _safetensors_index(ckpt: Path) -> dict[str, Path]:
    index = ckpt / "model.safetensors.index.json"
    if index.is_file():
        return {k: ckpt / v for k, v in json.loads(index.read_text())["weight_map"].items()}
    from safetensors import safe_open

    out: dict[str, Path] = {}
    for f in sorted(ckpt.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            out.update(dict.fromkeys(st.keys(), f))
    return out


def ties_word_embeddings(ckpt: Path) -> bool:
    """True when the checkpoint's config ties lm_head to the input embedding."""
    try:
        return bool(json.loads((ckpt / "config.json").read_text()).get("tie_word_embeddings", False))
    except (OSError, ValueError):
        return False


def lm_head_key(ckpt: Path, where: dict[str, Path]) -> str | None:
    """The checkpoint tensor that holds lm_head's weights: `lm_head.weight`, or for a tied head
    (saved only once, as the embedding) the embedding's key; None when there is neither."""
    if LM_HEAD in where:
        return LM_HEAD
    if ties_word_embeddings(ckpt):
        return next((k for k in where if k.endswith("embed_tokens.weight")), None)
    return None


def _probe_keys(ckpt: Path) -> dict[str, tuple[str, Path]]:
    """Engine parameter name -> (checkpoint key, file) for every probed parameter."""
    where = _safetensors_index(ckpt)
    keys = {k: (k, f) for k, f in where.items() if k.endswith(PROBE_SUFFIXES)}
    head = lm_head_key(ckpt, where)
    if head is not None:
        keys[LM_HEAD] = (head, where[head])
    return keys


def probe_names(ckpt: Path) -> list[str]:
    return list(_probe_keys(ckpt))


def checkpoint_probe(ckpt: Path, engine_side: dict[str, Any], rows: int = PROBE_ROWS) -> dict[str, Any]:
    """The same stats computed from the checkpoint files, cast to the engine's dtype first."""
    import torch
    from safetensors import safe_open

    keys = _probe_keys(ckpt)
    out: dict[str, Any] = {}
    for name, eng in engine_side.items():
        if name not in keys:
            continue
        key, file = keys[name]
        with safe_open(str(file), framework="pt") as st:
            sl = st.get_slice(key)
            n0 = min(rows, sl.get_shape()[0])
            t = sl[:n0].to(getattr(torch, eng["dtype"]))
        out[name] = {"shape": list(t.shape), "stats": _stats(t)}
    return out


def compare(engine_side: dict[str, Any], ckpt_side: dict[str, Any], rel: float = 1e-6) -> SwapCheck:
    compared, bad = [], []
    for name, ck in ckpt_side.items():
        eng = engine_side[name]
        compared.append(name)
        # A padded vocab makes the engine tensor wider only past the rows we read: shapes must match.
        same = eng["shape"] == ck["shape"] and all(
            math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
            for a, b in zip(eng["stats"], ck["stats"], strict=True)
        )
        if not same:
            bad.append(name)
    return SwapCheck(verified=(not bad) if compared else None, compared=compared, mismatched=bad)


def verify_swap(llm: Any, ckpt: Path) -> SwapCheck:
    """Read the probe parameters back from a live `vllm.LLM` and compare them with `ckpt`."""
    names = probe_names(ckpt)
    if not names:
        return SwapCheck(verified=None, compared=[], mismatched=[])
    engine_side = llm.collective_rpc(engine_probe, args=(names,))[0]
    return compare(engine_side, checkpoint_probe(ckpt, engine_side))


# --- functional probe: linear layers are repacked into kernel formats, so compare what they compute

LINEAR_SUFFIXES = (
    "mlp.down_proj.weight",
    "self_attn.o_proj.weight",
    "self_attn.q_proj.weight",
    "mlp.gate_proj.weight",
)
# vLLM fuses these checkpoint tensors into one module; the reference output is x @ cat(parts).T
FUSED = {
    "self_attn.q_proj": ("self_attn.qkv_proj", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
    "mlp.gate_proj": ("mlp.gate_up_proj", ("mlp.gate_proj", "mlp.up_proj")),
}


def _fused(name: str) -> tuple[str, list[str]]:
    """Engine module name and the checkpoint weight keys it computes with."""
    for part, (fused, parts) in FUSED.items():
        if name.endswith(part):
            prefix = name.removesuffix(part)
            return prefix + fused, [prefix + p + ".weight" for p in parts]
    return name, [name + ".weight"]


def _probe_input(rows: int, in_features: int, dtype: Any) -> Any:
    import torch

    g = torch.Generator().manual_seed(1234)
    return torch.randn(rows, in_features, generator=g, dtype=torch.float32).to(dtype)


def engine_linear_probe(worker: Any, modules: list[str], rows: int = 2) -> dict[str, Any]:
    """Runs inside a vLLM worker: the output of each named linear module on a fixed input."""
    import torch

    model = worker.model_runner.get_model()
    out: dict[str, Any] = {}
    with torch.inference_mode():
        for name in modules:
            try:
                mod = model.get_submodule(name)
            except AttributeError:
                continue
            mod = getattr(mod, "base_layer", mod)
            in_features = getattr(mod, "input_size_per_partition", None) or getattr(mod, "input_size", None)
            dtype = next((p.dtype for p in mod.parameters() if p.is_floating_point()), torch.float32)
            if in_features is None:
                continue
            dev = next(iter(mod.parameters())).device
            y = mod(_probe_input(rows, in_features, dtype).to(dev))
            y = y[0] if isinstance(y, tuple) else y
            out[name] = {"dtype": str(dtype).removeprefix("torch."), "y": y.float().cpu().tolist()}
    return out


def checkpoint_linear_probe(
    ckpt: Path, names: list[str], engine_side: dict[str, Any], rows: int = 2
) -> dict[str, float]:
    """Relative error between the engine's outputs and x @ W.T with W read from the checkpoint."""
    import torch
    from safetensors import safe_open

    where = _safetensors_index(ckpt)
    errs: dict[str, float] = {}
    for ck_name, (eng_name, keys) in {n: _fused(n) for n in names}.items():
        eng = engine_side.get(eng_name)
        if eng is None or any(k not in where for k in keys):
            continue
        parts, biases = [], []
        for k in keys:
            with safe_open(str(where[k]), framework="pt") as st:
                parts.append(st.get_tensor(k))
            bias = k.removesuffix(".weight") + ".bias"  # Qwen2's q/k/v carry biases
            if bias in where:
                with safe_open(str(where[bias]), framework="pt") as st:
                    biases.append(st.get_tensor(bias))
        w = torch.cat(parts, dim=0)
        name = eng_name
        del ck_name
        dtype = getattr(torch, eng["dtype"])
        x = _probe_input(rows, w.shape[1], dtype).float()
        ref = x @ w.to(dtype).float().T
        if biases and len(biases) == len(parts):
            ref = ref + torch.cat(biases).to(dtype).float()
        got = torch.tensor(eng["y"])
        errs[name] = (
            float((got - ref).norm() / ref.norm().clamp_min(1e-12))
            if got.shape == ref.shape
            else float("inf")
        )
    return errs


def linear_modules(ckpt: Path) -> list[str]:
    """Checkpoint module names to probe: every kind of linear in the first and the last layer."""
    names = sorted(k.removesuffix(".weight") for k in _safetensors_index(ckpt) if k.endswith(LINEAR_SUFFIXES))
    layers = sorted({n.split(".layers.")[1].split(".")[0] for n in names if ".layers." in n}, key=int)
    keep = {layers[0], layers[-1]} if layers else set()
    return [n for n in names if ".layers." not in n or n.split(".layers.")[1].split(".")[0] in keep]


def verify_swap_full(llm: Any, ckpt: Path, tol: float = 2e-2) -> SwapCheck:
    """Parameter read-back plus the functional linear-layer probe."""
    check = verify_swap(llm, ckpt)
    mods = linear_modules(ckpt)
    if not mods:
        return check
    engine_side = llm.collective_rpc(engine_linear_probe, args=([_fused(m)[0] for m in mods],))[0]
    errs = checkpoint_linear_probe(ckpt, mods, engine_side)
    logit_err = checkpoint_logits_error(ckpt, llm.collective_rpc(engine_logits_probe)[0])
    if logit_err is not None:
        errs["logits"] = logit_err
    bad = [f"{n} (rel err {e:.3g})" for n, e in errs.items() if not e <= tol]
    compared, mismatched = check.compared + list(errs), check.mismatched + bad
    return SwapCheck(
        verified=(not mismatched) if compared else None, compared=compared, mismatched=mismatched
    )


def engine_logits_probe(worker: Any, rows: int = 2, cols: int = 4096) -> dict[str, Any]:
    """Runs inside a vLLM worker: logits of fixed hidden states (exercises the packed lm_head)."""
    import torch

    model = worker.model_runner.get_model()
    embed = model.model.embed_tokens
    embed = getattr(embed, "base_layer", embed)
    dtype = embed.weight.dtype
    with torch.inference_mode():
        h = _probe_input(rows, embed.weight.shape[1], dtype).to(embed.weight.device)
        head = getattr(model.lm_head, "base_layer", model.lm_head)
        logits = head.quant_method.apply(head, h)  # what the logits processor runs, minus LoRA
    return {"dtype": str(dtype).removeprefix("torch."), "y": logits[:, :cols].float().cpu().tolist()}


def checkpoint_logits_error(ckpt: Path, engine_side: dict[str, Any]) -> float | None:
    import torch
    from safetensors import safe_open

    where = _safetensors_index(ckpt)
    key = lm_head_key(ckpt, where)
    if key is None:
        return None
    got = torch.tensor(engine_side["y"])
    dtype = getattr(torch, engine_side["dtype"])
    with safe_open(str(where[key]), framework="pt") as st:
        sl = st.get_slice(key)
        w = sl[: got.shape[1]].to(dtype).float()
    ref = _probe_input(got.shape[0], w.shape[1], dtype).float() @ w.T
    got = got[:, : ref.shape[1]]  # the engine pads the vocab
    if ref.shape != got.shape:
        return float("inf")
    return float((got - ref).norm() / ref.norm().clamp_min(1e-12))


def refresh_lm_head(worker: Any) -> bool:
    """Runs inside a vLLM worker after a reload. A tied lm_head is never "loaded" itself, so the
    layer-wise reload skips its post-load step and a kernel-packed copy (vLLM CPU) keeps the old
    weights: redo that step from the (reloaded, shared) weight."""
    model = worker.model_runner.get_model()
    head = getattr(model, "lm_head", None)
    method = getattr(head, "quant_method", None)
    if head is None or not hasattr(method, "process_weights_after_loading"):
        return False
    method.process_weights_after_loading(head)
    return True
