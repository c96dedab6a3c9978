"""File-backed tasks (gsm8k, math, custom JSONL/Parquet) and the arithmetic probes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.tasks import get_task


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gsm8k_sample_solutions_grade_correct_in_every_format():
    for fmt in ("gsm8k", "r1_zero", "boxed", "freeform"):
        task = get_task("gsm8k_sample", answer_format=fmt)
        exs = task.examples("test")
        assert len(exs) >= 20
        for ex in exs:
            assert "<<" not in task.target(ex)  # calculator annotations stripped
            g = task.grade(task.target(ex), ex, "stop")
            assert g.correct and g.format_ok, (fmt, ex.id, g)


def test_gsm8k_gold_drops_thousands_commas(tmp_path):
    f = write_jsonl(tmp_path / "g.jsonl", [{"question": "q?", "answer": "a lot\n#### 2,520"}])
    ex = get_task("gsm8k", path=str(f)).examples("test")[0]
    assert ex.answer == "2520" and ex.solution == "a lot\n#### 2520"


def test_math_sample_golds_are_the_boxed_answers():
    task = get_task("math_sample")
    exs = task.examples("test")
    assert [e.answer for e in exs][:2] == ["\\frac{5}{6}", "4"]
    for ex in exs:
        assert task.grade(task.target(ex), ex, "stop").correct, ex.id
    assert task.grade("so \\boxed{0.8333}", exs[0]).correct is False
    assert task.grade("so \\boxed{10/12}", exs[0]).correct


def test_per_split_files(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"question": "t?", "answer": "x\n#### 1"}])
    test = write_jsonl(tmp_path / "test.jsonl", [{"question": "e?", "answer": "y\n#### 2"}] * 3)
    task = get_task("gsm8k", train_path=str(train), test_path=str(test))
    assert [e.question for e in task.examples("train")] == ["t?"]
    assert len(task.examples("test")) == 3 and len({e.id for e in task.examples("test")}) == 3


def test_custom_jsonl_with_field_mapping(tmp_path):
    f = write_jsonl(
        tmp_path / "qa.jsonl",
        [{"q": "What is 2+2?", "a": 4, "why": "2+2=4"}, {"q": "Half of 1?", "a": "1/2", "why": "1/2"}],
    )
    task = get_task(
        "custom",
        path=str(f),
        question_field="q",
        answer_field="a",
        solution_field="why",
        answer_format="r1_zero",
    )
    exs = task.examples("test")
    assert [e.answer for e in exs] == ["4", "1/2"]
    assert task.target(exs[0]) == "2+2=4</think> <answer>4</answer>"
    assert task.grade("hmm</think> <answer>0.5</answer>", exs[1]).correct


def test_custom_parquet(tmp_path):
    f = tmp_path / "qa.parquet"
    pq.write_table(pa.table({"prompt": ["1+1?", "3*3?"], "label": ["2", "9"]}), f)
    task = get_task("custom", path=str(f), question_field="prompt", answer_field="label")
    exs = task.examples("train")
    assert [(e.question, e.answer) for e in exs] == [("1+1?", "2"), ("3*3?", "9")]
    assert exs[0].solution is None and task.target(exs[0]) == "The answer is 2."
    assert task.grade("The answer is 9.", exs[1]).correct


def test_custom_reads_gsm8k_and_math_style_answer_fields(tmp_path):
    f = write_jsonl(tmp_path / "m.jsonl", [{"question": "q", "answer": "so \\boxed{\\frac{1}{3}}"}])
    assert get_task("custom", path=str(f)).examples("test")[0].answer == "\\frac{1}{3}"


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(ValueError, match=f"data file not found: {missing}"):
        get_task("custom", path=str(missing)).examples("test")
    with pytest.raises(ValueError, match="nope.jsonl"):
        get_task("gsm8k", test_path=str(missing)).examples("test")


def test_missing_field_is_named(tmp_path):
    f = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "1"}, {"question": "q2"}])
    with pytest.raises(ValueError, match=r"qa.jsonl: row 1 has no field 'answer' \(fields: question\)"):
        get_task("custom", path=str(f)).examples("test")
    with pytest.raises(ValueError, match="row 0 has no field 'text'"):
        get_task("custom", path=str(f), question_field="text").examples("test")
    p = tmp_path / "qa.parquet"
    pq.write_table(pa.table({"question": ["q"]}), p)
    with pytest.raises(ValueError, match="qa.parquet: row 0 has no field 'answer'"):
        get_task("custom", path=str(p)).examples("test")


def test_bad_jsonl_line_is_named(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"question": "q", "answer": "1"}\n{not json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2: invalid JSON"):
        get_task("custom", path=str(f)).examples("test")


def test_custom_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one data source"):
        get_task("custom")
    with pytest.raises(ValueError, match="exactly one data source"):
        get_task("custom", path="a.jsonl", hf_dataset="openai/gsm8k")
    with pytest.raises(ValueError, match="option 'answer_format'"):
        get_task("custom", path="a.jsonl", answer_format="latex")


def test_custom_hf_dataset_failure_names_the_dataset(monkeypatch):
    # No hub access here: the loading code path runs and its failure names the dataset.
    # Offline mode makes it fail at once instead of retrying the network.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    task = get_task("custom", hf_dataset="duet-test/does-not-exist", split="test")
    with pytest.raises(ValueError, match=r"hf:duet-test/does-not-exist\[test\]"):
        task.examples("test")


@pytest.mark.parametrize(
    ("name", "options", "check"),
    [
        ("multiplication_table", {}, lambda a, b: a * b),
        ("multiplication", {"digits": 3, "n_test": 50, "n_train": 200}, lambda a, b: a * b),
        ("addition", {"digits": 4, "n_test": 50, "n_train": 200}, lambda a, b: a + b),
        ("addition", {"digits": 1}, lambda a, b: a + b),
    ],
)
def test_arithmetic_answers_exact_and_splits_disjoint(name, options, check):
    task = get_task(name, **options)
    train, test = task.examples("train"), task.examples("test")
    assert train and test
    operands = lambda ex: tuple(int(x) for x in ex.id.rsplit("-", 2)[1:])  # noqa: E731
    assert not {operands(e) for e in train} & {operands(e) for e in test}
    digits = options.get("digits")
    for ex in train + test:
        a, b = operands(ex)
        assert ex.answer == str(check(a, b))
        if digits:
            assert len(str(a)) == len(str(b)) == digits
        assert task.grade(task.target(ex), ex).correct
    if name == "multiplication_table":
        assert len(train) + len(test) == 144


def test_arithmetic_answer_format_option():
    task = get_task("multiplication", digits=2, answer_format="gsm8k", n_test=3)
    ex = task.examples("test")[0]
    assert task.target(ex).endswith(f"#### {ex.answer}")
    assert task.render_prompt(ex).endswith('"#### <answer>".\n')


def test_custom_hf_dataset_loads_a_local_dataset_dir(tmp_path, monkeypatch):
    # `datasets.load_dataset` on a local folder: the same code path as a hub id, without a network.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "ds"
    data.mkdir()
    write_jsonl(data / "train.jsonl", [{"question": "1+1?", "answer": "2"}])
    write_jsonl(
        data / "test.jsonl", [{"question": "2+2?", "answer": "4"}, {"question": "3+3?", "answer": "6"}]
    )
    task = get_task("custom", hf_dataset=str(data))
    assert [e.answer for e in task.examples("test")] == ["4", "6"]
    assert [e.answer for e in task.examples("train")] == ["2"]
    only_test = get_task("custom", hf_dataset=str(data), split="test")
    assert len(only_test.examples("train")) == 2
