"""Ledger benchmark: train-metric ingest over HTTP, and scores/best query latency on a big run,
on SQLite and on PostgreSQL side by side.

For each backend: seeds a ledger database through the tables in bulk (N checkpoints with one result
each and its eval_metrics rows, M train-metric rows), starts a real ledger server (uvicorn
subprocess) on it, then measures over HTTP:
  * batched train-metric ingest into a fresh run (rows/s),
  * p50/p99 latency of GET /v1/runs/{run}/scores (the default 100-row page, the last page by
    cursor, a 1000-row page) and of /best.

Postgres: a throw-away cluster started with the test fixture's code (tests/fixtures/postgres.py;
needs the PostgreSQL server binaries, `apt-get install postgresql-15`).

    .venv/bin/python bench/bench_ledger.py --checkpoints 10000 --metric-rows 1000000 --db sqlite postgres
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval_service.api.core.config import ServerSettings  # noqa: E402
from eval_service.api.core.db import Database  # noqa: E402
from eval_service.api.crud import runs  # noqa: E402
from eval_service.api.models import (  # noqa: E402
    Checkpoint,
    EvalJob,
    EvalMetric,
    EvalResult,
    TrainMetric,
    utcnow,
)
from shared.schemas import EvalSpec, RunCreate  # noqa: E402

TOKEN = "bench-token"


def seed(db: Database, n_ckpt: int, n_rows: int, root: Path) -> None:
    rnd = random.Random(0)
    spec = EvalSpec(task="arith")
    now = utcnow()
    with db.write() as s:
        run = runs.create_run(s, RunCreate(name="big", primary_task="arith"))
        run_id = run.id
    ckpt_t, job_t, res_t = (m.__table__ for m in (Checkpoint, EvalJob, EvalResult))  # type: ignore[attr-defined]
    with db.write() as s:
        s.execute(
            ckpt_t.insert(),
            [
                {"id": i + 1, "run_id": run_id, "step": (i + 1) * 10, "path": str(root / f"checkpoint-{(i + 1) * 10}"),
                 "kind": "full", "created_at": now}
                for i in range(n_ckpt)
            ],
        )  # fmt: skip
        s.execute(
            job_t.insert(),
            [
                {"id": i + 1, "checkpoint_id": i + 1, "run_id": run_id, "step": (i + 1) * 10, "task": "arith",
                 "spec": spec.model_dump(mode="json"), "spec_hash": spec.fingerprint(), "status": "done",
                 "priority": 0, "attempt": 1, "max_attempts": 3, "created_at": now, "finished_at": now}
                for i in range(n_ckpt)
            ],
        )  # fmt: skip
        s.execute(
            res_t.insert(),
            [
                {"job_id": i + 1, "attempt": 1, "worker_id": "w", "checkpoint_id": i + 1, "run_id": run_id,
                 "step": (i + 1) * 10, "task": "arith", "grader_version": "1",
                 "metrics": {"accuracy": rnd.random(), "format_accuracy": rnd.random(),
                             "mean_tokens": rnd.uniform(10, 200), "mean_entropy": rnd.random()},
                 "info": {}, "created_at": now}
                for i in range(n_ckpt)
            ],
        )  # fmt: skip
        # what complete() writes for `best`: one row per metric of each checkpoint's newest result
        s.execute(
            EvalMetric.__table__.insert(),  # type: ignore[attr-defined]
            [
                {"result_id": r.id, "checkpoint_id": r.checkpoint_id, "run_id": run_id, "task": r.task,
                 "step": r.step, "key": k, "value": v}
                for r in s.execute(res_t.select().where(res_t.c.run_id == run_id))
                for k, v in r.metrics.items()
            ],
        )  # fmt: skip
        if s.get_bind().dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for t in ("checkpoints", "eval_jobs"):
                s.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))")
                )
    tm = TrainMetric.__table__  # type: ignore[attr-defined]
    keys = max(1, n_rows // max(n_ckpt, 1))
    chunk: list[dict] = []
    done = 0
    with db.write() as s:
        for step in range(n_ckpt * 10):
            for k in range(keys):
                chunk.append({"run_id": run_id, "step": step, "key": f"train/k{k}", "value": rnd.random()})
            if len(chunk) >= 50_000:
                s.execute(tm.insert(), chunk)
                done += len(chunk)
                chunk = []
            if done + len(chunk) >= n_rows:
                break
        if chunk:
            s.execute(tm.insert(), chunk)
    if db.dialect == "postgresql":
        # A live ledger grows a few rows at a time and autovacuum keeps its statistics; right after
        # a bulk load the planner still thinks the tables are empty (and sorts a whole run's
        # checkpoints for one page), so give it what autovacuum would.
        with db.write() as s:
            s.execute(text("ANALYZE"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def measure(db_url: str, a: argparse.Namespace, work: Path) -> dict[str, str]:
    """Seed a ledger at `db_url`, serve it, and return the measured figures by row name."""
    settings = ServerSettings(db_url=db_url, checkpoint_root=work)
    db = Database(settings)
    db.migrate()
    t0 = time.perf_counter()
    seed(db, a.checkpoints, a.metric_rows, work)
    seed_s = time.perf_counter() - t0
    db.dispose()

    port = free_port()
    env = {
        **os.environ,
        "DUET_DB_URL": db_url,
        "DUET_API_TOKEN": TOKEN,
        "DUET_ADMIN_TOKEN": TOKEN + "-admin",
        "DUET_CHECKPOINT_ROOT": str(work),
        "DUET_WANDB_ENABLED": "false",  # measure the ledger, not W&B
        "PYTHONPATH": str(REPO),
    }
    log = open(work / "server.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from eval_service.api.serve import serve; serve(port={port})"],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
            time.sleep(0.1)
        h = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=h, timeout=120) as c:
            run_id = c.post("/v1/runs", json={"name": "ingest"}).json()["id"]
            t0 = time.perf_counter()
            for b in range(a.ingest_batches):
                rows = [
                    {"step": b * a.batch_rows + i, "key": "train/loss", "value": 1.0 / (i + 1)}
                    for i in range(a.batch_rows)
                ]
                r = c.post("/v1/train-metrics", json={"run_id": run_id, "rows": rows})
                assert r.json()["inserted"] == a.batch_rows, r.text
            rows_s = a.ingest_batches * a.batch_rows / (time.perf_counter() - t0)

            last_page = (a.checkpoints - 100) * 10  # the seed's steps are 10, 20, ...
            paths = {
                "scores": "/v1/runs/big/scores",
                "scores_last": f"/v1/runs/big/scores?after_step={last_page}",
                "scores_1000": "/v1/runs/big/scores?limit=1000",
                "best": "/v1/runs/big/best?metric=eval/accuracy",
            }
            lat: dict[str, list[float]] = {name: [] for name in paths}
            for name, path in paths.items():
                c.get(path).raise_for_status()  # warm-up
                for _ in range(a.queries):
                    t = time.perf_counter()
                    r = c.get(path)
                    lat[name].append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
            page = c.get(paths["scores"])
            page_rows, total = len(page.json()), page.headers["X-Total-Count"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out = {
        "seed (bulk, through the tables)": f"{seed_s:.1f} s",
        f"train-metric ingest ({a.batch_rows} rows/batch, {a.ingest_batches} batches)": f"{rows_s:,.0f} rows/s",
    }
    labels = {
        "scores": f"GET scores, default page ({page_rows} of {total} checkpoints) p50 / p99",
        "scores_last": "GET scores, last page by cursor (after_step) p50 / p99",
        "scores_1000": "GET scores, largest page (limit=1000) p50 / p99",
        "best": "GET best?metric=eval/accuracy p50 / p99",
    }
    for name, xs in lat.items():
        out[labels[name]] = f"{statistics.median(xs):.1f} / {pct(xs, 99):.1f} ms"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    ap.add_argument("--checkpoints", type=int, default=10_000)
    ap.add_argument("--metric-rows", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=50, help="requests per query type")
    ap.add_argument("--ingest-batches", type=int, default=50)
    ap.add_argument("--batch-rows", type=int, default=1000)
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args()

    work = a.workdir or Path(tempfile.mkdtemp(prefix="duet-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, str]] = {}
    for backend in a.db:
        if backend == "sqlite":
            db_path = work / "bench.db"
            db_path.unlink(missing_ok=True)
            results[backend] = measure(f"sqlite:///{db_path}", a, work)
            continue
        from tests.fixtures.postgres import PostgresCluster, find_bindir

        cluster = PostgresCluster(find_bindir(), Path(tempfile.mkdtemp(prefix="duet-bench-pg-"))).start()
        try:
            results[backend] = measure(cluster.create_database("bench"), a, work)
        finally:
            cluster.stop()
            shutil.rmtree(cluster.root, ignore_errors=True)

    print(f"{a.checkpoints:,} checkpoints, {a.metric_rows:,} train-metric rows\n")
    print("| measurement | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for row in next(iter(results.values())):
        print(f"| {row} | " + " | ".join(r[row] for r in results.values()) + " |")


if __name__ == "__main__":
    main()
