"""A real ledger for the dashboard tests: uvicorn on loopback with a SQLite file, filled through the
HTTP API the way a short run fills it (train metrics, then checkpoints enqueued, claimed and
completed with graded samples), plus one dead and one queued job for the queue table."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from eval_service.api.core.config import ServerSettings
from eval_service.api.main import create_app
from shared.grading import aggregate
from shared.schemas import CompleteRequest, EvalSpec, Sample, TrainMetricRow
from tests.fixtures.ledger import LedgerServer

RUN, TASK = "demo", "ones_digit"

# Per checkpoint step, each question's outcome: None = correct, else (category, finish_reason).
T, W, N = ("truncated", "length"), ("wrong_answer", "stop"), ("no_answer", "stop")
OUTCOMES: dict[int, list] = {
    10: [T, W, N, None, W, T],
    20: [None, W, None, None, W, T],
    30: [None, None, None, W, None, T],
    40: [None, None, None, None, None, None],  # posted while the page is open
}
FLIPS_20_30 = {1, 3, 4}  # questions whose verdict differs between steps 20 and 30


def samples_at(step: int) -> list[Sample]:
    out = []
    for i, outcome in enumerate(OUTCOMES[step]):
        gold = str((i * 7) % 10)
        category, finish = outcome or ("correct", "stop")
        answer = gold if outcome is None else str((int(gold) + 1) % 10)
        extracted = None if category in ("truncated", "no_answer") else answer
        response = f"Multiply the ones digits: {i} x 7. The answer is #### {answer}"
        if category == "truncated":
            response = f"Multiply the ones digits: {i} x 7, carry, and again " * 3
        out.append(
            Sample(
                index=i,
                prompt=f"What is the ones digit of {i}3 x 17?",
                response=response,
                gold=gold,
                extracted=extracted,
                correct=outcome is None,
                format_ok=category in ("correct", "wrong_answer"),
                category=category,
                num_tokens=len(response.split()),
                finish_reason=finish,
                mean_entropy=0.1 * (i + 1),
            )
        )
    return out


@dataclass
class Dashboard:
    """A started ledger serving the dashboard; `srv` holds its paths, tokens and clients."""

    srv: LedgerServer
    run_id: int
    ckpt: dict[int, int]  # step -> checkpoint id
    job: dict[int, int]  # step -> done job id

    @property
    def url(self) -> str:
        return self.srv.url

    def evaluate(self, step: int) -> None:
        """What a worker does for one checkpoint: enqueue, claim, complete with graded samples."""
        c = self.srv.client()
        path = self.srv.checkpoint_root / RUN / f"checkpoint-{step}"
        path.mkdir(parents=True, exist_ok=True)
        job = c.enqueue(EvalSpec(task=TASK, limit=6), path=str(path), run=RUN).job
        lease = c.claim("worker-1", tasks=[TASK])
        assert lease is not None and lease.job.id == job.id
        samples = samples_at(step)
        info = {"engine_event": "reload", "load_total_s": 0.4, "gen_s": 1.5, "grade_s": 0.1}
        c.complete(
            job.id,
            CompleteRequest(
                worker_id="worker-1",
                attempt=lease.attempt,
                metrics=aggregate(samples),
                samples=samples,
                info=info,
                load_mode="swap",
            ),
        )
        self.ckpt[step], self.job[step] = job.checkpoint_id, job.id


def serve(srv: LedgerServer, read_auth: bool) -> Callable[[], None]:
    """Serve create_app (API and dashboard) with real uvicorn in a thread; returns a stop function."""
    settings = ServerSettings(
        db_url=f"sqlite:///{srv.db_path}",
        api_token=srv.token,
        admin_token=srv.admin_token,
        checkpoint_root=srv.checkpoint_root,
        read_auth=read_auth,
        wandb_enabled=False,
        sweep_interval_s=0.5,
    )
    app = create_app(settings)  # serves the dashboard itself, on the API's port
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=srv.port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="dashboard-ledger", daemon=True)
    thread.start()
    srv.client(retry_for_s=30).health()  # retries until uvicorn answers

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)

    return stop


@pytest.fixture
def dashboard_factory(tmp_path: Path) -> Iterator[Callable[..., Dashboard]]:
    stops: list[Callable[[], None]] = []

    def make(read_auth: bool = False) -> Dashboard:
        srv = LedgerServer(tmp_path / f"ledger{len(stops)}")
        stops.append(serve(srv, read_auth))
        c = srv.client()
        run = c.create_run(RUN, base_model="tiny-llama", primary_task=TASK)
        rows = [TrainMetricRow(step=s, key="train/loss", value=2.5 / s) for s in range(1, 31)]
        rows += [
            TrainMetricRow(step=s, key="train/learning_rate", value=1e-4 * (1 - s / 40)) for s in range(1, 31)
        ]
        c.log_train_metrics(run.id, rows)
        d = Dashboard(srv, run.id, {}, {})
        for step in (10, 20, 30):
            d.evaluate(step)
        # one job that died (its checkpoint refused) and one still waiting, for the queue table
        other = EvalSpec(task="addition", limit=6)
        c.enqueue(other, path=str(srv.checkpoint_root / RUN / "checkpoint-10"), run=RUN)
        c.enqueue(other, path=str(srv.checkpoint_root / RUN / "checkpoint-20"), run=RUN)
        lease = c.claim("worker-2", tasks=["addition"])
        c.fail(lease, "config.json: not a checkpoint", retryable=False)
        return d

    yield make
    for stop in stops:
        stop()
