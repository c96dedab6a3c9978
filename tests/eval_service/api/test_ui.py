"""The dashboard in a real headless Chromium (Selenium + Debian's chromium-driver) against a real
ledger (uvicorn on loopback, SQLite file) filled through the HTTP API the way a short run fills it:
train metrics, then checkpoints enqueued, claimed and completed with graded samples."""

from __future__ import annotations

import http.client
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from eval_service.api.core.config import ServerSettings
from eval_service.api.main import create_app
from eval_service.api.ui import ui_router
from shared.grading import aggregate
from shared.schemas import CompleteRequest, EvalSpec, Sample, TrainMetricRow
from tests.fixtures.ledger import LedgerServer

RUN, TASK = "demo", "ones_digit"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_S = 20

# Per checkpoint step, each question's outcome: None = correct, else (category, finish_reason).
T, W, N = ("truncated", "length"), ("wrong_answer", "stop"), ("no_answer", "stop")
OUTCOMES: dict[int, list] = {
    10: [T, W, N, None, W, T],
    20: [None, W, None, None, W, T],
    30: [None, None, None, W, None, T],
    40: [None, None, None, None, None, None],  # posted while the page is open
}
FLIPS_20_30 = {1, 3, 4}  # questions whose verdict differs between steps 20 and 30


def _samples(step: int) -> list[Sample]:
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
        samples = _samples(step)
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


def _serve(srv: LedgerServer, read_auth: bool) -> Callable[[], None]:
    """Serve create_app + the dashboard router with real uvicorn in a thread; returns a stop function."""
    settings = ServerSettings(
        db_url=f"sqlite:///{srv.db_path}",
        api_token=srv.token,
        admin_token=srv.admin_token,
        checkpoint_root=srv.checkpoint_root,
        read_auth=read_auth,
        wandb_enabled=False,
        sweep_interval_s=0.5,
    )
    app = create_app(settings)
    if not any(getattr(r, "path", None) == "/" for r in app.routes):  # until the app wires it in itself
        app.include_router(ui_router(settings))
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
        stops.append(_serve(srv, read_auth))
        c = srv.client()
        run = c.create_run(RUN, base_model="tiny-llama", primary_task=TASK)
        rows = [TrainMetricRow(step=s, key="train/loss", value=2.5 / s) for s in range(1, 31)]
        rows += [
            TrainMetricRow(step=s, key="train/learning_rate", value=1e-4 * (1 - s / 40)) for s in range(1, 31)
        ]
        c.log_train_metrics(run.id, rows)
        d = Dashboard(srv, {}, {})
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


def _series(driver: webdriver.Chrome, chart: str) -> int:
    el = driver.find_element(By.ID, chart)
    assert el.find_elements(By.TAG_NAME, "canvas"), f"{chart} has no canvas"
    return int(el.get_attribute("data-series"))


@pytest.mark.slow
def test_run_page_shows_curves_checkpoints_queue_and_updates_live(dashboard_factory, browser):
    d = dashboard_factory()
    browser.get(f"{d.url}/runs/{RUN}")
    _wait(browser, _ready, "the run page to render")
    assert _steps(browser) == [30, 20, 10]  # newest first, every checkpoint
    assert _series(browser, "chart-train") == 2  # train/loss and train/learning_rate
    scores = d.srv.client().scores(RUN)
    every_metric = set().union(*(r.metrics for r in scores))
    assert _series(browser, "chart-eval") == len(every_metric)
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

    browser.execute_script("window.__sameDocument = true")  # gone if the page reloaded
    d.evaluate(40)
    _wait(browser, lambda b: _steps(b) == [40, 30, 20, 10], "the new checkpoint row")
    _wait(browser, lambda b: b.find_element(By.ID, "chart-eval").get_attribute("data-points") == "4", "chart")
    assert browser.execute_script("return window.__sameDocument === true")
    assert browser.find_element(By.ID, "step-40").find_elements(By.TAG_NAME, "td")[1].text == "1.000"


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
    browser.find_element(By.NAME, "truncated").click()  # a filter the browser applies itself
    want = [(str(i), "truncated", "false") for i, o in enumerate(OUTCOMES[10]) if o == T]
    _wait(browser, lambda b: shown(b) == want, "only the truncated samples")

    browser.find_element(By.NAME, "truncated").click()
    Select(browser.find_element(By.NAME, "correct")).select_by_value("true")
    _wait(browser, lambda b: shown(b) == [("3", "correct", "true")], "the correct one")
    mark = browser.find_element(By.CSS_SELECTOR, "#samples article mark")
    assert mark.text == str((3 * 7) % 10)  # the extracted answer is highlighted in the response


@pytest.mark.slow
def test_compare_page_lists_exactly_the_flipped_questions(dashboard_factory, browser):
    d = dashboard_factory()
    browser.get(f"{d.url}/compare?a={d.ckpt[20]}&b={d.ckpt[30]}&run={RUN}")
    _wait(browser, _ready, "the compare page")
    rows = browser.find_elements(By.CSS_SELECTOR, "#flips tbody tr")
    flipped = {int(r.get_attribute("data-index")): r.get_attribute("data-direction") for r in rows}
    assert flipped == {1: "fixed", 3: "broken", 4: "fixed"} and set(flipped) == FLIPS_20_30
    delta = browser.find_element(By.CSS_SELECTOR, '#deltas tr[data-metric="eval/accuracy"]')
    assert delta.find_elements(By.TAG_NAME, "td")[3].text == "+0.1667"


@pytest.mark.slow
def test_read_auth_pages_and_data_need_the_token(dashboard_factory, browser):
    d = dashboard_factory(read_auth=True)
    for path in ("/", f"/runs/{RUN}", f"/jobs/{d.job[10]}", "/compare?a=1&b=2", "/v1/runs"):
        assert httpx.get(d.url + path).status_code == 401, path
        assert httpx.get(d.url + path, params={"token": "wrong"}).status_code == 401, path
        ok = httpx.get(d.url + path, headers={"Authorization": f"Bearer {d.srv.token}"})
        assert ok.status_code == 200, path
    assert httpx.get(f"{d.url}/ui/static/run.js").status_code == 200  # assets hold no data

    browser.get(f"{d.url}/runs/{RUN}")
    assert "missing API token" in browser.page_source
    browser.get(f"{d.url}/runs/{RUN}?token={d.srv.token}")
    _wait(browser, _ready, "the run page with the token")
    assert _steps(browser) == [30, 20, 10]
    assert "token=" not in browser.current_url  # kept in sessionStorage, not in the address bar
    browser.find_element(By.CSS_SELECTOR, "header nav a").click()  # links carry it on
    _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, f'#runs tr[data-run="{RUN}"]'), "runs page")


def test_static_route_refuses_path_escapes(dashboard_factory):
    d = dashboard_factory()
    secret = (Path(__file__).resolve().parents[3] / "pyproject.toml").read_text()[:40]
    for raw in (
        "/ui/static/../../pyproject.toml",
        "/ui/static/../../../../../../pyproject.toml",
        "/ui/static/%2e%2e/%2e%2e/router.py",
        "/ui/static/..%2f..%2frouter.py",
        "/ui/static/vendor/../../templates/base.html",
        "/ui/static/..",
        "/ui/static/",
    ):
        # http.client sends the path as written; httpx and browsers would remove the dot segments
        conn = http.client.HTTPConnection("127.0.0.1", d.srv.port, timeout=10)
        conn.request("GET", raw)
        res = conn.getresponse()
        body = res.read().decode(errors="replace")
        conn.close()
        assert res.status == 404, (raw, res.status)
        assert secret not in body and "{% block" not in body
    assert httpx.get(f"{d.url}/ui/static/vendor/uPlot.iife.min.js").status_code == 200
