"""Typed HTTP client for the ledger API, used by the worker, the trainer and the CLI.

Transient failures (connection refused, timeouts, 5xx, 429) are retried with backoff; a client
error is raised at once as a `LedgerError` carrying the server's message. Every error this client
raises is a `DuetClientError`: `LedgerUnavailable` (not reachable, or still 5xx/429 when the retry
window ends: worth trying again later) or `LedgerError` (refused with a 4xx: final; `AuthError`
and `StaleAttempt` are kinds of it).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from shared.client_errors import (  # noqa: F401  (callers import the errors from here)
    AuthError,
    DuetClientError,
    LedgerError,
    LedgerUnavailable,
    StaleAttempt,
    error_detail,
)
from shared.config import ClientSettings
from shared.retention import RetentionCandidate, RetentionGrant, RetentionGrantRequest
from shared.schemas import (
    BestResult,
    CheckpointCreate,
    CheckpointRead,
    ClaimRequest,
    CompareResult,
    CompleteRequest,
    EnqueueResult,
    EvalSpec,
    ExportPage,
    FailRequest,
    HeartbeatRequest,
    IngestResult,
    JobCreate,
    JobRead,
    JobStatus,
    Lease,
    QuestionVerdict,
    RegradeRequest,
    ReleaseRequest,
    ResultRead,
    RunCreate,
    RunRead,
    RunSummary,
    Sample,
    SampleFlips,
    SamplePage,
    ScoreRow,
    TrainMetricRow,
    TrainMetricsBatch,
)

M = TypeVar("M", bound=BaseModel)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, LedgerError) and (exc.status >= 500 or exc.status == 429)


class LedgerClient:
    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = None,
        retry_for_s: float = 30.0,
        settings: ClientSettings | None = None,
    ):
        settings = settings or ClientSettings()
        self.base_url = (base_url or settings.api_url).rstrip("/")
        self.token = token if token is not None else settings.api_token
        self.retry_for_s = retry_for_s
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout or settings.timeout_s
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None) -> Any:
        """Send one request, retrying transient failures for up to `retry_for_s` seconds."""
        params = {k: v for k, v in (params or {}).items() if v is not None}

        @retry(
            retry=retry_if_exception(_transient),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=stop_after_delay(self.retry_for_s) | stop_after_attempt(1000),
            reraise=True,
        )
        def once() -> Any:
            r = self._http.request(method, path, json=json, params=params)
            if r.status_code == 204:
                return None
            if r.status_code >= 400:
                try:
                    detail = r.json().get("detail", r.text)
                except ValueError:
                    detail = r.text
                cls = {401: AuthError, 403: AuthError, 409: StaleAttempt}.get(r.status_code, LedgerError)
                raise cls(r.status_code, detail, method, str(r.url))
            return r.json()

        try:
            return once()
        except httpx.TransportError as e:
            raise LedgerUnavailable(f"ledger at {self.base_url} is unreachable: {e}") from e
        except LedgerError as e:
            if _transient(e):  # 5xx/429 past the retry window: unavailable, not a refusal (4xx)
                raise LedgerUnavailable(
                    f"ledger at {self.base_url} kept answering {e.status}: {e}", status=e.status
                ) from e
            raise

    def _post(self, path: str, body: BaseModel | None, out: type[M] | None) -> Any:
        payload = body.model_dump(mode="json") if body is not None else None
        data = self.request("POST", path, json=payload)
        return None if data is None or out is None else out.model_validate(data)

    def _get(self, path: str, out: Any, **params: Any) -> Any:
        return TypeAdapter(out).validate_python(self.request("GET", path, params=params))

    # --- runs & train metrics -----------------------------------------------------------------

    def health(self) -> dict:
        return self.request("GET", "/healthz")

    def create_run(
        self,
        name: str,
        *,
        base_model: str | None = None,
        primary_task: str | None = None,
        config: dict | None = None,
    ) -> RunRead:
        body = RunCreate(name=name, base_model=base_model, primary_task=primary_task, config=config or {})
        return self._post("/v1/runs", body, RunRead)

    def list_runs(self, *, offset: int = 0, limit: int = 1000) -> list[RunSummary]:
        """Runs without their configs (`get_run` has the config)."""
        return self._get("/v1/runs", list[RunSummary], offset=offset, limit=limit)

    def get_run(self, run: str | int) -> RunRead:
        return self._get(f"/v1/runs/{run}", RunRead)

    def log_train_metrics(self, run_id: int, rows: list[TrainMetricRow]) -> IngestResult:
        return self._post("/v1/train-metrics", TrainMetricsBatch(run_id=run_id, rows=rows), IngestResult)

    def train_metrics(
        self, run: str | int, key: str | None = None, since_step: int | None = None
    ) -> list[TrainMetricRow]:
        """The run's train metrics by step; `since_step`: only those after that step (for polls)."""
        return self._get(
            f"/v1/runs/{run}/train-metrics", list[TrainMetricRow], key=key, since_step=since_step
        )

    # --- checkpoints --------------------------------------------------------------------------

    def register_checkpoint(self, body: CheckpointCreate) -> CheckpointRead:
        return self._post("/v1/checkpoints", body, CheckpointRead)

    def list_checkpoints(self, run: str | int) -> list[CheckpointRead]:
        return self._get(f"/v1/runs/{run}/checkpoints", list[CheckpointRead])

    def get_checkpoint(self, checkpoint_id: int) -> CheckpointRead:
        return self._get(f"/v1/checkpoints/{checkpoint_id}", CheckpointRead)

    def pin(self, checkpoint_id: int) -> CheckpointRead:
        """Retention never deletes a pinned checkpoint."""
        return self._post(f"/v1/checkpoints/{checkpoint_id}/pin", None, CheckpointRead)

    def unpin(self, checkpoint_id: int) -> CheckpointRead:
        return self._post(f"/v1/checkpoints/{checkpoint_id}/unpin", None, CheckpointRead)

    # --- retention ----------------------------------------------------------------------------

    def retention_grant(self, run: str | int, candidates: list[RetentionCandidate]) -> RetentionGrant:
        """Ask which candidates may be deleted; each granted one is `deleting` from now on."""
        body = RetentionGrantRequest(candidates=candidates)
        return self._post(f"/v1/runs/{run}/retention/grant", body, RetentionGrant)

    def report_deleted(self, checkpoint_id: int) -> CheckpointRead:
        """A granted checkpoint's files are gone."""
        return self._post(f"/v1/checkpoints/{checkpoint_id}/deleted", None, CheckpointRead)

    # --- jobs (users) -------------------------------------------------------------------------

    def enqueue(
        self,
        spec: EvalSpec,
        *,
        checkpoint_id: int | None = None,
        path: str | None = None,
        run: str | int | None = None,
        step: int | None = None,
        priority: int = 0,
        force: bool = False,
    ) -> EnqueueResult:
        body = JobCreate(
            checkpoint_id=checkpoint_id,
            path=path,
            run=None if run is None else str(run),
            step=step,
            spec=spec,
            priority=priority,
            force=force,
        )
        return self._post("/v1/jobs", body, EnqueueResult)

    def list_jobs(
        self, *, status: JobStatus | None = None, run: str | int | None = None, limit: int = 500
    ) -> list[JobRead]:
        return self._get("/v1/jobs", list[JobRead], status=status, run=run, limit=limit)

    def get_job(self, job_id: int) -> JobRead:
        return self._get(f"/v1/jobs/{job_id}", JobRead)

    def cancel(self, job_id: int) -> JobRead:
        return self._post(f"/v1/jobs/{job_id}/cancel", None, JobRead)

    def retry(self, job_id: int) -> JobRead:
        """Admin: queue a dead or cancelled job again."""
        return self._post(f"/v1/jobs/{job_id}/retry", None, JobRead)

    def result(self, job_id: int) -> ResultRead:
        return self._get(f"/v1/jobs/{job_id}/result", ResultRead)

    def samples(
        self,
        job_id: int,
        *,
        correct: bool | None = None,
        category: str | None = None,
        truncated: bool | None = None,
        q: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> SamplePage:
        return self._get(
            f"/v1/jobs/{job_id}/samples",
            SamplePage,
            correct=correct,
            category=category,
            truncated=truncated,
            q=q,
            offset=offset,
            limit=limit,
        )

    def regrade(
        self, job_id: int, *, grader_version: str, metrics: dict[str, float], samples: list[Sample]
    ) -> ResultRead:
        """Admin: replace a finished job's metrics and samples with a re-grade."""
        body = RegradeRequest(grader_version=grader_version, metrics=metrics, samples=samples)
        return self._post(f"/v1/jobs/{job_id}/regrade", body, ResultRead)

    # --- jobs (workers) -----------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        *,
        lease_seconds: float = 60.0,
        run_id: int | None = None,
        tasks: list[str] | None = None,
        prefer_checkpoint_id: int | None = None,
    ) -> Lease | None:
        body = ClaimRequest(
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            run_id=run_id,
            tasks=tasks,
            prefer_checkpoint_id=prefer_checkpoint_id,
        )
        return self._post("/v1/jobs/claim", body, Lease)

    def heartbeat(self, lease: Lease, lease_seconds: float = 60.0) -> Lease:
        body = HeartbeatRequest(worker_id=lease.worker_id, attempt=lease.attempt, lease_seconds=lease_seconds)
        return self._post(f"/v1/jobs/{lease.job.id}/heartbeat", body, Lease)

    def complete(self, job_id: int, body: CompleteRequest) -> ResultRead:
        return self._post(f"/v1/jobs/{job_id}/complete", body, ResultRead)

    def fail(self, lease: Lease, error: str, *, retryable: bool = True) -> JobRead:
        """Fail the leased job with `error` (its tail, if it is too long to store)."""
        body = FailRequest.clipped(
            worker_id=lease.worker_id, attempt=lease.attempt, error=error, retryable=retryable
        )
        return self.fail_job(lease.job.id, body)

    def fail_job(self, job_id: int, body: FailRequest) -> JobRead:
        """`fail` with a prepared body (the worker replays spooled ones after the lease is gone)."""
        return self._post(f"/v1/jobs/{job_id}/fail", body, JobRead)

    def release(self, lease: Lease) -> JobRead:
        body = ReleaseRequest(worker_id=lease.worker_id, attempt=lease.attempt)
        return self._post(f"/v1/jobs/{lease.job.id}/release", body, JobRead)

    # --- queries ------------------------------------------------------------------------------

    def scores(self, run: str | int, task: str | None = None, *, page_size: int = 1000) -> list[ScoreRow]:
        """Every checkpoint of the run with its scores, in step order, read page by page (each page
        starts after the previous one's last step: cheap at any depth; the ledger allows 1000)."""
        rows: list[ScoreRow] = []
        while True:
            after = rows[-1].step if rows else None
            page = self._get(
                f"/v1/runs/{run}/scores", list[ScoreRow], task=task, limit=page_size, after_step=after
            )
            rows += page
            if len(page) < page_size:
                return rows

    def best(
        self,
        run: str | int,
        metric: str = "eval/accuracy",
        mode: Literal["max", "min"] = "max",
        task: str | None = None,
    ) -> BestResult:
        return self._get(f"/v1/runs/{run}/best", BestResult, metric=metric, mode=mode, task=task)

    def compare(self, a: int, b: int, task: str | None = None) -> CompareResult:
        return self._get("/v1/compare", CompareResult, a=a, b=b, task=task)

    # --- per-question analysis ------------------------------------------------------------------

    def sample_flips(self, a: int, b: int, task: str | None = None) -> SampleFlips:
        """The questions whose verdict differs between checkpoints `a` and `b`."""
        return self._get("/v1/compare/samples", SampleFlips, a=a, b=b, task=task)

    def run_tasks(self, run: str | int) -> list[str]:
        """The tasks (suite entries) a run has results for, its headline one first."""
        return self._get(f"/v1/runs/{run}/tasks", list[str])

    def question(self, run: str | int, question_id: str, task: str | None = None) -> list[QuestionVerdict]:
        return self._get(f"/v1/runs/{run}/questions/{question_id}", list[QuestionVerdict], task=task)

    def run_samples(
        self, run: str | int, task: str | None = None, *, offset: int = 0, limit: int = 1000
    ) -> ExportPage:
        """One page of every sample of a run with its checkpoint (for exports)."""
        return self._get(f"/v1/runs/{run}/samples", ExportPage, task=task, offset=offset, limit=limit)

    # --- admin --------------------------------------------------------------------------------

    def flush_wandb(self) -> int:
        """Admin: drain the W&B outbox now and close open W&B runs; returns rows still pending."""
        return int(self.request("POST", "/v1/admin/flush-wandb")["pending"])
