// Runs page: every run with its latest checkpoint step, best checkpoint and queue status.
"use strict";

(() => {
  const { api, el, fmt, enc, live, replaceRows } = duet;
  const ACTIVE = new Set(["queued", "leased"]);

  async function runRow(run) {
    const [ckpts, jobs, best] = await Promise.all([
      api(`/v1/runs/${enc(run.name)}/checkpoints`),
      api("/v1/jobs", { run: run.name, limit: 10000 }),
      // no results yet (404) or no such metric (422): the run simply has no best checkpoint yet
      api(`/v1/runs/${enc(run.name)}/best`).catch((e) => (e.status === 404 || e.status === 422 ? null : Promise.reject(e))),
    ]);
    const latest = ckpts.length ? Math.max(...ckpts.map((c) => c.step)) : null;
    const counts = {};
    for (const j of jobs) counts[j.status] = (counts[j.status] || 0) + 1;
    const active = jobs.filter((j) => ACTIVE.has(j.status)).length;
    const status = active ? `evaluating (${counts.queued || 0} queued, ${counts.leased || 0} running)` : jobs.length ? "idle" : "no jobs";
    const dead = counts.dead ? ` · ${counts.dead} dead` : "";
    const bestCell = best
      ? el("a", { href: `/runs/${enc(run.name)}#step-${best.row.step}` }, `step ${best.row.step} · ${best.metric} ${fmt(best.row.metrics[best.metric])}`)
      : "–";
    return el(
      "tr",
      { dataset: { run: run.name } },
      el("td", {}, el("a", { href: `/runs/${enc(run.name)}` }, run.name)),
      el("td", {}, run.base_model || "–"),
      el("td", {}, run.primary_task || "–"),
      el("td", { class: "num" }, latest === null ? "–" : latest),
      el("td", {}, bestCell),
      el("td", { class: active ? "status-active" : "" }, status + dead),
      el("td", {}, new Date(run.created_at).toLocaleString()),
    );
  }

  live(async () => {
    const runs = await api("/v1/runs");
    const rows = await Promise.all(runs.map(runRow));
    replaceRows(document.querySelector("#runs tbody"), rows);
    document.body.dataset.ready = "1";
  });
})();
