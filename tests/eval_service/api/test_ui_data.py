"""The read-route options the dashboard relies on, over HTTP on a real ledger: sample filters
(truncation, text search) applied by the ledger with paging, train metrics after a step (polls),
and each score row's job and eval time (no per-row result reads)."""

from __future__ import annotations

from tests.eval_service.api import dashboard_ledger
from tests.eval_service.api.dashboard_ledger import OUTCOMES, RUN, TASK, T

dashboard_factory = dashboard_ledger.dashboard_factory  # the seeded ledger fixture


def test_samples_filter_by_truncation_and_text_with_paging(dashboard_factory):
    d = dashboard_factory()
    c, job = d.srv.client(), d.job[10]
    truncated = [i for i, o in enumerate(OUTCOMES[10]) if o == T]
    page = c.samples(job, truncated=True)
    assert [s.index for s in page.items] == truncated and page.total == len(truncated)
    assert all(s.finish_reason == "length" for s in page.items)
    rest = c.samples(job, truncated=False)
    assert rest.total == 6 - len(truncated) and not {s.index for s in rest.items} & set(truncated)

    # any case, in the prompt ("... of 43 x 17?") or the response ("carry" only in truncated ones)
    assert [s.index for s in c.samples(job, q="OF 43 X").items] == [4]
    assert [s.index for s in c.samples(job, q="Carry").items] == truncated
    assert c.samples(job, q="Carry", correct=True).total == 0
    # LIKE wildcards are plain text
    assert c.samples(job, q="%").total == 0 and c.samples(job, q="_").total == 0

    # the ledger pages the filtered set: two pages of one make up the whole
    one, two = c.samples(job, q="ones digit", limit=3), c.samples(job, q="ones digit", offset=3, limit=3)
    assert one.total == two.total == 6
    assert [s.index for s in one.items + two.items] == list(range(6))


def test_train_metrics_since_step_returns_only_later_rows(dashboard_factory):
    d = dashboard_factory()
    c = d.srv.client()
    rows = c.train_metrics(RUN, key="train/loss", since_step=27)
    assert [(r.step, r.key) for r in rows] == [(28, "train/loss"), (29, "train/loss"), (30, "train/loss")]
    assert c.train_metrics(RUN, since_step=30) == []
    assert len(c.train_metrics(RUN)) == 60


def test_score_rows_carry_their_job_and_eval_time(dashboard_factory):
    d = dashboard_factory()
    rows = d.srv.client().scores(RUN, TASK)
    assert [(r.step, r.job_id) for r in rows] == [(s, d.job[s]) for s in (10, 20, 30)]
    # the worker's info: load 0.4 s + generate 1.5 s + grade 0.1 s
    assert all(abs(r.eval_seconds - 2.0) < 1e-9 for r in rows)
