"""Redraw the README's dashboard screenshots (docs/img/) from a real run, in headless Chromium.

    duet up --algorithm grpo --run demo --workdir /tmp/shots/.duet          # a real run first
    DUET_WANDB_MODE=disabled duet serve --db /tmp/shots/.duet/duet.db --port 8599 &
    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:8599 --run demo

The run page is taken once its table and charts are complete; the job page is that of the run's
best checkpoint's headline job (or --job), with its sample browser open.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_dashboard import browser  # noqa: E402  (the benchmark's headless Chromium, 1400x1100)
from shared.client import LedgerClient  # noqa: E402

OUT = REPO / "docs" / "img"


def shoot(driver: webdriver.Chrome, url: str, out: Path, done: str, *, whole: bool) -> None:
    """`done`: the `document.body.dataset` key the page sets once it has drawn everything;
    `whole`: the whole page (the run page), else the first 1100 px (the job page's sample list
    runs on for every sample)."""
    driver.get(url)
    error = "(document.getElementById('error') && !document.getElementById('error').hidden)"
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script(f"return document.body.dataset.{done} || {error}")
    )
    if driver.execute_script(f"return {error}"):
        raise SystemExit(f"{url}: the page shows an error")
    height = int(driver.execute_script("return document.documentElement.scrollHeight")) if whole else 1100
    driver.set_window_size(driver.get_window_size()["width"], height + 40)
    driver.save_screenshot(str(out))
    print(f"wrote {out} ({url})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", default="duet-dev-token")
    ap.add_argument("--run", required=True)
    ap.add_argument("--job", type=int, help="job page to take (default: the best checkpoint's)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    with LedgerClient(a.url, a.token) as client:
        best = client.best(a.run)
        job = a.job or best.row.job_id
    driver = browser()
    try:
        shoot(
            driver,
            f"{a.url}/runs/{a.run}?token={a.token}",
            a.out / "dashboard-run.png",
            "completeMs",
            whole=True,
        )
        if job is not None:
            shoot(
                driver,
                f"{a.url}/jobs/{job}?token={a.token}",
                a.out / "dashboard-job.png",
                "samplesShown",
                whole=False,
            )
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
