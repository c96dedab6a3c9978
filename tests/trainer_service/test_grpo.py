"""GRPO: config checks name the key; the reward is the grader's verdict; a real TRL GRPO stage on
the tiny model continues an SFT run on its step axis, publishes marked checkpoints and reports
reward and train metrics through the ledger into its one W&B run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from shared.checkpoint import check_hf_checkpoint, read_marker, verify_marker
from shared.grading import AnswerFormat, grade_response, is_equivalent
from tests.fixtures.wandb_files import read_offline_history
from tests.trainer_service.helpers import REPO, grpo_stage_keys, regrade_logged_completions, tiny_config
from trainer_service.config import Algorithm, ConfigError, RewardName, load_config
from trainer_service.rewards import GraderReward

GRPO = {"algorithm": "grpo", "per_device_train_batch_size": 8, "num_generations": 4}


def _load(tiny_model: Path, tmp_path: Path, **keys: Any):
    return load_config(None, {"model": str(tiny_model), "output_dir": str(tmp_path / "out"), **GRPO, **keys})


# --- config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"rewards": [{"name": "accuracy"}]}, "rewards.0.name"),
        ({"rewards": [{"name": "strict", "weight": -1}]}, "rewards.0.weight"),
        ({"rewards": [{"name": "strict", "weight": float("nan")}]}, "rewards.0.weight"),
        (
            {"rewards": [{"name": "strict", "weight": 0}, {"name": "format", "weight": 0}]},
            "every weight is 0",
        ),
        ({"rewards": [{"name": "strict"}, {"name": "strict"}]}, "strict listed more than once"),
        ({"rewards": []}, "rewards: give at least one"),
        ({"rewards": [{"name": "strict", "scale": 2}]}, "rewards.0.scale"),
        ({"num_generations": 3}, "num_generations: 3 must divide"),
        ({"num_generations": 1}, "num_generations"),
        ({"init_from": "a", "init_from_best": "b"}, "init_from and init_from_best"),
        ({"init_from_step": 10}, "init_from_step: picks a step of the init_from_best run"),
        ({"init_from_best": "r", "init_from_step": -1}, "init_from_step"),
        ({"vllm_mode": "server"}, "vllm_mode: only used with use_vllm: true"),
    ],
)
def test_bad_grpo_config_names_the_key(tiny_model: Path, tmp_path: Path, keys: dict, named: str):
    with pytest.raises(ConfigError) as e:
        _load(tiny_model, tmp_path, **keys)
    assert named in str(e.value), str(e.value)


def test_grpo_keys_with_sft_are_refused(tiny_model: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="num_generations, rewards: only used with algorithm: grpo"):
        load_config(
            None,
            {"model": str(tiny_model), "num_generations": 4, "rewards": [{"name": "format"}]},
        )


def test_grpo_args_are_checked_against_trl(tiny_model: Path, tmp_path: Path):
    from trainer_service.grpo import check_grpo_args

    with pytest.raises(ConfigError, match=r"grpo_args.num_generation: not a TRL GRPOConfig field"):
        check_grpo_args(_load(tiny_model, tmp_path, grpo_args={"num_generation": 4}))
    with pytest.raises(ConfigError, match=r"grpo_args.reward_weights: set by duet"):
        check_grpo_args(_load(tiny_model, tmp_path, grpo_args={"reward_weights": [1.0]}))


def test_shipped_grpo_configs_load(tiny_model: Path):
    tiny = load_config(
        REPO / "cli/configs/tiny-grpo.yaml", {"model": str(tiny_model), "init_from_best": "demo"}
    )
    assert tiny.algorithm is Algorithm.grpo and [r.name for r in tiny.rewards] == [RewardName.strict]
    assert tiny.init_from_step == 300  # the demo's GRPO start: SFT step 300 of the run (see the config)
    with pytest.raises(ConfigError, match="init_from_step: picks a step of the init_from_best run"):
        load_config(REPO / "cli/configs/tiny-grpo.yaml", {"model": str(tiny_model), "init_from": "x"})
    assert not tiny.use_vllm
    qwen = load_config(REPO / "configs/qwen2.5-math-1.5b-grpo.yaml")
    assert qwen.algorithm is Algorithm.grpo and qwen.task == "gsm8k"
    assert qwen.use_vllm and qwen.vllm_mode.value == "colocate"
    assert qwen.task_options["answer_format"] == "r1_zero"


# --- reward = grader ---------------------------------------------------------------------------------

# (answer format, gold, completion): right, wrong, and every kind of format failure.
CASES = [
    (AnswerFormat.r1_zero, "23", "N+1=114. x=2,7. 12+11=23</think> <answer>23</answer>"),
    (AnswerFormat.r1_zero, "23", "N+1=114. x=2,7. 12+11=22</think> <answer>22</answer>"),
    (AnswerFormat.r1_zero, "0", "N+1=51 odd. 0</think> <answer> 0 </answer>"),
    (AnswerFormat.r1_zero, "0", "N+1=51 odd. 0</think><answer>0.0</answer>"),
    (AnswerFormat.r1_zero, "23", "<answer>23</answer></think>"),
    (AnswerFormat.r1_zero, "23", "no tags at all, the answer is 23"),
    (AnswerFormat.r1_zero, "23", "x</think> <answer>23"),
    (AnswerFormat.r1_zero, "23", "x</think> <answer></answer>"),
    (AnswerFormat.r1_zero, "1/2", "x</think> <answer>0.5</answer>"),
    (AnswerFormat.r1_zero, "23", "N+1=114. x=2,7. 12+11=23 N+1=114. x=2,7"),
    (AnswerFormat.gsm8k, "18", "She sells 16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\n#### 18"),
    (AnswerFormat.gsm8k, "18", "She makes 18 dollars."),
    (AnswerFormat.gsm8k, "1200", "#### $1,200"),
    (AnswerFormat.boxed, "\\frac{1}{2}", "so \\boxed{\\frac12}"),
    (AnswerFormat.boxed, "9", "Answer $ 9 $"),
    (AnswerFormat.freeform, "5", "The answer is 5."),
]


def _format_free(response: str, gold: str, fmt: AnswerFormat) -> bool:
    g = grade_response(response, gold, fmt)
    if hasattr(g, "answer_correct"):  # the grader's own verdict, once it has one
        return bool(g.answer_correct)
    return g.extracted is not None and is_equivalent(g.extracted, gold)


@pytest.mark.parametrize("fmt", sorted({c[0] for c in CASES}))
def test_reward_is_the_graders_verdict(fmt: AnswerFormat):
    cases = [(gold, text) for f, gold, text in CASES if f == fmt]
    golds, texts = [g for g, _ in cases], [t for _, t in cases]
    rewards = {
        name: GraderReward(name, fmt, max_completion_length=64)(
            prompts=["p"] * len(texts), completions=texts, completion_ids=[[1, 2]] * len(texts), answer=golds
        )
        for name in RewardName
    }
    grades = [grade_response(t, g, fmt) for g, t in cases]
    assert rewards[RewardName.strict] == [float(g.correct) for g in grades]
    assert rewards[RewardName.format] == [float(g.format_ok) for g in grades]
    assert rewards[RewardName.answer] == [float(_format_free(t, g, fmt)) for g, t in cases]


def test_reward_names_are_trl_metric_names():
    assert GraderReward(RewardName.answer, AnswerFormat.r1_zero, 8).__name__ == "answer"


# --- the start checkpoint, the stage in the ledger ------------------------------------------------------


def _scored_checkpoint(
    client: Any,
    root: Path,
    tiny_model: Path,
    step: int,
    algorithm: Algorithm | None,
    acc: float,
    run: str = "staged",
) -> None:
    """A real checkpoint dir (the tiny model's files, a duet marker unless `algorithm` is None: a
    base model) registered through the ledger by its path and scored `acc` on ones_digit, as the
    worker would."""
    import shutil

    from shared.checkpoint import write_marker
    from shared.schemas import CompleteRequest, EvalSpec

    d = shutil.copytree(tiny_model, root / (f"checkpoint-{step}" if algorithm else "base"))
    if algorithm is not None:
        write_marker(d, run=run, step=step, algorithm=algorithm.value)
    job = client.enqueue(EvalSpec(task="ones_digit", limit=5), path=str(d), run=run, step=step).job
    lease = client.claim("w")
    assert lease.job.id == job.id
    client.complete(job.id, CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"accuracy": acc}))


def test_init_from_best_picks_the_ledgers_best_sft_checkpoint_and_stages_are_marked(tiny_model: Path, ledger):
    from cli.tables import scores_table
    from trainer_service.grpo_start import resolve_start

    client, root = ledger.client(), ledger.checkpoint_root / "staged"
    client.create_run("staged", primary_task="ones_digit")
    for step, acc in ((10, 0.6), (20, 0.3)):  # the later SFT checkpoint is the worse one
        _scored_checkpoint(client, root, tiny_model, step, Algorithm.sft, acc)

    cfg = _load(tiny_model, root, init_from_best="staged", continue_run=True,
                ledger_url=ledger.url, ledger_token=ledger.token)  # fmt: skip
    start = resolve_start(cfg)
    assert Path(start.init) == (root / "checkpoint-10").resolve()
    assert (start.run_name, start.parent_step, start.stage_offset) == ("staged", 10, 20)

    # A GRPO checkpoint on the same axis: the ledger keeps each checkpoint's stage (from its marker),
    # `duet scores` shows it, and W&B gets it with every eval result.
    _scored_checkpoint(client, root, tiny_model, 21, Algorithm.grpo, 0.7)
    assert {c.step: c.algorithm for c in client.list_checkpoints("staged")} == {
        10: Algorithm.sft,
        20: Algorithm.sft,
        21: Algorithm.grpo,
    }
    rows = client.scores("staged")
    assert [(r.step, r.algorithm) for r in rows] == [
        (10, Algorithm.sft),
        (20, Algorithm.sft),
        (21, Algorithm.grpo),
    ]
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(scores_table(rows))
    text = console.export_text()
    assert "stage" in text and "grpo" in text and "sft" in text
    assert ledger.flush_wandb() == 0
    history = read_offline_history(ledger.wandb_dir, client.get_run("staged").wandb_run_id)
    stages = {int(h["train/global_step"]): h["eval/stage"] for h in history if "eval/accuracy" in h}
    assert stages == {10: 0.0, 20: 0.0, 21: 1.0}


def test_init_from_best_may_start_from_the_runs_baseline(tiny_model: Path, ledger):
    """No SFT checkpoint beats the step-0 baseline (the base model, no marker): the stage starts from
    it and still continues the run, whose step and name the ledger gives."""
    from trainer_service.grpo_start import resolve_start

    client, root = ledger.client(), ledger.checkpoint_root / "early"
    client.create_run("early", primary_task="ones_digit")
    _scored_checkpoint(client, root, tiny_model, 0, None, 0.1, run="early")
    _scored_checkpoint(client, root, tiny_model, 10, Algorithm.sft, 0.0, run="early")
    cfg = _load(tiny_model, root, init_from_best="early", ledger_url=ledger.url, ledger_token=ledger.token)
    start = resolve_start(cfg)
    assert Path(start.init) == (root / "base").resolve()
    assert (start.run_name, start.parent_step, start.stage_offset) == ("early", 0, 10)


def test_init_from_step_pins_a_present_checkpoint_of_the_run(tiny_model: Path, ledger):
    """init_from_step starts from that step rather than the best, still on the run's axis; a step
    the run never had, or one retention deleted, is refused with the steps it could use."""
    from shared.retention import RetentionCandidate
    from trainer_service.grpo_start import resolve_start

    client, root = ledger.client(), ledger.checkpoint_root / "pinned"
    client.create_run("pinned", primary_task="ones_digit")
    for step, acc in ((10, 0.2), (20, 0.6), (30, 0.4)):
        _scored_checkpoint(client, root, tiny_model, step, Algorithm.sft, acc, run="pinned")

    def load(step: int):
        return _load(tiny_model, root, init_from_best="pinned", init_from_step=step,
                     ledger_url=ledger.url, ledger_token=ledger.token)  # fmt: skip

    start = resolve_start(load(10))  # not the best (20)
    assert Path(start.init) == (root / "checkpoint-10").resolve()
    assert (start.run_name, start.parent_step, start.stage_offset) == ("pinned", 10, 30)

    with pytest.raises(ConfigError, match=r"no checkpoint at step 15 \(it has: 10, 20, 30\)"):
        resolve_start(load(15))
    ck = {c.step: c for c in client.list_checkpoints("pinned")}[10]
    grant = client.retention_grant("pinned", [RetentionCandidate(checkpoint_id=ck.id)])
    assert grant.granted, grant
    with pytest.raises(ConfigError, match="step 10 is deleting"):
        resolve_start(load(10))


# --- a real GRPO stage --------------------------------------------------------------------------------


@pytest.mark.slow
def test_grpo_stage_continues_sft_run_and_reports_rewards(tiny_model: Path, ledger):
    from shared.tasks import get_task
    from trainer_service.train import train

    root = ledger.checkpoint_root
    common = dict(run_name="t-grpo", ledger_url=ledger.url, ledger_token=ledger.token)
    sft = train(tiny_config(tiny_model, root / "sft", max_steps=4, save_steps=4, logging_steps=2, **common))
    assert [p.name for p in sft.checkpoints] == ["checkpoint-4"]

    keys = grpo_stage_keys(
        tiny_model, sft.checkpoints[0], root / "grpo",
        per_device_train_batch_size=8,
        max_completion_length=12,  # short: most completions are clipped, a metric we want to see
        beta=0.04, max_steps=4, save_steps=2,
        ledger_url=ledger.url, ledger_token=ledger.token, reporter_flush_timeout_s=60,
    )  # fmt: skip
    cfg = load_config(None, keys)
    result = train(cfg)

    # Same run, steps after the parent's last (4): checkpoints 6 and 8, marked grpo.
    assert result.run_name == "t-grpo" and result.global_step == 8 and result.spool_pending == 0
    assert [p.name for p in result.checkpoints] == ["checkpoint-6", "checkpoint-8"]
    for ckpt in result.checkpoints:
        marker = read_marker(ckpt)
        assert marker is not None
        verify_marker(ckpt, marker, hashes=True)
        check_hf_checkpoint(ckpt)
        assert (marker.run, marker.step, marker.algorithm) == ("t-grpo", int(ckpt.name[11:]), "grpo")
    assert read_marker(sft.checkpoints[0]).algorithm == "sft"

    client = ledger.client()
    assert sorted(c.step for c in client.list_checkpoints("t-grpo")) == [4, 6, 8]
    rows = {(r.step, r.key): r.value for r in client.train_metrics("t-grpo")}
    for step in (5, 6, 7, 8):
        for key in (
            "train/rewards/strict/mean",
            "train/rewards/strict/std",
            "train/rewards/format/mean",
            "train/completions/mean_length",
            "train/completions/clipped_ratio",
            "train/kl",
            "train/loss",
        ):
            assert (step, key) in rows, (step, key)
        assert rows[(step, "train/stage")] == 1.0
        assert rows[(step, "train/init_step")] == 4.0  # the branch point: SFT step 4's weights
        assert 0.0 <= rows[(step, "train/completions/clipped_ratio")] <= 1.0
    assert rows[(4, "train/stage")] == 0.0  # the stage boundary on the shared axis
    logged = {(e["step"], f"train/{k}"): v for e in result.log_history for k, v in e.items() if k != "step"}
    assert math.isclose(rows[(6, "train/reward")], logged[(6, "train/reward")], rel_tol=1e-6)

    # The reward TRL trained on is the grader's verdict on each logged completion.
    assert regrade_logged_completions(root / "grpo", get_task("ones_digit", n_train=400, n_test=50)) >= 8

    # One W&B run (the ledger writes it) holds both stages on one step axis.
    assert ledger.flush_wandb() == 0
    history = read_offline_history(ledger.wandb_dir, client.get_run("t-grpo").wandb_run_id)
    by_step = {
        (int(row["train/global_step"]), k)
        for row in history
        if "train/global_step" in row
        for k in row
        if k.startswith("train/")
    }
    assert (2, "train/loss") in by_step  # SFT
    assert {
        (8, "train/rewards/strict/mean"),
        (8, "train/stage"),
        (8, "train/kl"),
        (8, "train/init_step"),
    } <= by_step
