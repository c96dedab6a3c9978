"""Re-grade stored jobs: pull their samples from the ledger, grade them again with the current
grader (both verdicts), and store the new grades and metrics (`duet regrade`, admin token). Nothing
is generated. The ledger keeps which grader version produced the replaced metrics
(`ResultRead.info["regrades"]`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from shared.grading.answer_format import AnswerFormat
from shared.grading.grade import GRADER_VERSION, grade_many
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
    changed: int  # samples whose verdicts (strict, format-free) or category differ from the stored grade
    accuracy: float | None
    answer_accuracy: float | None
    previous_grader_version: str | None
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
    previous = client.result(job_id).grader_version
    grades = grade_many([(x.response, x.gold, fmt, x.finish_reason) for x in samples])
    regraded, changed = [], 0
    for sample, grade in zip(samples, grades, strict=True):
        new = sample.model_copy(
            update={
                "correct": grade.correct,
                "answer_correct": grade.answer_correct,
                "format_ok": grade.format_ok,
                "extracted": grade.extracted,
                "category": grade.category,
            }
        )
        before = (sample.correct, sample.answer_correct, sample.category)
        changed += (new.correct, new.answer_correct, new.category) != before
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
        answer_accuracy=metrics.get("answer_accuracy"),
        previous_grader_version=previous,
        result_grader_version=result.grader_version,
    )


def regrade_run(
    client: LedgerClient, run: str | int, fmt: AnswerFormat | None = None, *, page_size: int = 500
) -> list[RegradeSummary]:
    """Re-grade every finished job of `run` that stored samples (jobs without samples are skipped)."""
    from shared.schemas import JobStatus

    jobs = client.list_jobs(status=JobStatus.done, run=run, limit=10_000)
    summaries = []
    for job in sorted(jobs, key=lambda j: j.id):
        if client.samples(job.id, limit=1).total == 0:
            continue
        summaries.append(regrade_job(client, job.id, fmt, page_size=page_size))
    return summaries
