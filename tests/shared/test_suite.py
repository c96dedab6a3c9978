"""Suite files: validation errors name the file and the field; cadence; the final checkpoint."""

from __future__ import annotations

import json

import pytest

from shared.suite import SuiteError, checkpoint_ordinals, is_final_checkpoint, load_suite


def test_errors_name_the_file_and_the_field(tmp_path):
    f = tmp_path / "suite.yaml"
    f.write_text(
        "entries:\n  - {name: a, task: ones_digit}\n  - {name: b, task: ones_digit, n: 0, every: 0}\n"
    )
    with pytest.raises(SuiteError) as e:
        load_suite(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}: ") and "entries[1] ('b').n" in msg and "entries[1] ('b').every" in msg
    f.write_text("entries:\n  - {name: a, task: ones_digit}\n  - {name: a, task: ones_digit}\n")
    with pytest.raises(SuiteError, match="'a' is used twice"):
        load_suite(f)
    f.write_text("entries:\n  - {name: fail, task: ones_digit}\n")
    with pytest.raises(SuiteError, match="metric group"):
        load_suite(f)
    with pytest.raises(SuiteError, match="cannot read"):
        load_suite(tmp_path / "missing.yaml")


def test_cadence_baseline_and_final_always_due(tmp_path):
    f = tmp_path / "suite.yaml"
    f.write_text(
        "entries:\n  - {name: full, task: ones_digit, max_tokens: 64}\n  - {name: probe, task: ones_digit, every: 2}\n"
    )
    suite = load_suite(f)
    ordinals = checkpoint_ordinals([0, 50, 100, 150])
    due = {step: [e.name for e in suite.due_entries(o)] for step, o in ordinals.items()}
    assert due == {0: ["full", "probe"], 50: ["full"], 100: ["full", "probe"], 150: ["full"]}
    assert [e.name for e in suite.due_entries(3, final=True)] == ["full", "probe"]
    spec = suite.entries[0].spec()
    assert spec.result_name == "full" and spec.sampling.max_tokens == 64


def test_final_checkpoint_from_trainer_state(tmp_path):
    assert not is_final_checkpoint(tmp_path)
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 400, "max_steps": 400}))
    assert is_final_checkpoint(tmp_path)
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 350, "max_steps": 400}))
    assert not is_final_checkpoint(tmp_path)


def test_shipped_suites_are_valid():
    from shared.suite import check_tasks

    for path in ("configs/eval/math.yaml", "cli/configs/suite-tiny.yaml"):
        check_tasks(load_suite(path), path)


def test_compose_default_suite_reads_hub_data_in_the_trained_format():
    """The compose evaluator's suite names no local file: MATH-500 and GSM8K come from the hub,
    graded in r1_zero like configs/qwen2.5-math-1.5b.yaml trains."""
    suite = load_suite("configs/eval/math.yaml")
    assert [e.task for e in suite.entries[:2]] == ["math", "gsm8k"]
    for entry in suite.entries:
        assert entry.dataset is None and "path" not in (entry.task_options or {})
        assert entry.answer_format == "r1_zero"
