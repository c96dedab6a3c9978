"""Hub datasets of the built-in tasks: read with `datasets.load_dataset` through the HF cache, or
from a local copy in the hub repo's file layout under `DUET_DATA_DIR`.

A local copy is the hub repo's files, e.g. made with
`huggingface-cli download openai/gsm8k --repo-type dataset --local-dir $DUET_DATA_DIR/openai/gsm8k`
(so `$DUET_DATA_DIR/openai/gsm8k/main/test-00000-of-00001.parquet`). There is no fallback: data
that cannot be had is an error that says how to provide it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_DIR_ENV = "DUET_DATA_DIR"


class DataUnavailable(ValueError):
    """A task's dataset is neither reachable on the hub, in the HF cache, nor in DUET_DATA_DIR."""


@dataclass(frozen=True)
class HubSource:
    """One split of a hub dataset: `load_dataset(repo, config, split=split)`, whose files in the
    repo are `files` (a glob relative to the repo root; how a local copy is found)."""

    repo: str
    config: str | None
    split: str
    files: str
    rows: int  # rows of the published split (documentation and `duet tasks`)

    def describe(self) -> str:
        config = f" ({self.config})" if self.config else ""
        return f"hf:{self.repo}{config}[{self.split}]"

    def local_dir(self) -> Path | None:
        root = os.environ.get(DATA_DIR_ENV)
        return Path(root).expanduser() / self.repo if root else None

    def how_to_provide(self) -> str:
        return (
            f"connect to the hub once (the HF cache keeps it), or put a copy of the hub repo at "
            f"${DATA_DIR_ENV}/{self.repo} with its files in the hub layout ({self.files}), e.g. "
            f"`huggingface-cli download {self.repo} --repo-type dataset --local-dir "
            f"$DUET_DATA_DIR/{self.repo}`; or give the task a file with the option 'path'/'{self.split}_path'"
        )


def _builder(files: str) -> str:
    if files.endswith(".parquet"):
        return "parquet"
    if files.endswith((".jsonl", ".json")):
        return "json"
    raise ValueError(f"no datasets builder for {files!r}")


def load_rows(src: HubSource) -> tuple[str, list[dict[str, Any]]]:
    """(where the rows came from, the rows). DataUnavailable, saying how to provide the data."""
    import datasets

    local = src.local_dir()
    if local is not None:
        pattern = local / src.files
        if not list(local.glob(src.files)):
            raise DataUnavailable(
                f"{src.describe()}: {DATA_DIR_ENV} is set but {pattern} matches no file; "
                + src.how_to_provide()
            )
        try:
            ds = datasets.load_dataset(_builder(src.files), data_files=str(pattern), split="train")
        except Exception as e:
            raise DataUnavailable(f"{pattern}: cannot read it: {type(e).__name__}: {e}") from e
        return str(local), [dict(r) for r in ds]
    try:
        ds = datasets.load_dataset(src.repo, src.config, split=src.split)
    except Exception as e:  # offline and not cached, gated, renamed: the fix is the same
        raise DataUnavailable(
            f"{src.describe()}: cannot load it ({type(e).__name__}: {str(e)[:300]}). " + src.how_to_provide()
        ) from e
    return src.describe(), [dict(r) for r in ds]


# The built-in tasks' data. GSM8K: `main` config, 7,473 train / 1,319 test. MATH: the 7,500
# training problems of Hendrycks et al. (lighteval's copy, parquet) and MATH-500, the 500-problem
# test subset of "Let's Verify Step by Step" (disjoint from MATH train), for evaluation.
GSM8K = {
    "train": HubSource("openai/gsm8k", "main", "train", "main/train-*.parquet", 7473),
    "test": HubSource("openai/gsm8k", "main", "test", "main/test-*.parquet", 1319),
}
MATH = {
    "train": HubSource(
        "DigitalLearningGmbH/MATH-lighteval", "default", "train", "data/train-*.parquet", 7500
    ),
    "test": HubSource("HuggingFaceH4/MATH-500", None, "test", "test.jsonl", 500),
}
