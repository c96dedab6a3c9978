"""The dashboard in a real headless Chromium (Selenium + Debian's chromium-driver) against a real
ledger (uvicorn on loopback, SQLite file) filled through the HTTP API the way a short run fills it
(tests/eval_service/api/dashboard_ledger.py). Screenshots land in the test's tmp dir and, with
DUET_SCREENSHOT_DIR set, there too (CI keeps them as artifacts)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from shared.schemas import Algorithm, CheckpointCreate, TrainMetricRow
from tests.eval_service.api import dashboard_ledger
from tests.eval_service.api.dashboard_ledger import FLIPS_20_30, OUTCOMES, RUN, TASK, T, W

dashboard_factory = dashboard_ledger.dashboard_factory  # the seeded ledger fixture

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_S = 20


@pytest.fixture
def browser(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[webdriver.Chrome]:
    assert shutil.which(CHROMEDRIVER), "install Debian's chromium and chromium-driver (see .ci/run)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    shots = [tmp_path / "screenshots"]
    if os.environ.get("DUET_SCREENSHOT_DIR"):
        shots.append(Path(os.environ["DUET_SCREENSHOT_DIR"]))
    for d in shots:
        d.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(d / f"{request.node.name}.png"))
    driver.quit()


def _wait(driver: webdriver.Chrome, cond: Callable[[webdriver.Chrome], object], what: str) -> object:
    # the pages re-render while we look: an element gone stale just means "look again"
    wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=[StaleElementReferenceException])
    return wait.until(cond, message=f"waited {WAIT_S}s for {what}")


def _ready(driver: webdriver.Chrome) -> bool:
    return driver.execute_script("return document.body.dataset.ready === '1'")


def _steps(driver: webdriver.Chrome) -> list[int]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#checkpoints tbody tr")
    return [int(r.get_attribute("data-step")) for r in rows]


def _chart(driver: webdriver.Chrome, css: str, attr: str = "data-series") -> int:
    """How many series (or points) the chart matching `css` draws."""
    el = driver.find_element(By.CSS_SELECTOR, css)
    assert el.find_elements(By.TAG_NAME, "canvas"), f"{css} has no canvas"
    return int(el.get_attribute(attr))


TRAIN_CHART, EVAL_CHART = "#chart-train", f'.chart[data-task="{TASK}"]'


@pytest.mark.slow
def test_run_page_shows_curves_checkpoints_queue_and_updates_live(dashboard_factory, browser):
    d = dashboard_factory()
    browser.get(f"{d.url}/runs/{RUN}")
    _wait(browser, _ready, "the run page to render")
    assert _steps(browser) == [30, 20, 10]  # newest first, every checkpoint
    assert _chart(browser, TRAIN_CHART) == 2  # train/loss and train/learning_rate
    assert _chart(browser, TRAIN_CHART, "data-points") == 30
    scores = d.srv.client().scores(RUN)
    every_metric = set().union(*(r.metrics for r in scores))
    assert _chart(browser, EVAL_CHART) == len(every_metric)  # every metric of the suite entry
    metrics = scores[0].metrics
    row = browser.find_element(By.ID, "step-10")
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1] == f"{metrics['eval/accuracy']:.3f}" == "0.167"
    assert "truncated 0.33" in cells[3] and "no_answer 0.17" in cells[3]
    assert cells[4:6] == ["swap", "2.0 s"]
    queue = {
        r.get_attribute("data-status"): r.text
        for r in browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
    }
    assert set(queue) == {"queued", "dead"} and "config.json: not a checkpoint" in queue["dead"]
    assert "1/3" in queue["dead"] and "queued 1" in browser.find_element(By.ID, "queue-counts").text

    assert not browser.find_element(By.CSS_SELECTOR, "#checkpoints th.stage").is_displayed()

    browser.execute_script("window.__sameDocument = true")  # gone if the page reloaded
    # Step 40 is a GRPO checkpoint on the same axis (as its marker would say): the table then gets a
    # stage column, as `duet scores` does.
    path = d.srv.checkpoint_root / RUN / "checkpoint-40"
    d.srv.client().register_checkpoint(
        CheckpointCreate(run_id=d.run_id, step=40, path=str(path), algorithm=Algorithm.grpo)
    )
    d.evaluate(40)
    d.srv.client().log_train_metrics(
        d.run_id, [TrainMetricRow(step=s, key="train/loss", value=2.5 / s) for s in range(31, 41)]
    )
    _wait(browser, lambda b: _steps(b) == [40, 30, 20, 10], "the new checkpoint row")
    _wait(browser, lambda b: _chart(b, EVAL_CHART, "data-points") == 4, "the new point on the eval chart")
    _wait(browser, lambda b: _chart(b, TRAIN_CHART, "data-points") == 40, "the new train steps")
    assert browser.execute_script("return window.__sameDocument === true")
    # polls ask only for the train steps after the newest one drawn
    asked = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any("train-metrics" in u and "since_step=30" in u for u in asked), asked
    assert browser.find_element(By.CSS_SELECTOR, "#step-40 td.stage + td").text == "1.000"  # accuracy

    def stage_cells(b: webdriver.Chrome) -> list[str]:
        return [td.text for td in b.find_elements(By.CSS_SELECTOR, "#checkpoints tbody td.stage")]

    dash = "\u2013"  # the page's "no value": checkpoints without a marker have no stage
    _wait(browser, lambda b: stage_cells(b) == ["grpo", dash, dash, dash], "the stage column")
    assert browser.find_element(By.CSS_SELECTOR, "#checkpoints th.stage").is_displayed()


@pytest.mark.slow
def test_runs_page_lists_run_with_latest_step_best_and_status(dashboard_factory, browser):
    d = dashboard_factory()
    browser.get(f"{d.url}/")
    _wait(browser, _ready, "the runs page")
    row = browser.find_element(By.CSS_SELECTOR, f'#runs tr[data-run="{RUN}"]')
    text = row.text
    assert "tiny-llama" in text and "30" in text
    assert "step 30 · eval/accuracy 0.667" in text
    assert "evaluating (1 queued, 0 running)" in text and "1 dead" in text


@pytest.mark.slow
def test_sample_filter_shows_only_failed_samples_of_the_chosen_category(dashboard_factory, browser):
    d = dashboard_factory()
    browser.get(f"{d.url}/jobs/{d.job[10]}")
    _wait(browser, _ready, "the job page")
    shares = {
        b.get_attribute("data-category"): float(b.get_attribute("data-share"))
        for b in browser.find_elements(By.CSS_SELECTOR, "#breakdown .bar-row")
    }
    assert shares["truncated"] == pytest.approx(2 / 6) and shares["correct"] == pytest.approx(1 / 6)

    def shown(b: webdriver.Chrome) -> list[tuple[str, str, str]]:
        cards = b.find_elements(By.CSS_SELECTOR, "#samples article")
        return [
            tuple(c.get_attribute(k) for k in ("data-index", "data-category", "data-correct")) for c in cards
        ]

    Select(browser.find_element(By.NAME, "correct")).select_by_value("false")
    Select(browser.find_element(By.NAME, "category")).select_by_value("wrong_answer")
    want = [(str(i), "wrong_answer", "false") for i, o in enumerate(OUTCOMES[10]) if o == W]
    _wait(browser, lambda b: shown(b) == want, "only the wrong answers")

    Select(browser.find_element(By.NAME, "category")).select_by_value("")
    browser.find_element(By.NAME, "truncated").click()  # finish_reason "length"
    want = [(str(i), "truncated", "false") for i, o in enumerate(OUTCOMES[10]) if o == T]
    _wait(browser, lambda b: shown(b) == want, "only the truncated samples")

    browser.find_element(By.NAME, "truncated").click()
    Select(browser.find_element(By.NAME, "correct")).select_by_value("")
    browser.find_element(By.NAME, "q").send_keys("OF 43 X")  # text search, any case
    _wait(browser, lambda b: [x[0] for x in shown(b)] == ["4"], "the one question that matches")
    browser.find_element(By.NAME, "q").clear()
    browser.execute_script("document.forms.filters.q.dispatchEvent(new Event('input'))")
    Select(browser.find_element(By.NAME, "correct")).select_by_value("true")
    _wait(browser, lambda b: shown(b) == [("3", "correct", "true")], "the correct one")
    mark = browser.find_element(By.CSS_SELECTOR, "#samples article mark")
    assert mark.text == str((3 * 7) % 10)  # the extracted answer is highlighted in the response


@pytest.mark.slow
def test_compare_page_lists_exactly_the_flipped_questions(dashboard_factory, browser):
    d = dashboard_factory()
    browser.get(f"{d.url}/compare?a={d.ckpt[20]}&b={d.ckpt[30]}&run={RUN}&task={TASK}")
    _wait(browser, _ready, "the compare page")
    rows = browser.find_elements(By.CSS_SELECTOR, "#flips tbody tr")
    flipped = {int(r.get_attribute("data-index")): r.get_attribute("data-direction") for r in rows}
    assert flipped == {1: "fixed", 3: "broken", 4: "fixed"} and set(flipped) == FLIPS_20_30
    delta = browser.find_element(By.CSS_SELECTOR, '#deltas tr[data-metric="eval/accuracy"]')
    assert delta.find_elements(By.TAG_NAME, "td")[3].text == "+0.1667"


@pytest.mark.slow
def test_read_auth_browser_opens_pages_with_a_token_link(dashboard_factory, browser):
    # the HTTP side of read auth (every page, data and asset route) is in test_ui_security.py
    d = dashboard_factory(read_auth=True)
    browser.get(f"{d.url}/runs/{RUN}")
    assert "missing API token" in browser.page_source
    browser.get(f"{d.url}/runs/{RUN}?token={d.srv.token}")
    _wait(browser, _ready, "the run page with the token")
    assert _steps(browser) == [30, 20, 10]
    assert "token=" not in browser.current_url  # kept in sessionStorage, not in the address bar
    browser.find_element(By.CSS_SELECTOR, "header nav a").click()  # links carry it on
    _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, f'#runs tr[data-run="{RUN}"]'), "runs page")
