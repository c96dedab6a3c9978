"""duet's checkpoint retention: keep the last K, the best K by one suite entry's metric, the step-0
baseline, the final checkpoint and every pinned one; delete the rest only as the ledger grants.

The trainer only proposes. One ledger call (`retention_grant`) checks each candidate and marks it
`deleting` in the same transaction, so a job queued after the plan was made either lands first
(and the grant is refused) or is refused itself (409: the checkpoint is being deleted); the
trainer deletes exactly what was granted and reports each deletion back. A pass that dies between
grant and delete leaves `deleting` checkpoints, which the next pass (e.g. after a restart)
finishes. When the ledger cannot be asked, nothing is deleted.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.checkpoint import published_checkpoints
from shared.client import DuetClientError, LedgerClient, LedgerError
from shared.retention import RetentionCandidate
from shared.schemas import CheckpointRead, CheckpointState, ScoreRow
from shared.suite import (
    RESERVED_NAMES,
    Suite,
    SuiteError,
    checkpoint_ordinals,
    is_final_checkpoint,
    load_suite,
)
from trainer_service.config import RetentionSettings

log = logging.getLogger("duet.trainer")


class RetentionError(RuntimeError):
    """Retention cannot decide safely (e.g. the ranking metric is in no result); nothing is deleted."""


@dataclass
class RetentionHooks:
    """Seams between the steps of one pass, for tests that interleave other ledger calls with it
    deterministically: `after_plan` gets the candidates before the ledger is asked, `after_grant`
    the granted checkpoints before any file is deleted."""

    after_plan: Callable[[list[RetentionCandidate]], None] | None = None
    after_grant: Callable[[list[CheckpointRead]], None] | None = None


@dataclass
class RetentionPlan:
    keep: dict[int, list[str]] = field(default_factory=dict)  # step -> reasons
    candidates: list[RetentionCandidate] = field(default_factory=list)  # asked of the ledger


@dataclass(frozen=True)
class BestKey:
    """What keep_best ranks by: one metric (a ScoreRow key, `eval/<metric>`) of one suite entry."""

    entry: str
    metric: str


def best_key(policy: RetentionSettings, headline: str, entries: list[str]) -> BestKey:
    """`eval/<entry>/<metric>` -> that entry; `eval/<metric>` -> the headline entry (or task)."""
    bare = policy.best_metric.removeprefix("eval/")
    head, _, rest = bare.partition("/")
    if rest and head in entries and head not in RESERVED_NAMES:
        return BestKey(head, f"eval/{rest}")
    return BestKey(headline, f"eval/{bare}")


def rank_best(scores: list[ScoreRow], key: BestKey, mode: str, steps: set[int]) -> list[int]:
    """Steps among `steps` ordered best first by `key.metric` (ties: the earlier step first)."""
    rows = [r for r in scores if r.step in steps]
    if rows and not any(key.metric in r.metrics for r in rows):
        known = sorted({k for r in rows for k in r.metrics})
        raise RetentionError(
            f"keep_best ranks by {key.metric} of entry {key.entry!r}, which no result has; known: {known}"
        )
    values = [(r.metrics.get(key.metric), r.step) for r in rows]
    ranked = [(v, s) for v, s in values if v is not None and math.isfinite(v)]  # NaN never wins
    sign = -1 if mode == "max" else 1
    ranked.sort(key=lambda vs: (sign * vs[0], vs[1]))
    return [s for _, s in ranked]


def plan_retention(
    published: list[tuple[int, Path]],
    policy: RetentionSettings,
    *,
    ledger: dict[int, CheckpointRead],
    best: list[int],
    due: Callable[[CheckpointRead, Path], list[str]],
) -> RetentionPlan:
    """Which published checkpoints to propose for deletion. Pure: everything is passed in.
    `ledger`: the run's registered checkpoints by step; `best`: steps best first; `due`: the
    suite entries that must have a final result before a checkpoint may go."""
    plan = RetentionPlan()

    def keep(step: int, why: str) -> None:
        plan.keep.setdefault(step, []).append(why)

    steps = [s for s, _ in published]
    for s in steps[-policy.keep_last :]:
        keep(s, "last")
    for s in [s for s in best if s in steps][: policy.keep_best]:
        keep(s, f"best by {policy.best_metric}")
    for s, path in published:
        ck = ledger.get(s)
        if s == 0:
            keep(s, "step-0 baseline")
        if is_final_checkpoint(path):
            keep(s, "final checkpoint")
        if ck is None:
            keep(s, "not registered yet")
        elif ck.pinned:
            keep(s, "pinned")
        elif ck.state != CheckpointState.present:
            keep(s, f"ledger says {ck.state.value}")
        if s not in plan.keep and ck is not None:
            plan.candidates.append(RetentionCandidate(checkpoint_id=ck.id, due=due(ck, path)))
    return plan


def delete_checkpoint(path: Path) -> None:
    """Rename first (one atomic step: the worker stops seeing `checkpoint-N` and its marker at once),
    then remove the files. A tomb left by a pass that died half-way is removed too."""
    tomb = path.with_name(f".deleted-{path.name}")
    if path.exists():
        if tomb.exists():
            shutil.rmtree(tomb)
        path.rename(tomb)
    if tomb.exists():
        shutil.rmtree(tomb)


def _scores(client: LedgerClient, run: str | int, entry: str) -> list[ScoreRow]:
    try:
        return client.scores(run, task=entry)
    except LedgerError as e:
        if e.status in (404, 422):  # the ledger says "no results for this entry yet": nothing scored
            return []
        raise


def _due_fn(
    policy: RetentionSettings, suite: Suite | None, task: str | None, run_steps: list[int]
) -> Callable[[CheckpointRead, Path], list[str]]:
    """The suite entries due for a checkpoint, by the suite's cadence (as the watcher enqueues)."""
    ordinals = checkpoint_ordinals(run_steps)

    def due(ck: CheckpointRead, path: Path) -> list[str]:
        if not policy.require_eval:
            return []
        if suite is None:
            if task is None:
                raise RetentionError(
                    "retention needs the trainer's task or retention.suite to know what is due"
                )
            return [task]
        return [e.name for e in suite.due_entries(ordinals[ck.step], final=is_final_checkpoint(path))]

    return due


def _finish(client: LedgerClient, ck: CheckpointRead, path: Path) -> bool:
    """Delete a granted checkpoint's files and report it; False (and still `deleting`, for the next
    pass to finish) when either step fails."""
    try:
        delete_checkpoint(path)
    except OSError as e:
        log.error("retention: could not delete %s (step %d), retried next pass: %s", path, ck.step, e)
        return False
    try:
        client.report_deleted(ck.id)
    except DuetClientError as e:
        log.warning("retention: deleted %s but could not report it yet (%s); reported next pass", path, e)
        return False
    log.info("retention: deleted %s (step %d)", path, ck.step)
    return True


def _mine(output_dir: Path, checkpoints: list[CheckpointRead]) -> dict[int, CheckpointRead]:
    """The run's checkpoints that live in this trainer's output dir, by step."""
    root = output_dir.resolve()
    return {c.step: c for c in checkpoints if Path(c.path).resolve().parent == root}


def apply_retention(
    output_dir: Path,
    client: LedgerClient,
    run: str | int,
    policy: RetentionSettings,
    *,
    task: str | None = None,
    hooks: RetentionHooks | None = None,
) -> list[Path]:
    """Finish interrupted deletions, plan, ask the ledger, delete what it granted. Returns the
    deleted dirs. `task`: the trainer's eval task, the one due entry when there is no suite."""
    if not policy.enabled:
        return []
    hooks = hooks or RetentionHooks()
    output_dir = Path(output_dir)
    deleted: list[Path] = []
    try:
        suite = load_suite(policy.suite) if policy.suite is not None else None
        checkpoints = client.list_checkpoints(run)
        mine = _mine(output_dir, checkpoints)
        for c in mine.values():  # granted by an earlier pass that did not get to delete or report
            if c.state == CheckpointState.deleting and _finish(client, c, Path(c.path)):
                deleted.append(Path(c.path))
        published = published_checkpoints(output_dir)
        if len(published) <= policy.keep_last:
            return deleted
        headline = suite.headline.name if suite else (task or "")
        key = best_key(policy, headline, [e.name for e in suite.entries] if suite else [headline])
        best = []
        if policy.keep_best:
            steps = {s for s, _ in published if s in mine}
            best = rank_best(_scores(client, run, key.entry), key, policy.best_mode, steps)
        due = _due_fn(policy, suite, task, [c.step for c in checkpoints])
        plan = plan_retention(published, policy, ledger=mine, best=best, due=due)
        if not plan.candidates:
            return deleted
        if hooks.after_plan:
            hooks.after_plan(plan.candidates)
        answer = client.retention_grant(run, plan.candidates)
    except DuetClientError as e:
        log.warning("retention skipped, ledger not answering (%s); nothing more deleted", e)
        return deleted
    except (RetentionError, SuiteError) as e:
        log.error("retention skipped: %s; nothing more deleted", e)
        return deleted
    for refusal in answer.refused:
        log.info("retention: keeping step %d: %s", refusal.step, refusal.reason)
    if hooks.after_grant:
        hooks.after_grant(answer.granted)
    asked = {c.checkpoint_id for c in plan.candidates}
    for ck in answer.granted:
        if ck.id in asked and _finish(client, ck, Path(ck.path)):
            deleted.append(Path(ck.path))
    return deleted
