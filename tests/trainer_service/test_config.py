"""Bad configs fail before any model is loaded, naming the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from tests.trainer_service.helpers import TINY_CONFIG
from trainer_service.config import ConfigError, load_config, parse_overrides

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_cli_flags_override_yaml_in_trl_spelling(tiny_model: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DUET_TRAIN_SEED", "7")
    monkeypatch.setenv("DUET_TRAIN_LOGGING_STEPS", "3")
    cfg = load_config(
        TINY_CONFIG,
        parse_overrides(
            [
                "--model",
                str(tiny_model),
                "--max_steps",
                "20",
                "--save_steps=10",
                "--lora.r",
                "4",
                "--seed",
                "1",
            ]
        ),
    )
    assert (cfg.max_steps, cfg.save_steps, cfg.lora.r, cfg.kind) == (20, 10, 4, "lora")
    assert cfg.seed == 1  # flag beats env
    assert cfg.logging_steps == 3  # env beats the YAML file (5)


def test_unknown_key_names_it_and_suggests(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"unknown key 'learnig_rate' \(did you mean learning_rate\?\)"):
        load_config(_write(tmp_path, "model: org/m\nlearnig_rate: 0.1\n"))
    with pytest.raises(ConfigError, match=r"unknown key 'lora.rank'"):
        load_config(None, parse_overrides(["--model", "org/m", "--lora.rank", "8"]))


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("model: org/m\nlr_scheduler_type: cosin\n", "lr_scheduler_type: Input should be 'linear', 'cosine'"),
        ("model: org/m\nlearning_rate: -1\n", "learning_rate: Input should be greater than 0"),
        ("model: ./no/such/dir\n", "model: Value error, './no/such/dir': no such model dir"),
        ("learning_rate: 0.1\n", "model: required key is missing"),
        ("model: org/m\nload_in_4bit: true\n", "load_in_4bit (QLoRA) needs a `lora:` block"),
        ("model: org/m\nwarmup_ratio: 0.1\nwarmup_steps: 3\n", "warmup_ratio and warmup_steps"),
        (
            "model: org/m\nretention: {best_mode: biggest}\n",
            "retention.best_mode: Input should be 'max' or 'min'",
        ),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(tmp_path: Path, yaml_text: str, needle: str):
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, yaml_text))
    assert needle in str(e.value)


def test_duet_train_prints_the_error_and_loads_nothing(tiny_model: Path, tmp_path: Path):
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app,
        ["train", "--config", str(TINY_CONFIG), "--model", str(tiny_model),
         "--output_dir", str(out), "--lr_scheduler_type", "cosine_annealing"],
    )  # fmt: skip
    assert r.exit_code == 2
    assert "lr_scheduler_type" in r.output and "'cosine'" in r.output
    assert not out.exists()

    # Errors only visible with TRL/the task at hand also come before the model: nothing written.
    for flags, needle in [
        (["--sft_args", "{neftune_noise: 5, gradient_acumulation: 2}"], "did you mean"),
        (["--sft_args", "{save_total_limit: 2}"], "sft_args.save_total_limit: set by duet"),
        (["--task", "no_such_task"], "unknown task 'no_such_task'"),
        (["--task_options", "{n_tran: 5}"], "unknown option 'n_tran'"),
    ]:
        r = CliRunner().invoke(
            app,
            ["train", "--config", str(TINY_CONFIG), "--model", str(tiny_model),
             "--output_dir", str(out), "--report", "false", *flags],
        )  # fmt: skip
        assert r.exit_code == 2, r.output
        assert needle in r.output, r.output
        assert not out.exists()


def test_qlora_fails_clearly_without_a_gpu(tiny_model: Path, tmp_path: Path):
    import torch

    from trainer_service.train import train

    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    cfg = load_config(
        None,
        {"model": str(tiny_model), "output_dir": str(tmp_path / "o"), "load_in_4bit": True, "lora": {"r": 4}},
    )
    with pytest.raises(ConfigError, match="load_in_4bit: QLoRA needs a CUDA GPU"):
        train(cfg)


@pytest.mark.parametrize(
    "path", [TINY_CONFIG, REPO / "configs/tiny-lora.yaml", REPO / "configs/qwen2.5-math-1.5b.yaml"]
)
def test_shipped_configs_validate(path: Path, tiny_model: Path):
    over = {} if path.name.startswith("qwen") else {"model": str(tiny_model)}
    cfg = load_config(path, over)
    assert cfg.retention.enabled
