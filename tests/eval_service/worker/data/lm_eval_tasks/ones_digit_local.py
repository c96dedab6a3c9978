"""Document loader of the local lm-eval test tasks: ones_digit questions from the JSONL beside this
file (no hub). lm-eval calls it with the task's metadata and dataset_kwargs, which it does not need."""

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).with_name("ones_digit_local.jsonl")


def load_docs(**_: Any) -> Any:
    import datasets

    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
