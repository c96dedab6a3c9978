"""What `duet up` shows: the live progress panel while it runs, and the final report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cli.tables import compact_table, scores_table
from shared.client import LedgerClient, LedgerError
from shared.schemas import ACTIVE_STATUSES, FINISHED_STATUSES, Algorithm, LoadMode, ScoreRow

ACCURACY = "eval/accuracy"


@dataclass
class Progress:
    step: int = 0
    loss: float | None = None
    checkpoints: int = 0
    jobs: dict[str, int] = field(default_factory=dict)  # job status -> count
    latest: tuple[int, float] | None = None  # (step, accuracy)
    stage: Algorithm = Algorithm.sft  # the training stage now running

    def table(self, run: str, trainer_alive: bool) -> Table:
        panel = Table(title=f"duet up — run {run}", show_header=False, box=None)
        panel.add_row(
            f"trainer ({self.stage.value})",
            f"step {self.step}"
            + (f"  loss {self.loss:.4f}" if self.loss is not None else "")
            + ("" if trainer_alive else "  (finished)"),
        )
        panel.add_row("checkpoints seen", str(self.checkpoints))
        panel.add_row("jobs", "  ".join(f"{k} {v}" for k, v in sorted(self.jobs.items())) or "-")
        if self.latest:
            panel.add_row("latest accuracy", f"{self.latest[1]:.3f} at step {self.latest[0]}")
        return panel


def poll(client: LedgerClient, run: str, progress: Progress) -> None:
    """Refresh `progress` from the ledger; a ledger error leaves it as it was until the next poll."""
    try:
        losses = client.train_metrics(run, key="train/loss")
        if losses:
            progress.step, progress.loss = losses[-1].step, losses[-1].value
        progress.checkpoints = len(client.list_checkpoints(run))
        counts: dict[str, int] = {}
        for job in client.list_jobs(run=run):
            counts[job.status.value] = counts.get(job.status.value, 0) + 1
        progress.jobs = counts
        rows = [r for r in client.scores(run) if ACCURACY in r.metrics]
        if rows:
            progress.latest = (rows[-1].step, rows[-1].metrics[ACCURACY])
    except LedgerError:
        pass  # e.g. no results yet for `scores`; the next poll retries


def all_scored(client: LedgerClient, run: str, checkpoint_dirs: list[Path]) -> bool:
    """Every checkpoint published in `checkpoint_dirs` (marker present; one dir per training stage)
    plus the baseline has a finished job."""
    from shared.checkpoint import published_checkpoints

    published = {step for d in checkpoint_dirs for step, _ in published_checkpoints(d)}
    jobs = client.list_jobs(run=run)
    finished = {j.step for j in jobs if j.status in FINISHED_STATUSES}
    pending = any(j.status in ACTIVE_STATUSES for j in jobs)
    return not pending and 0 in finished and published <= finished


def load_summary(rows: list[ScoreRow]) -> str:
    """ "N swapped, M rebuilt": how the worker's engine got to each scored checkpoint (the first
    build and adapters served over a loaded base are counted apart)."""
    counts = Counter(r.load_mode for r in rows if r.load_mode is not None)
    text = f"checkpoint loads: {counts[LoadMode.swap]} swapped, {counts[LoadMode.rebuild]} rebuilt"
    extra = [
        f"{counts[m]} {label}"
        for m, label in ((LoadMode.lora, "LoRA"), (LoadMode.initial, "initial"))
        if counts[m]
    ]
    return text + (f" ({', '.join(extra)})" if extra else "")


def stage_summary(rows: list[ScoreRow], starts: dict[Algorithm, int] | None = None) -> str | None:
    """For a run with a stage after SFT (GRPO): each stage's steps and the best accuracy it
    reached, and for a stage whose start step is known (`starts`) that start's accuracy and the
    gain over it (the honest before/after: a stage may start below the run's best); None for a
    one-stage run."""
    scored = [r for r in rows if ACCURACY in r.metrics]
    later = [r for r in scored if r.algorithm not in (None, Algorithm.sft)]
    if not later:
        return None
    acc_at = {r.step: r.metrics[ACCURACY] for r in scored}
    parts = []
    for stage in dict.fromkeys(r.algorithm for r in scored if r.algorithm is not None):
        mine = [r for r in scored if r.algorithm is stage]
        best = max(mine, key=lambda r: r.metrics[ACCURACY])
        top = best.metrics[ACCURACY]
        start = (starts or {}).get(stage)
        span = f"steps {mine[0].step}-{mine[-1].step}, best {top:.3f} at step {best.step}"
        text = f"{stage.value}: {span}"
        if start in acc_at:
            base = acc_at[start]
            text = f"{stage.value} from step {start} ({base:.3f}): {span} ({top - base:+.3f} over its start)"
        parts.append(text)
    return "stages — " + "; ".join(parts)


def final_report(
    console: Console,
    client: LedgerClient,
    run: str,
    workdir: Path,
    starts: dict[Algorithm, int] | None = None,
) -> None:
    """`starts`: the step each later stage started from (GRPO's init checkpoint), when known."""
    rows = client.scores(run)
    best = client.best(run, metric=ACCURACY) if rows else None
    console.print(scores_table(rows, best_step=best.row.step if best else None))
    tasks = client.run_tasks(run)
    if len(tasks) > 1:  # a suite: every entry's accuracy per checkpoint (and its flip rate)
        console.print(compact_table({t: client.scores(run, task=t) for t in tasks}))
    if best:
        base = next((r for r in rows if r.step == 0), None)
        base_acc = f"{base.metrics.get(ACCURACY, float('nan')):.3f}" if base else "n/a"
        console.print(
            f"best checkpoint: step {best.row.step}  accuracy {best.row.metrics[ACCURACY]:.3f}"
            f"  (baseline step 0: {base_acc})  {best.row.path}"
        )
    if summary := stage_summary(rows, starts):
        console.print(summary)
    console.print(load_summary(rows))
    info = client.get_run(run)
    console.print(
        f"W&B run id {info.wandb_run_id} (offline files in {workdir / 'wandb'}; `wandb sync` uploads them)"
    )
    console.print(f"database {workdir / 'duet.db'}   logs {workdir / 'logs'}")
