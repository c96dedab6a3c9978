"""The built-in `gsm8k` and `math` tasks read their hub datasets through `datasets.load_dataset`:
from a local copy in the hub layout under DUET_DATA_DIR here (no hub in tests), and with nothing
at hand they fail saying how to provide the data -- never a silent fallback to the samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.tasks import get_task
from shared.tasks.hub import GSM8K, MATH

GSM8K_TEST = [
    {
        "question": f"Tom has {n} apples and buys 2 more. How many?",
        "answer": f"{n}+2=<<{n}+2={n + 2}>>\n#### {n + 2}",
    }
    for n in range(5)
]
GSM8K_TRAIN = [{"question": "1+1?", "answer": "one and one\n#### 2"}] * 3
MATH_TRAIN = [
    {"problem": "What is $1+1$?", "level": "Level 1", "solution": "So $\\boxed{2}$.", "type": "Algebra"},
    {
        "problem": "What is $2 \\cdot 3$?",
        "level": "Level 1",
        "solution": "It is $\\boxed{6}$.",
        "type": "Algebra",
    },
]
MATH_500 = [
    {
        "problem": "Compute $\\frac{1}{2}+\\frac{1}{3}$.",
        "solution": "$\\frac{5}{6}$, so $\\boxed{\\frac{5}{6}}$.",
        "answer": "\\frac{5}{6}",
        "subject": "Prealgebra",
        "level": 2,
        "unique_id": "test/prealgebra/1.json",
    }
]


def _parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A local copy of the three hub repos in their file layout, with the real column names."""
    root = tmp_path / "hub-data"
    _parquet(root / "openai/gsm8k/main/train-00000-of-00001.parquet", GSM8K_TRAIN)
    _parquet(root / "openai/gsm8k/main/test-00000-of-00001.parquet", GSM8K_TEST)
    _parquet(root / "DigitalLearningGmbH/MATH-lighteval/data/train-00000-of-00001.parquet", MATH_TRAIN)
    m500 = root / "HuggingFaceH4/MATH-500/test.jsonl"
    m500.parent.mkdir(parents=True)
    m500.write_text("".join(json.dumps(r) + "\n" for r in MATH_500))
    return root


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No hub and an empty HF cache."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    monkeypatch.delenv("DUET_DATA_DIR", raising=False)
    return home


def test_published_sizes_are_documented():
    assert (GSM8K["train"].rows, GSM8K["test"].rows) == (7473, 1319)
    assert (MATH["train"].rows, MATH["test"].rows) == (7500, 500)


def test_offline_without_a_copy_fails_naming_how_to_provide_the_data(offline):
    for name in ("gsm8k", "math"):
        with pytest.raises(ValueError, match=r"DUET_DATA_DIR") as err:
            get_task(name).examples("test")
        assert "huggingface-cli download" in str(err.value)
    # the bundled samples stay available under their own names only
    assert len(get_task("gsm8k_sample").examples("test")) == 21


def test_local_copy_in_hub_layout_is_read_through_load_dataset(offline, data_dir, monkeypatch):
    monkeypatch.setenv("DUET_DATA_DIR", str(data_dir))
    gsm = get_task("gsm8k")
    test = gsm.examples("test")
    assert [e.answer for e in test] == [str(n + 2) for n in range(5)]
    assert len(gsm.examples("train")) == 3 and test[0].id == "gsm8k-test-0"
    assert "<<" not in gsm.target(test[0])
    math = get_task("math", answer_format="r1_zero")
    assert [e.answer for e in math.examples("train")] == ["2", "6"]
    (ex,) = math.examples("test")
    assert ex.answer == "\\frac{5}{6}" and math.grade("</think> <answer>5/6</answer>", ex).correct


def test_data_dir_without_the_dataset_is_an_error(offline, tmp_path, monkeypatch):
    monkeypatch.setenv("DUET_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match=r"empty/openai/gsm8k/main/test-\*\.parquet matches no file"):
        get_task("gsm8k").examples("test")


def _duet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_duet_tasks_show(offline, data_dir):
    env = {k: v for k, v in os.environ.items() if k != "DUET_DATA_DIR"}
    out = _duet("tasks", "show", "gsm8k", env=env)
    assert out.returncode != 0
    assert "DUET_DATA_DIR" in out.stderr and "openai/gsm8k" in out.stderr

    out = _duet("tasks", "show", "gsm8k", env={**env, "DUET_DATA_DIR": str(data_dir)})
    assert out.returncode == 0, out.stderr
    assert "train: 3 rows" in out.stdout and "test: 5 rows" in out.stdout
    assert "Tom has 0 apples" in out.stdout and '"#### <answer>"' in out.stdout

    listing = _duet("tasks", env=env)
    assert listing.returncode == 0 and "gsm8k_sample" in listing.stdout and "MATH-500" in listing.stdout
