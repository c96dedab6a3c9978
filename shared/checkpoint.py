"""The checkpoint protocol shared by trainer and worker.

A checkpoint directory is *complete* when either
  * duet's marker `duet_checkpoint.json` is present (the trainer writes it last, atomically, after
    every file it lists is flushed), and the files it lists have the recorded sizes; or
  * (checkpoints from any HF/TRL trainer without our marker) `config.json` parses, every safetensors
    shard named by the index exists with a header that parses, and -- checked by the caller across
    two scans -- nothing changed (`stat_signature`).
A LoRA checkpoint is a PEFT adapter dir: `adapter_config.json` + `adapter_model.safetensors`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

MARKER_NAME = "duet_checkpoint.json"
MARKER_VERSION = 1

# Files evaluation needs; optimizer/scheduler/rng state may be written after the marker.
EVAL_FILE_PATTERNS = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "adapter_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


# `checkpoint-N` is what HF/TRL trainers (ours included) write; other trainers end names in `step-N`,
# `ckpt_N`, `checkpoint5`, ... The trainer deletes and resumes only its own names (strict); the worker
# evaluates any trainer's (lenient).
_STRICT_STEP_NAME = re.compile(r"^checkpoint-(\d+)$")
_LENIENT_STEP_NAME = re.compile(r"(?:checkpoint|step|ckpt)[-_]?(\d+)$")


class CheckpointError(Exception):
    """A checkpoint directory is unusable; the message names the file and what is wrong."""


class FileEntry(BaseModel):
    path: str  # relative to the checkpoint dir
    size: int
    sha256: str


class CheckpointMarker(BaseModel):
    version: int = MARKER_VERSION
    run: str
    step: int = Field(ge=0)
    epoch: float | None = None
    kind: Literal["full", "lora"]
    base_model: str | None = None
    files: list[FileEntry]
    train_loss: float | None = None
    # The training stage that wrote it ("sft", "grpo"); None in markers written before stages existed.
    algorithm: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def fingerprint(self) -> str:
        """Content fingerprint: hash over the (path, sha256) of every weight file."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.path):
            if f.path.endswith(".safetensors"):
                h.update(f"{f.path}:{f.sha256}\n".encode())
        return h.hexdigest()[:32]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def eval_files(ckpt_dir: Path) -> list[Path]:
    """The files of `ckpt_dir` that evaluation needs, sorted."""
    found: set[Path] = set()
    for pattern in EVAL_FILE_PATTERNS:
        found.update(p for p in ckpt_dir.glob(pattern) if p.is_file())
    return sorted(found)


def detect_kind(ckpt_dir: Path) -> Literal["full", "lora"]:
    return "lora" if (ckpt_dir / "adapter_config.json").is_file() else "full"


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_marker(
    ckpt_dir: Path,
    *,
    run: str,
    step: int,
    kind: Literal["full", "lora"] | None = None,
    epoch: float | None = None,
    base_model: str | None = None,
    train_loss: float | None = None,
    algorithm: str | None = None,
) -> CheckpointMarker:
    """Hash and fsync every eval file, then publish the marker via temp file + fsync + os.replace."""
    ckpt_dir = Path(ckpt_dir)
    entries = []
    for p in eval_files(ckpt_dir):
        with open(p, "rb") as f:  # flush what the writer may have left in the page cache
            os.fsync(f.fileno())
        entries.append(FileEntry(path=p.name, size=p.stat().st_size, sha256=sha256_file(p)))
    if not any(e.path.endswith(".safetensors") for e in entries):
        raise CheckpointError(f"{ckpt_dir}: no *.safetensors weights to publish")
    marker = CheckpointMarker(
        run=run,
        step=step,
        epoch=epoch,
        kind=kind or detect_kind(ckpt_dir),
        base_model=base_model,
        files=entries,
        train_loss=train_loss,
        algorithm=algorithm,
    )
    fd, tmp = tempfile.mkstemp(prefix=".duet_marker.", dir=ckpt_dir)
    try:
        # mkstemp creates 0600; a worker running as another user must be able to read the marker.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(marker.model_dump_json(indent=2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, ckpt_dir / MARKER_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(ckpt_dir)
    return marker


def read_marker(ckpt_dir: Path) -> CheckpointMarker | None:
    p = Path(ckpt_dir) / MARKER_NAME
    if not p.is_file():
        return None
    try:
        return CheckpointMarker.model_validate_json(p.read_text())
    except ValueError as e:
        raise CheckpointError(f"{p}: unreadable marker: {e}") from e


def verify_marker(ckpt_dir: Path, marker: CheckpointMarker, *, hashes: bool = False) -> None:
    """Raise CheckpointError unless every listed file exists with its size (and hash if asked)."""
    for f in marker.files:
        p = Path(ckpt_dir) / f.path
        if not p.is_file():
            raise CheckpointError(f"{p}: listed in {MARKER_NAME} but missing")
        if p.stat().st_size != f.size:
            raise CheckpointError(f"{p}: size {p.stat().st_size} != {f.size} recorded in {MARKER_NAME}")
        if hashes and sha256_file(p) != f.sha256:
            raise CheckpointError(f"{p}: sha256 differs from {MARKER_NAME}")


def read_safetensors_header(path: Path) -> dict:
    """Parse a safetensors header and check the file is as long as the header says."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path}: truncated safetensors (no header length)")
        (n,) = struct.unpack("<Q", raw)
        if n > 100_000_000 or 8 + n > size:
            raise CheckpointError(f"{path}: truncated or corrupt safetensors header")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise CheckpointError(f"{path}: safetensors header is not JSON: {e}") from e
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise CheckpointError(f"{path}: truncated safetensors ({size} bytes, header needs {8 + n + end})")
    return header


def check_hf_checkpoint(ckpt_dir: Path) -> None:
    """Structural completeness of a checkpoint without our marker. Raises CheckpointError."""
    ckpt_dir = Path(ckpt_dir)
    if detect_kind(ckpt_dir) == "lora":
        try:
            json.loads((ckpt_dir / "adapter_config.json").read_text())
        except ValueError as e:
            raise CheckpointError(f"{ckpt_dir / 'adapter_config.json'}: not JSON: {e}") from e
        shards = [ckpt_dir / "adapter_model.safetensors"]
    else:
        cfg = ckpt_dir / "config.json"
        if not cfg.is_file():
            raise CheckpointError(f"{cfg}: missing")
        try:
            json.loads(cfg.read_text())
        except ValueError as e:
            raise CheckpointError(f"{cfg}: not JSON: {e}") from e
        index = ckpt_dir / "model.safetensors.index.json"
        if index.is_file():
            try:
                names = set(json.loads(index.read_text())["weight_map"].values())
            except (ValueError, KeyError) as e:
                raise CheckpointError(f"{index}: unreadable index: {e}") from e
            shards = [ckpt_dir / n for n in sorted(names)]
        else:
            shards = [ckpt_dir / "model.safetensors"]
    for shard in shards:
        if not shard.is_file():
            raise CheckpointError(f"{shard}: missing weights shard")
        read_safetensors_header(shard)


def check_safe_to_load(ckpt_dir: Path) -> None:
    """Refuse checkpoints that would run code when loaded (custom modeling code, pickle weights)."""
    ckpt_dir = Path(ckpt_dir)
    cfg = ckpt_dir / "config.json"
    if cfg.is_file():
        try:
            conf = json.loads(cfg.read_text())
        except ValueError as e:
            raise CheckpointError(f"{cfg}: not JSON: {e}") from e
        if "auto_map" in conf:
            raise CheckpointError(f"{cfg}: has auto_map (custom code); refused, trust_remote_code stays off")
    has_st = any(ckpt_dir.glob("*.safetensors"))
    pickles = [
        p.name
        for p in ckpt_dir.iterdir()
        if p.suffix in (".bin", ".pt", ".pth", ".pkl")
        and p.name not in ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth")
    ]
    if pickles and not has_st:
        raise CheckpointError(
            f"{ckpt_dir}: pickle-only weights ({', '.join(sorted(pickles))}); refused, convert to safetensors"
        )


def stat_signature(ckpt_dir: Path) -> tuple:
    """Cheap signature (names, sizes, mtimes) used to check that a dir did not change between scans."""
    return tuple(
        sorted(
            (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(ckpt_dir).iterdir() if p.is_file()
        )
    )


def content_fingerprint(ckpt_dir: Path) -> str:
    """Fingerprint from the marker when present, else from hashing the weight files."""
    marker = read_marker(ckpt_dir)
    if marker is not None:
        return marker.fingerprint()
    h = hashlib.sha256()
    for p in sorted(Path(ckpt_dir).glob("*.safetensors")):
        h.update(f"{p.name}:{sha256_file(p)}\n".encode())
    return h.hexdigest()[:32]


def checkpoint_step(path: Path | str, *, strict: bool = True) -> int | None:
    """The step N a checkpoint directory's name carries, else None.

    strict: only `checkpoint-N` exactly (directories a HF/TRL trainer owns, safe to delete or resume
    from). Not strict: also names other trainers write that end in `step-N`, `ckpt_N`, `checkpointN`.
    """
    pattern = _STRICT_STEP_NAME if strict else _LENIENT_STEP_NAME
    m = pattern.search(Path(path).name)
    return int(m.group(1)) if m else None


def published_checkpoints(output_dir: Path | str) -> list[tuple[int, Path]]:
    """(step, dir) of every `checkpoint-N` under `output_dir` with a readable marker, by step.
    Directories without one may be mid-save: callers must leave them alone."""
    out: list[tuple[int, Path]] = []
    root = Path(output_dir)
    if not root.is_dir():
        return out
    for d in root.iterdir():
        step = checkpoint_step(d)
        if step is None or not d.is_dir():
            continue
        try:
            if read_marker(d) is None:
                continue
        except CheckpointError:
            continue
        out.append((step, d))
    return sorted(out)
