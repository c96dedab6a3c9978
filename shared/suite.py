"""Eval suites: a YAML file of named entries, each one eval of every due checkpoint.

    entries:
      - name: math500            # results, metrics and W&B keys are `eval/math500/...`
        task: math               # built-in task, `custom`, or `lm_eval:<harness task>`
        task_options: {path: data/math500.jsonl}
        limit: 500
        max_tokens: 1024
      - name: aime_pass8
        task: custom
        task_options: {path: data/aime.jsonl}
        n: 8
        temperature: 0.6
        every: 5                 # every 5th checkpoint (plus step 0 and the final one)

Cadence: entry `every: k` is due on the k-th, 2k-th, ... checkpoint of the run (counted in step
order, the step-0 baseline not counted), and always on the step-0 baseline and on the final
checkpoint. The first entry is the run's headline: it also keeps the flat `eval/<metric>` names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.grading import GRADER_VERSION
from shared.grading.answer_format import AnswerFormat
from shared.schemas import ENTRY_NAME_PATTERN, EvalSpec, SamplingSpec

RESERVED_NAMES = frozenset({"fail"})  # metric groups that an entry's eval/<name>/ would collide with
LM_EVAL_PREFIX = "lm_eval:"  # task of a harness entry: "lm_eval:<harness task name>"


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file and the field."""


class SuiteEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=ENTRY_NAME_PATTERN)
    task: str = Field(min_length=1)
    task_options: dict[str, Any] = Field(default_factory=dict)
    dataset: str | None = None  # task data reference (file path); None = the task's default
    limit: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=64)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    seed: int = 0
    answer_format: AnswerFormat | None = None  # passed to the task as its `answer_format` option
    every: int = Field(1, ge=1)  # due on every k-th checkpoint

    @field_validator("name")
    @classmethod
    def _not_a_metric_group(cls, name: str) -> str:
        if name in RESERVED_NAMES:
            raise ValueError(f"{name!r} is a metric group (eval/{name}/...); pick another name")
        return name

    @field_validator("task")
    @classmethod
    def _harness_task_named(cls, task: str) -> str:
        if task.startswith(LM_EVAL_PREFIX) and not task.removeprefix(LM_EVAL_PREFIX):
            raise ValueError(f"give a harness task after {LM_EVAL_PREFIX!r}, e.g. lm_eval:gsm8k_cot")
        return task

    def spec(self, grader_version: str | None = None) -> EvalSpec:
        """The job spec of this entry; its results are stored under the entry's name. The grader
        version defaults to the installed grader's (a stale literal here once outlived a bump)."""
        options = dict(self.task_options)
        if self.answer_format is not None:
            options["answer_format"] = self.answer_format.value
        sampling = SamplingSpec(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            n=self.n,
            seed=self.seed,
        )
        return EvalSpec(
            task=self.task,
            name=self.name,
            dataset=self.dataset,
            limit=self.limit,
            sampling=sampling,
            grader_version=grader_version or GRADER_VERSION,
            options=options,
        )

    def due(self, ordinal: int, *, final: bool = False) -> bool:
        """Whether this entry evaluates the checkpoint that is the `ordinal`-th of its run in step
        order (0 = the step-0 baseline); the baseline and the final checkpoint are always due."""
        return ordinal == 0 or final or ordinal % self.every == 0


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: list[SuiteEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Suite:
        seen: set[str] = set()
        for entry in self.entries:
            if entry.name in seen:
                raise ValueError(f"entry name {entry.name!r} is used twice; names must be unique")
            seen.add(entry.name)
        return self

    @property
    def headline(self) -> SuiteEntry:
        return self.entries[0]

    def due_entries(self, ordinal: int, *, final: bool = False) -> list[SuiteEntry]:
        return [e for e in self.entries if e.due(ordinal, final=final)]


def _field(loc: tuple[Any, ...], data: Any) -> str:
    """`entries.1.temperature` as `entries[1] (name 'probe').temperature`."""
    parts: list[str] = []
    for i, x in enumerate(loc):
        if isinstance(x, int):
            parts[-1] += f"[{x}]"
            if loc[:i] == ("entries",) and isinstance(data, dict):
                entries = data.get("entries") or []
                name = entries[x].get("name") if x < len(entries) and isinstance(entries[x], dict) else None
                if name:
                    parts[-1] += f" ({name!r})"
        else:
            parts.append(str(x))
    return ".".join(parts) or "(top level)"


def parse_suite(data: Any, source: str = "<suite>") -> Suite:
    """A suite from parsed YAML; SuiteError names `source` and every bad field."""
    try:
        return Suite.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                valid = sorted(SuiteEntry.model_fields) if "entries" in err["loc"] else ["entries"]
                msg = f"unknown field (valid: {', '.join(valid)})"
            problems.append(f"{_field(err['loc'], data)}: {msg}")
        raise SuiteError(f"{source}: " + "; ".join(problems)) from None


def load_suite(path: Path | str) -> Suite:
    """Read and validate a suite file; SuiteError names the file (and the field) on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SuiteError(f"{path}: cannot read the suite file: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SuiteError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite file is a mapping with an `entries:` list")
    return parse_suite(data, str(path))


def check_tasks(suite: Suite, source: str = "<suite>") -> None:
    """Every built-in entry's task exists and takes its options (harness tasks are looked up by the
    worker that runs them); SuiteError names the entry."""
    from shared.tasks import get_task

    for i, entry in enumerate(suite.entries):
        if entry.task.startswith(LM_EVAL_PREFIX):
            continue
        spec = entry.spec()
        options = dict(spec.options)
        if spec.dataset is not None:
            options.setdefault("path", spec.dataset)
        try:
            get_task(entry.task, **options)
        except ValueError as e:
            raise SuiteError(f"{source}: entries[{i}] ({entry.name!r}).task: {e}") from None


def checkpoint_ordinals(steps: list[int]) -> dict[int, int]:
    """Step -> ordinal among a run's checkpoints (step order; the step-0 baseline is 0, not counted)."""
    ordered = sorted(set(steps))
    positive = [s for s in ordered if s > 0]
    out = {s: i for i, s in enumerate(positive, start=1)}
    if 0 in ordered:
        out[0] = 0
    return out


def is_final_checkpoint(path: Path | str) -> bool:
    """A checkpoint the trainer saved at its last step: HF Trainer's `trainer_state.json` says
    `global_step == max_steps` (no such file, or an unknown max_steps: not final)."""
    import json

    state = Path(path) / "trainer_state.json"
    try:
        data = json.loads(state.read_text())
    except (OSError, ValueError):
        return False
    max_steps, step = data.get("max_steps"), data.get("global_step")
    return isinstance(max_steps, int) and max_steps > 0 and step == max_steps
