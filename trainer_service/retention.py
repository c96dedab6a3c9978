"""duet's checkpoint retention: keep the last K, the best K by an eval metric, and everything whose
eval is not finished. It asks the ledger; when the ledger cannot be asked it deletes nothing."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from shared.checkpoint import published_checkpoints
from shared.client import DuetClientError, LedgerClient, LedgerError
from shared.schemas import ACTIVE_STATUSES, ScoreRow
from trainer_service.config import RetentionSettings

log = logging.getLogger("duet.trainer")


@dataclass
class RetentionPlan:
    keep: dict[int, list[str]] = field(default_factory=dict)  # step -> reasons
    delete: list[tuple[int, Path]] = field(default_factory=list)


def plan_retention(
    published: list[tuple[int, Path]],
    policy: RetentionSettings,
    *,
    scores: list[ScoreRow],
    registered: set[int],
    busy: set[int],
) -> RetentionPlan:
    """Decide which published checkpoints to delete. Pure: everything it needs is passed in."""
    plan = RetentionPlan()

    def keep(step: int, why: str) -> None:
        plan.keep.setdefault(step, []).append(why)

    steps = [s for s, _ in published]
    for s in steps[-policy.keep_last :]:
        keep(s, "last")
    scored = {r.step: r for r in scores if r.metrics}
    ranked = [r for r in scored.values() if policy.best_metric in r.metrics and r.step in steps]
    ranked.sort(key=lambda r: r.metrics[policy.best_metric], reverse=policy.best_mode == "max")
    for r in ranked[: policy.keep_best]:
        keep(r.step, "best")
    for s in steps:
        if s in busy:
            keep(s, "eval job queued or running")
        elif policy.require_eval and s not in scored:
            keep(s, "not registered yet" if s not in registered else "not evaluated yet")
    plan.delete = [(s, p) for s, p in published if s not in plan.keep]
    return plan


def delete_checkpoint(path: Path) -> None:
    """Rename first (one atomic step: the worker stops seeing `checkpoint-N` and its marker at once),
    then remove the files."""
    tomb = path.with_name(f".deleted-{path.name}")
    if tomb.exists():
        shutil.rmtree(tomb)
    path.rename(tomb)
    shutil.rmtree(tomb)


def _scores(client: LedgerClient, run: str | int, task: str | None) -> list[ScoreRow]:
    try:
        return client.scores(run, task=task)
    except LedgerError as e:
        if e.status in (404, 422):  # the ledger says "no results for this task yet": nothing scored
            return []
        raise


def apply_retention(
    output_dir: Path,
    client: LedgerClient,
    run: str | int,
    policy: RetentionSettings,
    *,
    task: str | None = None,
) -> list[Path]:
    """Ask the ledger, then delete what the policy allows. Returns the deleted dirs."""
    if not policy.enabled:
        return []
    published = published_checkpoints(output_dir)
    if len(published) <= policy.keep_last:
        return []
    try:
        mine = {Path(p).resolve() for _, p in published}
        registered = {c.step for c in client.list_checkpoints(run) if Path(c.path).resolve() in mine}
        scores = [r for r in _scores(client, run, task) if r.step in registered]
        busy = {j.step for status in ACTIVE_STATUSES for j in client.list_jobs(status=status, run=run)}
    except DuetClientError as e:
        log.warning("retention skipped, ledger not answering (%s); no checkpoint deleted", e)
        return []
    plan = plan_retention(published, policy, scores=scores, registered=registered, busy=busy)
    deleted = []
    for step, path in plan.delete:
        try:
            delete_checkpoint(path)
            deleted.append(path)
            log.info("retention: deleted %s (step %d)", path, step)
        except OSError as e:
            log.warning("retention: could not delete %s: %s", path, e)
    return deleted
