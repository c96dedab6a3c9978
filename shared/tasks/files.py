"""Tasks backed by data files: `gsm8k`, `math` and `custom` (any JSONL/Parquet file or HF dataset).

Data locations (options):
- none given: `gsm8k` and `math` read their hub datasets (shared/tasks/hub.py: HF cache, or a
  local copy under DUET_DATA_DIR), and fail saying how to provide them when neither is there;
- `path`: one file used for every split (e.g. GSM8K's test.jsonl for evaluation);
- `train_path` / `test_path`: per-split files, taking precedence over `path`;
- `custom` also takes `hf_dataset` (+ `hf_config`, `split`) loaded with `datasets.load_dataset`.
The bundled 21-row samples (`shared/data/*_sample.jsonl`) are smoke-test data, used for both
splits, and only under their own names: tasks `gsm8k_sample` and `math_sample`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from shared.grading import AnswerFormat
from shared.grading.extract import find_boxed
from shared.tasks.base import Example, Split, Task, TaskOptions
from shared.tasks.formats import format_solution
from shared.tasks.hub import GSM8K, MATH, HubSource, load_rows

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
_CALCULATOR_RE = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: "<<48/2=24>>"


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL (one object a line) or Parquet file; ValueError naming the file on problems."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"data file not found: {p}")
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(p).to_pylist()
        except Exception as e:
            raise ValueError(f"cannot read Parquet file {p}: {e}") from e
    rows = []
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{lineno}: invalid JSON: {e.msg}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{p}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def gold_from_text(text: str) -> str:
    """The final answer in an answer field: after GSM8K's "####", inside the last \\boxed{}, or as is."""
    if "####" in text:
        return text.rsplit("####", 1)[1].strip().replace(",", "")
    boxed, _ = find_boxed(text)
    return boxed.strip() if boxed is not None else text.strip()


def _field(row: dict[str, Any], field: str, source: str, i: int) -> str:
    if field not in row:
        raise ValueError(f"{source}: row {i} has no field {field!r} (fields: {', '.join(sorted(row))})")
    value = row[field]
    if value is None:
        raise ValueError(f"{source}: row {i} field {field!r} is null")
    return str(value)


class FileOptions(TaskOptions):
    path: str | None = None
    train_path: str | None = None
    test_path: str | None = None


class FileTask(Task):
    """Rows from a file mapped to examples; subclasses say how a row becomes an Example."""

    default_file: str | None = None  # a bundled sample under shared/data
    hub: dict[str, HubSource] | None = None  # the hub dataset read when no file is given
    options: FileOptions

    def __init__(self, options: TaskOptions | None = None):
        super().__init__(options)
        self._cache: dict[str, list[Example]] = {}

    def source(self, split: Split) -> str | HubSource:
        """A data file, or the hub dataset of the split."""
        o = self.options
        chosen = o.train_path if split == "train" else o.test_path
        chosen = chosen or o.path
        if chosen:
            return chosen
        if self.hub is not None:
            return self.hub[split]
        if self.default_file is None:
            raise ValueError(f"task {self.name!r}: give the option 'path' (or 'train_path'/'test_path')")
        return str(DATA_DIR / self.default_file)

    def rows(self, split: Split) -> tuple[str, list[dict[str, Any]]]:
        src = self.source(split)
        if isinstance(src, HubSource):
            return load_rows(src)
        return src, read_rows(src)

    def row_example(self, row: dict[str, Any], i: int, source: str, split: Split) -> Example:
        raise NotImplementedError

    def _load(self, split: Split) -> list[Example]:
        if split not in self._cache:
            src, rows = self.rows(split)
            self._cache[split] = [self.row_example(r, i, src, split) for i, r in enumerate(rows)]
        return self._cache[split]

    def _id(self, source: str, split: Split, i: int, row: dict[str, Any]) -> str:
        rid = row.get("id")
        if rid is not None:
            return f"{self.name}-{split}-{rid}"
        if isinstance(self.source(split), HubSource):  # the same ids from the hub and a local copy
            return f"{self.name}-{split}-{i}"
        return f"{self.name}-{Path(source).stem}-{i}"


class GSM8KOptions(FileOptions):
    answer_format: AnswerFormat = AnswerFormat.gsm8k


class GSM8KTask(FileTask):
    """Grade-school math; rows with HF gsm8k fields `question` and `answer` ("steps\\n#### N")."""

    name = "gsm8k"
    Options = GSM8KOptions
    answer_format = AnswerFormat.gsm8k
    hub = GSM8K

    def row_example(self, row: dict[str, Any], i: int, source: str, split: Split) -> Example:
        question = _field(row, "question", source, i)
        full = _field(row, "answer", source, i)
        if "####" not in full:
            raise ValueError(f"{source}: row {i} field 'answer' has no '#### <answer>' line")
        reasoning, _ = full.rsplit("####", 1)
        gold = gold_from_text(full)
        reasoning = _CALCULATOR_RE.sub("", reasoning).strip()
        return Example(
            id=self._id(source, split, i, row),
            question=question,
            answer=gold,
            solution=format_solution(reasoning, gold, self.answer_format),
        )


class MATHOptions(FileOptions):
    answer_format: AnswerFormat = AnswerFormat.boxed


class MATHTask(FileTask):
    """Competition math; rows with MATH fields `problem` and `solution` (answer in the last \\boxed{})."""

    name = "math"
    Options = MATHOptions
    answer_format = AnswerFormat.boxed
    hub = MATH

    def row_example(self, row: dict[str, Any], i: int, source: str, split: Split) -> Example:
        problem = _field(row, "problem", source, i)
        solution = _field(row, "solution", source, i)
        boxed, _ = find_boxed(solution)
        if boxed is None:
            raise ValueError(f"{source}: row {i} field 'solution' has no \\boxed{{}} answer")
        gold = str(row.get("answer") or boxed).strip()
        # MATH solutions already end in \boxed{}: keep them whole for the boxed format.
        target = (
            solution
            if self.answer_format == AnswerFormat.boxed
            else format_solution(solution, gold, self.answer_format)
        )
        return Example(id=self._id(source, split, i, row), question=problem, answer=gold, solution=target)


class GSM8KSampleTask(GSM8KTask):
    """The 21 bundled GSM8K rows (smoke tests and demos; never a stand-in for `gsm8k`)."""

    name = "gsm8k_sample"
    hub = None
    default_file = "gsm8k_sample.jsonl"


class MATHSampleTask(MATHTask):
    """The 21 bundled MATH rows (smoke tests and demos; never a stand-in for `math`)."""

    name = "math_sample"
    hub = None
    default_file = "math_sample.jsonl"


class CustomOptions(FileOptions):
    hf_dataset: str | None = None
    hf_config: str | None = None
    split: str | None = None  # HF split to read for every requested split; None: "train"/"test"
    question_field: str = "question"
    answer_field: str = "answer"
    solution_field: str | None = None
    answer_format: AnswerFormat = AnswerFormat.freeform
    # A name for ids and logs; several custom datasets can be told apart by it.
    dataset_name: str = Field("custom", min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> CustomOptions:
        has_file = any((self.path, self.train_path, self.test_path))
        if has_file == (self.hf_dataset is not None):
            raise ValueError(
                "task 'custom' needs exactly one data source: 'path' (or 'train_path'/'test_path') or 'hf_dataset'"
            )
        return self


class CustomTask(FileTask):
    """Any question/answer dataset with a field mapping."""

    name = "custom"
    Options = CustomOptions
    answer_format = AnswerFormat.freeform
    options: CustomOptions

    def rows(self, split: Split) -> tuple[str, list[dict[str, Any]]]:
        o = self.options
        if o.hf_dataset is None:
            return super().rows(split)
        hf_split = o.split or split
        source = f"hf:{o.hf_dataset}[{hf_split}]"
        try:
            import datasets
        except ImportError as e:
            raise ValueError(f"{source}: the 'datasets' package is needed for option 'hf_dataset'") from e
        try:
            ds = datasets.load_dataset(o.hf_dataset, o.hf_config, split=hf_split)
        except Exception as e:
            raise ValueError(f"{source}: cannot load dataset: {e}") from e
        return source, [dict(r) for r in ds]

    def row_example(self, row: dict[str, Any], i: int, source: str, split: Split) -> Example:
        o = self.options
        question = _field(row, o.question_field, source, i)
        gold = gold_from_text(_field(row, o.answer_field, source, i))
        solution = None
        if o.solution_field is not None:
            raw = _field(row, o.solution_field, source, i)
            if "####" in raw:  # GSM8K-style: the reasoning is what precedes the answer line
                raw = _CALCULATOR_RE.sub("", raw.rsplit("####", 1)[0])
            solution = format_solution(raw, gold, o.answer_format)
        rid = row.get("id")
        ex_id = f"{o.dataset_name}-{split}-{rid}" if rid is not None else f"{o.dataset_name}-{split}-{i}"
        return Example(id=ex_id, question=question, answer=gold, solution=solution)
