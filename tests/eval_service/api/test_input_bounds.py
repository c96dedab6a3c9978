"""What the attack run of issue 11 found, against a real ledger: values the database or the JSON
encoder cannot hold are a 422 naming the field (never a 500), metric values are finite, a
re-written checkpoint is a 409, free-form fields are bounded, lists are light, and the OpenAPI
document tells the truth."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from shared.fields import MAX_ERROR_CHARS, MAX_JSON_BYTES, MAX_SAMPLE_TEXT_CHARS
from shared.schemas import CheckpointCreate, CompleteRequest, EvalSpec

BIG = 2**63  # one past the largest SQL integer


def _post(ledger, path: str, body: dict, *, admin: bool = False) -> httpx.Response:
    token = ledger.admin_token if admin else ledger.token
    # json.dumps keeps lone surrogates and NaN as JSON escapes/tokens, as an attacker would send them
    return httpx.post(
        f"{ledger.url}{path}",
        content=json.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )


def _locs(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, (r.status_code, r.text)
    return [".".join(str(x) for x in e["loc"] if x != "body") for e in r.json()["detail"]]


def _leased_job(ledger, tmp_path):
    c = ledger.client()
    ckpt = ledger.checkpoint_root / "checkpoint-5"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    job = c.enqueue(EvalSpec(task="arith"), path=str(ckpt), run="r").job
    lease = c.claim("w")
    assert lease is not None and lease.job.id == job.id
    return c, lease


def test_integers_past_int64_are_422_or_404_never_500(ledger):
    c = ledger.client()
    run = c.create_run("r")
    assert _locs(_post(ledger, "/v1/train-metrics", {"run_id": run.id, "rows": [{"step": BIG, "key": "k", "value": 1}]})) == ["rows.0.step"]  # fmt: skip
    assert _locs(_post(ledger, "/v1/train-metrics", {"run_id": BIG, "rows": []})) == ["run_id"]
    assert _locs(_post(ledger, "/v1/checkpoints", {"run_id": run.id, "step": BIG, "path": "x"})) == ["step"]
    spec = EvalSpec(task="arith").model_dump()
    assert _locs(_post(ledger, "/v1/jobs", {"checkpoint_id": BIG, "spec": spec})) == ["checkpoint_id"]
    assert _locs(_post(ledger, "/v1/jobs", {"checkpoint_id": 1, "spec": spec, "priority": BIG})) == [
        "priority"
    ]
    auth = {"Authorization": f"Bearer {ledger.token}"}
    for path in (f"/v1/jobs/{BIG}", f"/v1/jobs/{BIG}/result", f"/v1/runs/{BIG}", f"/v1/compare?a={BIG}&b=1"):
        r = httpx.get(f"{ledger.url}{path}", headers=auth)
        assert r.status_code in (404, 422), (path, r.status_code, r.text)


def test_unencodable_text_is_422_naming_the_field(ledger, tmp_path):
    c = ledger.client()
    assert _locs(_post(ledger, "/v1/runs", {"name": "r", "base_model": "\ud800"})) == ["base_model"]
    assert _locs(_post(ledger, "/v1/runs", {"name": "r", "config": {"lr\ud800": 1}})) == ["config"]
    assert _locs(_post(ledger, "/v1/jobs/claim", {"worker_id": "w\udfff"})) == ["worker_id"]
    run = c.create_run("r")
    rows = [{"step": 1, "key": "train/\ud800", "value": 1.0}]
    assert _locs(_post(ledger, "/v1/train-metrics", {"run_id": run.id, "rows": rows})) == ["rows.0.key"]
    assert c.list_runs()[0].name == "r"  # and the ledger still answers


def test_eval_metrics_must_be_finite_on_complete_and_regrade(ledger, tmp_path):
    c, lease = _leased_job(ledger, tmp_path)
    body = {"worker_id": "w", "attempt": lease.attempt, "metrics": {"accuracy": float("nan")}}
    assert _locs(_post(ledger, f"/v1/jobs/{lease.job.id}/complete", body)) == ["metrics.accuracy"]
    body["metrics"] = {"accuracy": float("inf")}
    assert _locs(_post(ledger, f"/v1/jobs/{lease.job.id}/complete", body)) == ["metrics.accuracy"]
    c.complete(lease.job.id, CompleteRequest(worker_id="w", attempt=lease.attempt, metrics={"accuracy": 0.5}))
    regrade = {"grader_version": "2", "metrics": {"accuracy": float("-inf")}}
    r = _post(ledger, f"/v1/jobs/{lease.job.id}/regrade", regrade, admin=True)
    assert _locs(r) == ["metrics.accuracy"]
    assert c.result(lease.job.id).metrics == {"accuracy": 0.5}


def test_nan_stored_by_an_old_ledger_reads_as_missing(ledger, tmp_path):
    if ledger.backend != "sqlite":
        pytest.skip("0.1.0 stored NaN in SQLite only (PostgreSQL's json refuses it)")
    c, lease = _leased_job(ledger, tmp_path)
    body = CompleteRequest(
        worker_id="w", attempt=lease.attempt, metrics={"accuracy": 0.5, "format_accuracy": 1.0}
    )
    c.complete(lease.job.id, body)
    db = sqlite3.connect(ledger.db_path)  # what 0.1.0 stored for a NaN metric
    db.execute("update eval_results set metrics = ?", ('{"accuracy": NaN, "format_accuracy": 1.0}',))
    db.commit()
    db.close()
    rows = c.scores("r")
    assert rows[0].metrics == {"eval/format_accuracy": 1.0}
    assert c.result(lease.job.id).metrics == {"format_accuracy": 1.0}
    assert c.best("r", "eval/format_accuracy").row.step == 5


def test_rewritten_checkpoint_is_409_naming_the_difference(ledger):
    c = ledger.client()
    run = c.create_run("r")
    root = ledger.checkpoint_root
    (root / "a" / "checkpoint-7").mkdir(parents=True)
    (root / "b" / "checkpoint-7").mkdir(parents=True)
    first = c.register_checkpoint(
        CheckpointCreate(run_id=run.id, step=7, path="a/checkpoint-7", fingerprint="f1")
    )
    same = c.register_checkpoint(
        CheckpointCreate(run_id=run.id, step=7, path="a/checkpoint-7", fingerprint="f1")
    )
    assert same.id == first.id
    for path, fp, says in (("b/checkpoint-7", "f1", "path"), ("a/checkpoint-7", "f2", "fingerprint")):
        r = _post(ledger, "/v1/checkpoints", {"run_id": run.id, "step": 7, "path": path, "fingerprint": fp})
        assert r.status_code == 409 and says in r.json()["detail"], r.text
    assert [ck.fingerprint for ck in c.list_checkpoints("r")] == ["f1"]


def test_free_form_fields_are_bounded_and_run_lists_are_light(ledger, tmp_path):
    c = ledger.client()
    big = {"blob": "x" * (MAX_JSON_BYTES + 1)}
    r = _post(ledger, "/v1/runs", {"name": "r", "config": big})
    assert _locs(r) == ["config"] and str(MAX_JSON_BYTES) in r.text
    c.create_run("r", config={"lr": 1e-5, "note": "y" * 1000})
    listed = httpx.get(f"{ledger.url}/v1/runs").json()
    assert listed and "config" not in listed[0]
    assert httpx.get(f"{ledger.url}/v1/runs?limit=1&offset=1").json() == []
    assert c.get_run("r").config["lr"] == 1e-5

    _, lease = _leased_job(ledger, tmp_path)
    fail = {"worker_id": "w", "attempt": lease.attempt, "error": "e" * (MAX_ERROR_CHARS + 1)}
    assert _locs(_post(ledger, f"/v1/jobs/{lease.job.id}/fail", fail)) == ["error"]
    sample = {"index": 0, "prompt": "p" * (MAX_SAMPLE_TEXT_CHARS + 1), "response": "r", "gold": "1",
              "correct": True, "format_ok": True, "category": "correct"}  # fmt: skip
    body = {"worker_id": "w", "attempt": lease.attempt, "metrics": {"accuracy": 1.0}, "samples": [sample]}
    assert _locs(_post(ledger, f"/v1/jobs/{lease.job.id}/complete", body)) == ["samples.0.prompt"]
    info = {"worker_id": "w", "attempt": lease.attempt, "metrics": {"accuracy": 1.0}, "info": big}
    assert _locs(_post(ledger, f"/v1/jobs/{lease.job.id}/complete", info)) == ["info"]


def test_openapi_documents_error_statuses_and_metrics_text(ledger):
    doc = httpx.get(f"{ledger.url}/openapi.json").json()
    paths = doc["paths"]
    assert {"401", "413", "422"} <= set(paths["/v1/train-metrics"]["post"]["responses"])
    assert {"401", "404", "409", "422"} <= set(paths["/v1/jobs/{job_id}/complete"]["post"]["responses"])
    assert {"401", "403", "409"} <= set(paths["/v1/jobs/{job_id}/retry"]["post"]["responses"])
    assert "409" in paths["/v1/checkpoints"]["post"]["responses"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert "config" not in doc["components"]["schemas"]["RunSummary"]["properties"]
    r = httpx.options(f"{ledger.url}/v1/jobs/claim")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_read_auth_protects_the_api_description_unless_public_docs(ledger_factory):
    closed = ledger_factory(env={"DUET_READ_AUTH": "true"})
    auth = {"Authorization": f"Bearer {closed.token}"}
    for path in ("/openapi.json", "/docs"):
        assert httpx.get(f"{closed.url}{path}").status_code == 401
        assert httpx.get(f"{closed.url}{path}", headers=auth).status_code == 200
    public = ledger_factory(env={"DUET_READ_AUTH": "true", "DUET_PUBLIC_DOCS": "true"})
    assert httpx.get(f"{public.url}/openapi.json").status_code == 200
    assert httpx.get(f"{public.url}/v1/runs").status_code == 401
