"""The train config: one model, read from YAML, then env `DUET_TRAIN_*`, then `--key value` flags.

Keys use TRL's `SFTConfig` spelling (learning_rate, max_steps, save_steps, ...) plus duet's own
(run_name, task, ledger_url, retention, lora). Every check runs here, before any model is loaded,
and an error names the key and what is allowed.
"""

from __future__ import annotations

import difflib
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from shared.config import ClientSettings
from shared.schemas import Algorithm  # the training stage; one enum for trainer and ledger

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)?$")
_RUN_NAME = re.compile(r"^[A-Za-z0-9._\-]+$")


class ConfigError(ValueError):
    """The config is invalid; the message names the key(s) and what is allowed."""


class LoraSettings(BaseModel):
    """PEFT LoRA; presence of the `lora:` block switches from full fine-tuning to adapters."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # Attention and MLP projections of Llama/Qwen-style models; "all-linear" lets PEFT pick.
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    modules_to_save: list[str] | None = None
    bias: Literal["none", "all", "lora_only"] = "none"

    @field_validator("target_modules")
    @classmethod
    def _non_empty(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, list) and not v:
            raise ValueError("give at least one module name, or 'all-linear'")
        return v

    @model_validator(mode="after")
    def _servable_by_vllm(self) -> LoraSettings:
        # the evaluator serves adapters with vLLM: refuse what it cannot load before training them
        from shared.lora import check_lora_settings

        check_lora_settings(self.r, self.modules_to_save, "lora")
        return self


class RetentionSettings(BaseModel):
    """duet's checkpoint rotation (HF's save_total_limit could delete a checkpoint under eval)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    keep_last: int = Field(3, ge=1)
    keep_best: int = Field(1, ge=0)
    # `eval/<entry>/<metric>` ranks by one suite entry's metric (eval/math500/accuracy);
    # `eval/<metric>` by the headline's: the suite's first entry, or the trainer's `task`.
    best_metric: str = Field("eval/accuracy", pattern=r"^eval/.+")
    best_mode: Literal["max", "min"] = "max"
    # The eval suite the worker runs on this run: a checkpoint goes only once every entry due for
    # it (by cadence) has a final result. None: the trainer's `task` is due on every checkpoint.
    suite: Path | None = None
    # True: a checkpoint is deleted only once its due evals finished (done or dead); False: only
    # once no job is queued or leased on it.
    require_eval: bool = True

    @model_validator(mode="after")
    def _best_metric_names_an_entry(self) -> RetentionSettings:
        from shared.suite import RESERVED_NAMES, SuiteError, load_suite

        head, _, rest = self.best_metric.removeprefix("eval/").partition("/")
        if self.suite is None:
            if rest and head not in RESERVED_NAMES:
                raise ValueError(
                    f"best_metric {self.best_metric!r} names suite entry {head!r} but retention.suite "
                    "is not set: set it, or rank by the task's metric as eval/<metric>"
                )
            return self
        try:
            suite = load_suite(self.suite)
        except SuiteError as e:
            raise ValueError(f"suite: {e}") from None
        names = [e.name for e in suite.entries]
        if rest and head not in names and head not in RESERVED_NAMES:
            raise ValueError(
                f"best_metric {self.best_metric!r}: {head!r} is not an entry of {self.suite} "
                f"(entries: {', '.join(names)})"
            )
        return self


class RewardName(StrEnum):
    """GRPO rewards, each a verdict of duet's grader (trainer_service/rewards.py)."""

    strict = "strict"  # format and answer (CS336's r1_zero reward; the eval's `correct`)
    format = "format"  # format only
    answer = "answer"  # answer only, whatever the format


class VllmMode(StrEnum):
    colocate = "colocate"  # vLLM inside the trainer process, on its GPU
    server = "server"  # a separate `trl vllm-serve`


class RewardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RewardName
    weight: float = Field(1.0, ge=0, allow_inf_nan=False)


# Keys that only mean something with `algorithm: grpo`.
GRPO_KEYS = (
    "num_generations",
    "max_completion_length",
    "beta",
    "temperature",
    "rewards",
    "use_vllm",
    "vllm_mode",
    "vllm_gpu_memory_utilization",
    "grpo_args",
    "init_from",
    "init_from_best",
    "init_from_step",
    "continue_run",
)


class TrainConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DUET_TRAIN_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    # --- what to train -----------------------------------------------------------------------
    model: str = Field(description="local model dir or hub id")
    torch_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    load_in_4bit: bool = False  # QLoRA: needs `lora`, bitsandbytes and a CUDA GPU
    task: str = Field("ones_digit", description="a shared.tasks task; `custom` reads a file/HF dataset")
    task_options: dict[str, Any] = Field(default_factory=dict)  # e.g. custom: path + field mapping
    train_split: str = "train"
    train_limit: int | None = Field(None, ge=1)
    lora: LoraSettings | None = None

    # --- TRL SFTConfig fields (same names) -----------------------------------------------------
    output_dir: str = "runs/default"
    learning_rate: float = Field(2e-5, gt=0)
    per_device_train_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    num_train_epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1)  # -1: run num_train_epochs
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    warmup_steps: int | None = Field(None, ge=0)
    lr_scheduler_type: Literal[
        "linear", "cosine", "cosine_with_min_lr", "constant", "constant_with_warmup", "inverse_sqrt"
    ] = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    bf16: bool = False
    gradient_checkpointing: bool = False
    max_length: int | None = Field(1024, ge=8)
    completion_only_loss: bool = True
    save_steps: int = Field(100, ge=1)
    seed: int = 0
    logging_steps: int = Field(10, ge=1)
    dataloader_num_workers: int = Field(0, ge=0)
    # Any other SFTConfig field, checked against TRL's dataclass before the model loads.
    sft_args: dict[str, Any] = Field(default_factory=dict)

    # --- GRPO (algorithm: grpo): TRL GRPOConfig fields (same names), see trainer_service/grpo.py ---
    algorithm: Algorithm = Algorithm.sft
    num_generations: int = Field(8, ge=2)  # group size
    max_completion_length: int = Field(256, ge=1)
    beta: float = Field(0.0, ge=0)  # KL coefficient; 0 loads no reference model
    temperature: float = Field(1.0, gt=0)
    rewards: list[RewardSpec] = Field(default_factory=lambda: [RewardSpec(name=RewardName.strict)])
    use_vllm: bool = False  # rollouts in vLLM (CUDA only); else transformers generate
    vllm_mode: VllmMode = VllmMode.colocate
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    grpo_args: dict[str, Any] = Field(default_factory=dict)  # any other GRPOConfig field
    # Where GRPO starts: a checkpoint dir, or the best checkpoint (eval/accuracy) of a ledger run;
    # init_from_step pins that run's checkpoint at one step instead of its best (the tiny demo's
    # GRPO stage starts half-way through SFT: docs/benchmarks.md, "GRPO demo").
    init_from: str | None = None
    init_from_best: str | None = None
    init_from_step: int | None = Field(None, ge=0)
    # True: the same run, steps continue after the parent's last step; False: a new run naming its parent.
    continue_run: bool = True

    # --- duet ----------------------------------------------------------------------------------
    run_name: str | None = None  # default: the output dir's name
    ledger_url: str | None = None  # default: DUET_API_URL
    ledger_token: str | None = None  # default: DUET_API_TOKEN
    report: bool = True  # False: no ledger at all (markers are still written)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    reporter_flush_timeout_s: float = Field(30.0, ge=0)

    @field_validator("model")
    @classmethod
    def _model_ref(cls, v: str) -> str:
        p = Path(v).expanduser()
        if p.exists():
            if not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file():
                raise ValueError(f"{p} exists but has no config.json: not a HF model dir")
            return str(p.resolve())
        if v.startswith((".", "/", "~")) or not _HUB_ID.match(v):
            raise ValueError(f"{v!r}: no such model dir (and not a hub id like 'Qwen/Qwen2.5-Math-1.5B')")
        return v

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, v: str | None) -> str | None:
        if v is not None and not _RUN_NAME.match(v):
            raise ValueError("only letters, digits, '.', '_' and '-' are allowed")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.warmup_ratio is not None and self.warmup_steps is not None:
            raise ValueError("warmup_ratio and warmup_steps: give one, not both")
        if self.load_in_4bit and self.lora is None:
            raise ValueError(
                "load_in_4bit (QLoRA) needs a `lora:` block; 4-bit weights cannot be fully fine-tuned"
            )
        if self.bf16 and self.torch_dtype == "float16":
            raise ValueError("bf16: true conflicts with torch_dtype: float16")
        if self.algorithm is Algorithm.grpo:
            from trainer_service.grpo import check_grpo_fields

            check_grpo_fields(self)
        elif stray := [k for k in GRPO_KEYS if k in self.model_fields_set]:
            raise ValueError(f"{', '.join(stray)}: only used with algorithm: grpo")
        return self

    # --- derived ---------------------------------------------------------------------------------

    @property
    def resolved_run_name(self) -> str:
        if self.run_name:
            return self.run_name
        name = re.sub(r"[^A-Za-z0-9._\-]+", "-", Path(self.output_dir).resolve().name).strip("-")
        return name or "run"

    @property
    def kind(self) -> Literal["full", "lora"]:
        return "lora" if self.lora is not None else "full"

    def client_settings(self) -> ClientSettings:
        settings = ClientSettings()
        return settings.model_copy(
            update={
                "api_url": self.ledger_url or settings.api_url,
                "api_token": self.ledger_token if self.ledger_token is not None else settings.api_token,
            }
        )

    def public_dict(self) -> dict[str, Any]:
        """The resolved config as stored with the run in the ledger (the token left out)."""
        d = self.model_dump(mode="json")
        d["ledger_token"] = None if self.ledger_token is None else "***"
        d["run_name"] = self.resolved_run_name
        return d


# --- loading -------------------------------------------------------------------------------------


def _nested_models() -> dict[str, type[BaseModel]]:
    return {"lora": LoraSettings, "retention": RetentionSettings}


def _check_keys(data: dict[str, Any], where: str) -> None:
    """Unknown keys -> one error naming each, with the closest known keys."""
    problems = []
    for key, value in data.items():
        if key not in TrainConfig.model_fields:
            problems.append(_unknown(key, list(TrainConfig.model_fields), ""))
            continue
        sub = _nested_models().get(key)
        if sub is not None and isinstance(value, dict):
            for k in value:
                if k not in sub.model_fields:
                    problems.append(_unknown(k, list(sub.model_fields), f"{key}."))
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))


def _unknown(key: str, known: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(prefix + c for c in close)}?)" if close else ""
    return f"unknown key '{prefix}{key}'{hint}"


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`--key value` / `--key=value` / `--lora.r 8` pairs -> nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        if not tok.startswith("--") or len(tok) == 2:
            raise ConfigError(f"expected --key value, got {tok!r}")
        if "=" in tok:
            key, raw = tok[2:].split("=", 1)
            i += 1
        else:
            key = tok[2:]
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raw = "true"  # a bare flag, e.g. --bf16
                i += 1
            else:
                raw = args[i + 1]
                i += 2
        key = key.replace("-", "_")
        value = yaml.safe_load(raw) if raw != "" else ""
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def format_validation_error(e: ValidationError, where: str) -> str:
    lines = [f"invalid config ({where}):"]
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(config)"
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  {loc}: {msg}" + (f" (got {err['input']!r})" if err["type"] != "missing" else ""))
    return "\n".join(lines)


def load_config(path: Path | str | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """YAML file < env DUET_TRAIN_* < overrides (CLI flags). Raises ConfigError naming the key."""
    data: dict[str, Any] = {}
    where = "flags"
    if path is not None:
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of keys, got {type(loaded).__name__}")
        _check_keys(loaded, str(path))
        data = loaded
    overrides = overrides or {}
    _check_keys(overrides, "command-line flags")
    env_values = EnvSettingsSource(TrainConfig)()
    merged = _deep_merge(_deep_merge(data, env_values), overrides)
    try:
        return TrainConfig(**merged)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, where)) from e
