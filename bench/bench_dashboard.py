"""Dashboard benchmark: time to render the run page of a big run in headless Chromium.

Seeds a SQLite ledger through the ORM tables in bulk (one run, N checkpoints each with a done job,
a result with the usual ~20 metrics and S graded samples, and train loss/learning rate for every
step), serves it with the real app plus the dashboard router (uvicorn subprocess), then measures in
Debian's chromium through Selenium:
  * run page: navigation start -> checkpoint table and both charts drawn (`performance.now()` in the
    page after the frame that shows them), cold first load and warm repeats;
  * sample browser: job page ready, then one "next page" click until the new page is shown.

    .venv/bin/python bench/bench_dashboard.py                  # 1,000 checkpoints x 10,000 samples
    .venv/bin/python bench/bench_dashboard.py --checkpoints 50 --samples 500   # a quick check
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_ledger import free_port  # noqa: E402
from eval_service.api.core.config import ServerSettings  # noqa: E402
from eval_service.api.core.db import Database  # noqa: E402
from eval_service.api.crud import runs  # noqa: E402
from eval_service.api.models import (  # noqa: E402
    Checkpoint,
    EvalJob,
    EvalResult,
    SampleRow,
    TrainMetric,
    utcnow,
)
from shared.grading.categories import FAILURE_CATEGORIES  # noqa: E402
from shared.schemas import EvalSpec, RunCreate  # noqa: E402

TOKEN, RUN, TASK = "bench-token", "big", "gsm8k"
SERVE = (  # the ledger app as `duet serve` builds it: API and dashboard on one port
    "import uvicorn, sys; from eval_service.api.main import create_app;"
    "uvicorn.run(create_app(), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')"
)


def _metrics(rnd: random.Random, step_frac: float) -> dict[str, float]:
    acc = min(1.0, 0.1 + 0.8 * step_frac + rnd.uniform(-0.05, 0.05))
    m = {"accuracy": acc, "format_accuracy": min(1.0, acc + 0.1), "wrong_answer_rate": 0.9 - acc * 0.9}
    m |= {f"fail/{c}": rnd.uniform(0, 0.02) for c in FAILURE_CATEGORIES}
    m |= {"format_failure_rate": 0.1, "mean_length": rnd.uniform(100, 300), "mean_entropy": rnd.random()}
    m |= {"eos_rate": 0.95, "truncation_rate": 0.05, "repetition_rate": 0.01, "n_samples": 10000.0}
    return m


def seed(db: Database, n_ckpt: int, n_samples: int, root: Path) -> None:
    rnd = random.Random(0)
    spec = EvalSpec(task=TASK)
    now = utcnow()
    with db.write() as s:
        run_id = runs.create_run(s, RunCreate(name=RUN, primary_task=TASK)).id
    ckpt_t, job_t, res_t, tm_t = (m.__table__ for m in (Checkpoint, EvalJob, EvalResult, TrainMetric))  # type: ignore[attr-defined]
    steps = [(i + 1) * 10 for i in range(n_ckpt)]
    info = {"engine_event": "swap", "load_total_s": 0.8, "gen_s": 40.0, "grade_s": 2.0}
    with db.write() as s:
        s.execute(ckpt_t.insert(), [
            {"id": i + 1, "run_id": run_id, "step": st, "path": str(root / f"checkpoint-{st}"), "kind": "full",
             "created_at": now} for i, st in enumerate(steps)])  # fmt: skip
        s.execute(job_t.insert(), [
            {"id": i + 1, "checkpoint_id": i + 1, "run_id": run_id, "step": st, "task": TASK,
             "spec": spec.model_dump(mode="json"), "spec_hash": spec.fingerprint(), "status": "done", "priority": 0,
             "attempt": 1, "max_attempts": 3, "created_at": now, "finished_at": now}
            for i, st in enumerate(steps)])  # fmt: skip
        s.execute(res_t.insert(), [
            {"job_id": i + 1, "attempt": 1, "worker_id": "w", "checkpoint_id": i + 1, "run_id": run_id, "step": st,
             "task": TASK, "grader_version": "1", "metrics": _metrics(rnd, i / n_ckpt), "info": info,
             "created_at": now, "load_mode": "swap"} for i, st in enumerate(steps)])  # fmt: skip
        s.execute(tm_t.insert(), [
            {"run_id": run_id, "step": st, "key": key, "value": v}
            for st in range(1, steps[-1] + 1)
            for key, v in (("train/loss", 2.0 / (1 + st / 100)), ("train/learning_rate", 1e-5 * (1 - st / (steps[-1] + 1))))
        ])  # fmt: skip
    # 10,000 samples for job 1 through the model's table, then copied to every other job inside SQLite
    sample_t = SampleRow.__table__  # type: ignore[attr-defined]
    cats = ["correct"] * 6 + ["wrong_answer"] * 3 + list(FAILURE_CATEGORIES)
    with db.write() as s:
        rows = []
        for i in range(n_samples):
            cat = cats[i % len(cats)]
            rows.append({
                "job_id": 1, "index": i, "sample": 0, "prompt": f"Question {i}: what is {i} * 7 + 3?",
                "response": f"Let me compute {i} * 7 = {i * 7}. Then add 3. #### {i * 7 + 3}", "gold": str(i * 7 + 3),
                "extracted": str(i * 7 + 3), "correct": cat == "correct", "format_ok": cat in ("correct", "wrong_answer"),
                "category": cat, "num_tokens": 30, "finish_reason": "length" if cat == "truncated" else "stop",
                "mean_entropy": 0.2})  # fmt: skip
        s.execute(sample_t.insert(), rows)
    cols = [c.name for c in sample_t.columns if c.name not in ("id", "job_id")]
    quoted = ", ".join(f'"{c}"' for c in cols)
    with db.write() as s:
        s.connection().exec_driver_sql(
            f"INSERT INTO {sample_t.name} (job_id, {quoted}) SELECT j.id, {', '.join(f's.{q}' for q in quoted.split(', '))} "
            f"FROM {sample_t.name} s JOIN {job_t.name} j ON j.id > 1 WHERE s.job_id = 1"
        )


def browser() -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def run_page_ms(driver: webdriver.Chrome, url: str) -> tuple[float, float]:
    """(table and charts drawn, everything filled in: job links, queue, load mode and eval time)."""
    driver.get(url)
    # ready, or the page shows an error (then fail with it rather than wait out the timeout)
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script(
            "return document.body.dataset.readyMs || !document.getElementById('error').hidden"
        )
    )
    error = driver.find_element(By.ID, "error")
    assert not error.is_displayed(), f"the run page failed: {error.text}"
    n_rows = len(driver.find_elements(By.CSS_SELECTOR, "#checkpoints tbody tr"))
    drawn = driver.execute_script(
        "return ['#chart-train', '.chart[data-task]'].every(c => document.querySelector(c + ' canvas'))"
    )
    assert n_rows > 0 and drawn, "the run page rendered without its table or charts"
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.body.dataset.completeMs"))
    return tuple(
        float(driver.execute_script(f"return document.body.dataset.{k}")) for k in ("readyMs", "completeMs")
    )


def poll_bytes(driver: webdriver.Chrome) -> int:
    """Bytes of response bodies one live poll of the (already complete) run page reads."""
    n = int(
        driver.execute_script(
            "performance.clearResourceTimings(); return Number(document.body.dataset.polls)"
        )
    )
    WebDriverWait(driver, 60, poll_frequency=0.05).until(
        lambda d: int(d.execute_script("return Number(document.body.dataset.polls)")) > n
    )
    return int(
        driver.execute_script(
            "return performance.getEntriesByType('resource').reduce((a, e) => a + e.encodedBodySize, 0)"
        )
    )


def search_ms(driver: webdriver.Chrome, text: str) -> tuple[float, str]:
    """Type `text` into the sample search (job page open): ms until the ledger's answer is shown."""
    before = driver.find_element(By.ID, "sample-count").text
    t0 = time.perf_counter()
    driver.find_element(By.NAME, "q").send_keys(text)
    WebDriverWait(driver, 60, poll_frequency=0.005).until(
        lambda d: d.find_element(By.ID, "sample-count").text not in (before, "")
    )
    return (time.perf_counter() - t0) * 1000, driver.find_element(By.ID, "sample-count").text


def pagination_ms(driver: webdriver.Chrome, url: str) -> tuple[float, float]:
    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    first = float(driver.execute_script("return performance.now()"))
    before = driver.find_element(By.ID, "sample-count").text
    t0 = time.perf_counter()
    driver.find_element(By.CSS_SELECTOR, "#sample-pager .next").click()
    # poll often: the default half-second poll would be most of what is measured
    WebDriverWait(driver, 60, poll_frequency=0.005).until(
        lambda d: d.find_element(By.ID, "sample-count").text != before
    )
    return first, (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=10_000, help="graded samples per checkpoint")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=None, help="reuse a seeded ledger.db found here")
    a = ap.parse_args()

    work = a.workdir or Path(tempfile.mkdtemp(prefix="duet-bench-ui-"))
    work.mkdir(parents=True, exist_ok=True)
    db_path = work / "ledger.db"
    env = {**os.environ, "DUET_DB_URL": f"sqlite:///{db_path}", "DUET_API_TOKEN": TOKEN,
           "DUET_CHECKPOINT_ROOT": str(work), "DUET_WANDB_ENABLED": "false", "PYTHONPATH": str(REPO)}  # fmt: skip
    if not db_path.exists():
        t0 = time.perf_counter()
        db = Database(ServerSettings(db_url=env["DUET_DB_URL"], checkpoint_root=work))
        db.create_all()
        seed(db, a.checkpoints, a.samples, work)
        db.dispose()
        print(f"seeded {a.checkpoints} checkpoints x {a.samples} samples in {time.perf_counter() - t0:.0f} s "
              f"({db_path.stat().st_size / 2**30:.2f} GiB)")  # fmt: skip
    port = free_port()
    log = open(work / "ledger.log", "wb")  # noqa: SIM115  (owned by the child)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)], env=env, cwd=work, stdout=log, stderr=log
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)  # poll interval while the server starts
        driver = browser()
        try:
            times = [run_page_ms(driver, f"{url}/runs/{RUN}") for _ in range(a.repeats)]
            poll = poll_bytes(driver)
            driver.save_screenshot(str(work / "dashboard-run-big.png"))
            job_ready, next_ms = pagination_ms(driver, f"{url}/jobs/{a.checkpoints // 2}")
            found_ms, found = search_ms(driver, f"Question {a.samples // 2}:")
            driver.save_screenshot(str(work / "dashboard-job-big.png"))
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)
    for i, what in enumerate(("table + charts drawn", "complete (job links, queue, load/eval time)")):
        ms = [t[i] for t in times]
        warm = ms[1:] or ms
        print(f"run page ({a.checkpoints} checkpoints, {a.samples} samples each), {what}: cold {ms[0]:.0f} ms, "
              f"warm median {statistics.median(warm):.0f} ms, max {max(warm):.0f} ms")  # fmt: skip
    print(f"run page: one live poll reads {poll / 1024:.0f} KiB")
    print(f"sample browser: job page ready {job_ready:.0f} ms, next page of 20 shown in {next_ms:.0f} ms, "
          f"text search shown in {found_ms:.0f} ms ({found})")  # fmt: skip


if __name__ == "__main__":
    main()
