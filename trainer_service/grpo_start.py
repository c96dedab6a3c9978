"""Where a GRPO stage starts: its init checkpoint (`init_from: PATH`, or `init_from_best: RUN`,
the ledger's best checkpoint of RUN by eval/accuracy, or with `init_from_step: N` RUN's checkpoint
at step N), its run (the parent's, continued on its step
axis from `stage_offset` = the parent's last step, or a new one naming its parent) and the stage
record that lets `--resume` continue the same axis."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.checkpoint import CheckpointError, published_checkpoints, read_marker, verify_marker
from shared.schemas import CheckpointState
from trainer_service.config import Algorithm, ConfigError, TrainConfig

log = logging.getLogger("duet.trainer")

# Where a GRPO stage records its offset, so that --resume continues the same step axis.
STAGE_FILE = ".duet/stage.json"
BEST_METRIC = "eval/accuracy"


@dataclass(frozen=True)
class Start:
    init: str  # model dir (or hub id) the policy is loaded from
    run_name: str
    parent_run: str | None  # the run the init checkpoint belongs to (None: a base model)
    parent_step: int | None
    stage_offset: int  # 0 for a new run; the parent's last step when continuing it


def _client(cfg: TrainConfig) -> Any:
    from shared.client import LedgerClient

    return LedgerClient(settings=cfg.client_settings(), retry_for_s=5.0)


def _best_checkpoint(cfg: TrainConfig) -> tuple[str, int]:
    """(path, step) of the `init_from_best` run's best checkpoint by eval/accuracy, per the ledger."""
    from shared.client import DuetClientError, error_detail

    run = cfg.init_from_best
    with _client(cfg) as client:
        try:
            best = client.best(run, metric=BEST_METRIC, mode="max", task=cfg.task)
        except DuetClientError as e:
            detail = error_detail(e) if hasattr(e, "status") else str(e)
            raise ConfigError(
                f"init_from_best: no best checkpoint of run {run!r} by {BEST_METRIC}: {detail}"
            ) from e
    log.info("init_from_best %s: step %d (%s %.4g) %s", run, best.row.step, BEST_METRIC,
             best.row.metrics.get(BEST_METRIC, float("nan")), best.row.path)  # fmt: skip
    return best.row.path, best.row.step


def _checkpoint_at_step(cfg: TrainConfig) -> tuple[str, int]:
    """(path, step) of the `init_from_best` run's checkpoint at `init_from_step`, per the ledger."""
    from shared.client import DuetClientError

    run, step = cfg.init_from_best, cfg.init_from_step
    with _client(cfg) as client:
        try:
            rows = client.list_checkpoints(str(run))
        except DuetClientError as e:
            raise ConfigError(f"init_from_best: the ledger has no run {run!r} to start from: {e}") from e
    by_step = {c.step: c for c in rows}
    row = by_step.get(int(step or 0))
    if row is None:
        have = ", ".join(str(s) for s in sorted(by_step)) or "none"
        raise ConfigError(
            f"init_from_step: run {run!r} has no checkpoint at step {step} (it has: {have}); set "
            "init_from_step to one of those, or null for the run's best"
        )
    if row.state is not CheckpointState.present:
        raise ConfigError(
            f"init_from_step: run {run!r}'s checkpoint at step {step} is {row.state.value} (retention); "
            "choose a step that is still present, or pin the start (`duet pin`) before retention runs"
        )
    log.info("init_from_step %s: step %d %s", run, row.step, row.path)
    return row.path, row.step


def parent_last_step(cfg: TrainConfig, run: str, run_dir: Path) -> int:
    """The last step the parent run has anything at: its published checkpoints next to the init
    checkpoint and, when the ledger answers, its registered checkpoints and train metrics."""
    from shared.client import DuetClientError

    steps = [0]
    for _step, path in published_checkpoints(run_dir):
        marker = read_marker(path)
        if marker is not None and marker.run == run:
            steps.append(marker.step)
    if cfg.report:
        try:
            with _client(cfg) as client:
                steps += [c.step for c in client.list_checkpoints(run)]
                steps += [r.step for r in client.train_metrics(run)]
        except DuetClientError as e:
            log.warning(
                "ledger not answering (%s): the stage offset of run %s comes from %s alone", e, run, run_dir
            )
    return max(steps)


def resolve_start(cfg: TrainConfig) -> Start:
    if cfg.init_from is None and cfg.init_from_best is None:
        return Start(cfg.model, cfg.resolved_run_name, None, None, 0)
    key = "init_from" if cfg.init_from is not None else "init_from_best"
    ledger_step = None  # the start's step as the ledger knows it (init_from_best / init_from_step)
    if cfg.init_from is not None:
        raw = cfg.init_from
    elif cfg.init_from_step is not None:
        raw, ledger_step = _checkpoint_at_step(cfg)
    else:
        raw, ledger_step = _best_checkpoint(cfg)
    path = Path(raw).expanduser().resolve()
    if not (path / "config.json").is_file():
        what = (
            "a LoRA adapter (merge it into its base first)"
            if (path / "adapter_config.json").is_file()
            else ("no config.json")
        )
        raise ConfigError(f"{key}: {path} is not a full-model checkpoint dir ({what})")
    try:
        marker = read_marker(path)
        if marker is not None:
            verify_marker(path, marker)
    except CheckpointError as e:
        raise ConfigError(f"{key}: {e}") from e
    # The start's run and step: its marker's, or for init_from_best the ledger's (the best may be
    # the run's step-0 baseline, the base model, which has no marker).
    parent: tuple[str, int] | None = (marker.run, marker.step) if marker is not None else None
    if parent is None and ledger_step is not None:
        parent = (str(cfg.init_from_best), ledger_step)
    if not cfg.continue_run:
        run_name = cfg.resolved_run_name
        if parent is not None and run_name == parent[0]:
            raise ConfigError(
                f"run_name: continue_run: false starts a new run; {run_name!r} is the parent's name, choose another"
            )
        return Start(str(path), run_name, parent[0] if parent else None, parent[1] if parent else None, 0)
    if parent is None:
        raise ConfigError(
            f"continue_run: {path} has no duet marker, so its run is unknown; set continue_run: false "
            "to start a new run from it"
        )
    run, step = parent
    if "run_name" in cfg.model_fields_set and cfg.run_name != run:
        raise ConfigError(
            f"run_name: {cfg.run_name!r}, but continue_run: true continues the parent run {run!r}; "
            "leave run_name out or set continue_run: false"
        )
    offset = parent_last_step(cfg, run, path.parent)
    return Start(str(path), run, run, step, offset)


def read_stage_record(output_dir: Path) -> dict[str, Any] | None:
    p = output_dir / STAGE_FILE
    return json.loads(p.read_text()) if p.is_file() else None


def write_stage_record(output_dir: Path, start: Start) -> None:
    p = output_dir / STAGE_FILE
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"algorithm": Algorithm.grpo.value, **dataclasses.asdict(start)}, indent=2))
