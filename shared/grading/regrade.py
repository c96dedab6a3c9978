"""Re-grade a stored job: pull its samples from the ledger, grade them again with the current
grader, and store the new grades and metrics (`duet regrade`, admin token)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from shared.grading.answer_format import AnswerFormat
from shared.grading.grade import GRADER_VERSION, grade_response
from shared.grading.metrics import aggregate

if TYPE_CHECKING:
    from shared.client import LedgerClient
    from shared.schemas import Sample


@dataclass(frozen=True)
class RegradeSummary:
    job: int
    format: AnswerFormat
    grader_version: str
    samples: int
    changed: int  # samples whose correctness or category differs from the stored grade
    accuracy: float | None
    result_grader_version: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fetch_samples(client: LedgerClient, job_id: int, *, page_size: int = 500) -> list[Sample]:
    """Every stored sample of a job, `page_size` per request."""
    samples: list[Sample] = []
    while True:
        page = client.samples(job_id, offset=len(samples), limit=page_size)
        samples.extend(page.items)
        if not page.items or len(samples) >= page.total:
            return samples


def regrade_job(
    client: LedgerClient, job_id: int, fmt: AnswerFormat | None = None, *, page_size: int = 500
) -> RegradeSummary:
    """Grade every stored sample of `job_id` again (in answer format `fmt`, default the job's task
    format) and post the new grades and metrics. ValueError when the job has no stored samples."""
    from shared.tasks import get_task

    job = client.get_job(job_id)
    if fmt is None:
        fmt = get_task(job.spec.task, **job.spec.options).answer_format
    samples = fetch_samples(client, job_id, page_size=page_size)
    if not samples:
        raise ValueError(f"job {job_id} has no stored samples to regrade")
    regraded, changed = [], 0
    for sample in samples:
        grade = grade_response(sample.response, sample.gold, fmt, sample.finish_reason)
        new = sample.model_copy(
            update={
                "correct": grade.correct,
                "format_ok": grade.format_ok,
                "extracted": grade.extracted,
                "category": grade.category,
            }
        )
        changed += (new.correct, new.category) != (sample.correct, sample.category)
        regraded.append(new)
    metrics = aggregate(regraded, k=job.spec.sampling.n)
    result = client.regrade(job_id, grader_version=GRADER_VERSION, metrics=metrics, samples=regraded)
    return RegradeSummary(
        job=job_id,
        format=fmt,
        grader_version=GRADER_VERSION,
        samples=len(regraded),
        changed=changed,
        accuracy=metrics.get("accuracy"),
        result_grader_version=result.grader_version,
    )
