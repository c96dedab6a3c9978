"""Auth scopes, body limits, checkpoint-path confinement and input validation (real server)."""

from __future__ import annotations

import os

import httpx
import pytest

from eval_service.api.serve import serve
from shared.client import LedgerError
from shared.schemas import EvalSpec


def _counts(ledger) -> tuple:
    tables = ("runs", "checkpoints", "eval_jobs", "eval_results", "samples", "train_metrics", "wandb_outbox")
    return tuple(ledger.sql(f"select count(*) from {t}")[0][0] for t in tables)


def test_tokens_scopes_and_read_auth(ledger_factory):
    ledger = ledger_factory()
    url = ledger.url
    body = {"name": "r"}
    assert httpx.post(f"{url}/v1/runs", json=body).status_code == 401
    bad = httpx.post(f"{url}/v1/runs", json=body, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["detail"] == "invalid API token"
    assert httpx.post(f"{url}/v1/jobs/claim", json={"worker_id": "w"}).status_code == 401
    user = {"Authorization": f"Bearer {ledger.token}"}
    admin = {"Authorization": f"Bearer {ledger.admin_token}"}
    assert httpx.post(f"{url}/v1/runs", json=body, headers=user).status_code == 200
    assert httpx.post(f"{url}/v1/runs", json=body, headers=admin).status_code == 200  # admin: everywhere
    assert httpx.post(f"{url}/v1/admin/flush-wandb", headers=user).status_code == 403
    assert httpx.post(f"{url}/v1/jobs/1/retry", headers=user).status_code == 403
    assert httpx.post(f"{url}/v1/jobs/1/regrade", json={}, headers=user).status_code == 403
    assert httpx.post(f"{url}/v1/admin/flush-wandb", headers=admin).status_code == 200
    assert httpx.get(f"{url}/v1/runs").status_code == 200  # reads are open by default
    assert httpx.get(f"{url}/healthz").status_code == 200

    closed = ledger_factory(env={"DUET_READ_AUTH": "true"})
    assert httpx.get(f"{closed.url}/v1/runs").status_code == 401
    assert httpx.get(f"{closed.url}/metrics").status_code == 401
    assert (
        httpx.get(f"{closed.url}/v1/runs", headers={"Authorization": f"Bearer {closed.token}"}).status_code
        == 200
    )
    assert httpx.get(f"{closed.url}/healthz").status_code == 200


def test_refuses_default_tokens_off_loopback(tmp_path, monkeypatch):
    for name in [k for k in os.environ if k.startswith("DUET_")]:
        monkeypatch.delenv(name)
    db = tmp_path / "x.db"
    with pytest.raises(ValueError) as refused:
        serve(host="0.0.0.0", port=1, db=str(db))  # refuses before it builds the app or listens
    assert "DUET_API_TOKEN" in str(refused.value) and "DUET_ADMIN_TOKEN" in str(refused.value)
    assert not db.exists()


def test_body_over_limit_is_413_before_parsing(ledger_factory):
    ledger = ledger_factory(env={"DUET_MAX_BODY_BYTES": "2000"})
    c = ledger.client()
    run = c.create_run("r")
    before = _counts(ledger)
    rows = [{"step": i, "key": "train/loss", "value": 1.0} for i in range(200)]
    headers = {"Authorization": f"Bearer {ledger.token}"}
    r = httpx.post(f"{ledger.url}/v1/train-metrics", json={"run_id": run.id, "rows": rows}, headers=headers)
    assert r.status_code == 413

    def chunks():  # streamed without Content-Length: counted as it arrives
        import json

        data = json.dumps({"run_id": run.id, "rows": rows}).encode()
        for i in range(0, len(data), 500):
            yield data[i : i + 500]

    r = httpx.post(f"{ledger.url}/v1/train-metrics", content=chunks(), headers=headers)
    assert r.status_code == 413
    assert _counts(ledger) == before
    small = httpx.post(
        f"{ledger.url}/v1/train-metrics", json={"run_id": run.id, "rows": rows[:5]}, headers=headers
    )
    assert small.status_code == 200


def test_checkpoint_paths_must_stay_under_the_root(ledger, tmp_path):
    c = ledger.client()
    c.create_run("r")
    root = ledger.checkpoint_root
    (root / "checkpoint-1").mkdir()
    outside = tmp_path / "outside" / "checkpoint-2"
    outside.mkdir(parents=True)
    sibling = root.parent / (root.name + "2") / "checkpoint-3"  # "/root2" shares the prefix "/root"
    sibling.mkdir(parents=True)
    (root / "link").symlink_to(outside, target_is_directory=True)
    before = _counts(ledger)
    tricks = [
        str(root / ".." / "outside" / "checkpoint-2"),
        "../outside/checkpoint-2",
        str(outside),
        str(sibling),
        str(root / "link"),
        "/etc",
    ]
    for path in tricks:
        with pytest.raises(LedgerError) as e:
            c.enqueue(EvalSpec(task="t"), path=path, run="r", step=9)
        assert e.value.status == 422 and "path" in str(e.value), path
    run_id = c.get_run("r").id
    for path in tricks:
        r = httpx.post(
            f"{ledger.url}/v1/checkpoints",
            json={"run_id": run_id, "step": 9, "path": path},
            headers={"Authorization": f"Bearer {ledger.token}"},
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "path", path
    assert _counts(ledger) == before
    ok = c.enqueue(EvalSpec(task="t"), path=str(root / "checkpoint-1"), run="r")
    assert ok.job.checkpoint_path == os.path.realpath(root / "checkpoint-1") and ok.job.step == 1


def test_malformed_input_is_422_naming_the_field_and_stores_nothing(ledger):
    c = ledger.client()
    run = c.create_run("r")
    (ledger.checkpoint_root / "no-step-here").mkdir()
    before = _counts(ledger)
    h = {"Authorization": f"Bearer {ledger.token}"}
    post = lambda path, body: httpx.post(f"{ledger.url}{path}", json=body, headers=h)  # noqa: E731
    cases = [
        ("/v1/runs", {"name": "bad name!"}, "name"),
        ("/v1/train-metrics", {"run_id": run.id, "rows": [{"step": -1, "key": "k", "value": 1}]}, "step"),
        ("/v1/train-metrics", {"run_id": run.id, "rows": [{"step": 1, "key": "k", "value": "x"}]}, "value"),
        ("/v1/train-metrics", {"run_id": 999, "rows": []}, "run_id"),
        ("/v1/jobs", {"spec": {"task": "t"}}, "body"),  # no target at all
        ("/v1/jobs", {"checkpoint_id": 1, "spec": {"task": "t", "bogus": 1}}, "bogus"),
        ("/v1/jobs", {"checkpoint_id": 1, "spec": {"task": "t", "sampling": {"n": 0}}}, "n"),
        ("/v1/jobs", {"checkpoint_id": 12345, "spec": {"task": "t"}}, "checkpoint_id"),
        ("/v1/jobs", {"run": "r", "step": 3, "spec": {"task": "t"}}, "step"),
        ("/v1/jobs", {"run": "nope", "step": 3, "spec": {"task": "t"}}, "run"),
        (
            "/v1/jobs",
            {"path": str(ledger.checkpoint_root / "no-step-here"), "run": "r", "spec": {"task": "t"}},
            "step",
        ),
        (
            "/v1/jobs",
            {"path": str(ledger.checkpoint_root / "missing"), "run": "r", "spec": {"task": "t"}},
            "path",
        ),
        ("/v1/jobs/claim", {"worker_id": "", "lease_seconds": 5}, "worker_id"),
        ("/v1/jobs/claim", {"worker_id": "w", "lease_seconds": -1}, "lease_seconds"),
    ]
    for path, body, field in cases:
        r = post(path, body)
        assert r.status_code == 422, (path, body, r.text)
        locs = [str(x) for err in r.json()["detail"] for x in err["loc"]]
        assert field in locs, (path, body, r.json())
    assert httpx.get(f"{ledger.url}/v1/jobs", params={"status": "zombie"}).status_code == 422
    bad_json = httpx.post(
        f"{ledger.url}/v1/runs", content=b"{not json", headers={**h, "content-type": "application/json"}
    )
    assert bad_json.status_code == 422
    assert _counts(ledger) == before
