// Run page: live curves, the checkpoint table and the queue, re-read every poll.
"use strict";

(() => {
  const { api, el, fmt, enc, page, live, replaceRows, failureBreakdown } = duet;
  const run = page.run;
  const PAGE_ROWS = 50;
  const TRAIN_KEYS = { "train/loss": "loss", "train/learning_rate": "lr" };
  // drawn at first; every other eval metric is on the chart too, switched on from its legend entry
  const HEADLINE = new Set(["eval/accuracy", "eval/format_accuracy", "eval/answer_accuracy", "eval/wrong_answer_rate",
    "eval/format_failure_rate", "eval/truncation_rate"]);
  const QUEUE_ORDER = ["leased", "queued", "dead", "cancelled"];
  const STATUS_LABEL = { leased: "running" };

  const trainChart = new duetCharts.LineChart(document.getElementById("chart-train"), {
    loss: { label: "loss" },
    lr: { label: "learning rate", side: "right" },
  });
  const evalChart = new duetCharts.LineChart(document.getElementById("chart-eval"), {
    rate: { label: "rate / accuracy" },
    value: { label: "value", side: "right" },
  });
  const infoCache = new Map(); // job id -> result info; a done job's info never changes
  let ckptPage = 0; // 0 = the newest checkpoints
  let latest = null; // the last data read, so the pager can redraw without a read

  function trainSeries(rowsByKey) {
    return Object.entries(rowsByKey)
      .filter(([, rows]) => rows.length)
      .map(([key, rows]) => ({ label: key, scale: TRAIN_KEYS[key], values: new Map(rows.map((r) => [r.step, r.value])) }));
  }

  function evalSeries(scores) {
    const keys = [...new Set(scores.flatMap((r) => Object.keys(r.metrics)))].sort();
    return keys.map((key) => {
      const values = new Map(scores.filter((r) => key in r.metrics).map((r) => [r.step, r.metrics[key]]));
      const isRate = [...values.values()].every((v) => v >= 0 && v <= 1);
      return { label: key, scale: isRate ? "rate" : "value", values, show: HEADLINE.has(key) };
    });
  }

  function evalSeconds(info) {
    const parts = ["load_total_s", "gen_s", "grade_s"].map((k) => info[k]).filter((v) => typeof v === "number");
    return parts.length ? `${parts.reduce((a, b) => a + b, 0).toFixed(1)} s` : "–";
  }

  function fillInfo(tr, info) {
    // the result's own load mode (swap/rebuild) when the worker reported one, else its engine event
    tr.querySelector(".load").textContent = tr.dataset.loadMode || info.engine_event || "–";
    tr.querySelector(".eval-time").textContent = evalSeconds(info);
  }

  function checkpointRows(scores, jobByCkpt) {
    const hasAnswerAcc = scores.some((r) => "eval/answer_accuracy" in r.metrics);
    document.querySelectorAll("#checkpoints .answer-acc").forEach((th) => (th.hidden = !hasAnswerAcc));
    const newestFirst = [...scores].reverse();
    const pages = Math.max(1, Math.ceil(newestFirst.length / PAGE_ROWS));
    ckptPage = Math.min(ckptPage, pages - 1);
    const shown = newestFirst.slice(ckptPage * PAGE_ROWS, (ckptPage + 1) * PAGE_ROWS);
    const prevOf = new Map(scores.slice(1).map((r, i) => [r.checkpoint_id, scores[i]]));
    const rows = shown.map((r) => {
      const job = jobByCkpt.get(r.checkpoint_id);
      const prev = prevOf.get(r.checkpoint_id);
      const m = r.metrics;
      const tr = el(
        "tr",
        { id: `step-${r.step}`, dataset: { step: r.step, checkpoint: r.checkpoint_id, loadMode: r.load_mode || "" } },
        el("td", { class: "num" }, job ? el("a", { href: `/jobs/${job.id}` }, r.step) : r.step),
        el("td", { class: "num" }, fmt(m["eval/accuracy"])),
        el("td", { class: "num" }, fmt(m["eval/format_accuracy"])),
        hasAnswerAcc ? el("td", { class: "num" }, fmt(m["eval/answer_accuracy"])) : null,
        el("td", {}, failureBreakdown(m)),
        el("td", { class: "load" }, "…"),
        el("td", { class: "eval-time num" }, "…"),
        el("td", {}, prev ? el("a", { href: `/compare?a=${prev.checkpoint_id}&b=${r.checkpoint_id}&run=${enc(run)}` }, `vs ${prev.step}`) : "–"),
      );
      if (job && infoCache.has(job.id)) fillInfo(tr, infoCache.get(job.id));
      else if (!job) fillInfo(tr, {});
      return { tr, job };
    });
    pager(newestFirst.length, pages);
    return rows;
  }

  function pager(n, pages) {
    const box = document.getElementById("ckpt-pager");
    if (pages <= 1) return box.replaceChildren(`${n} checkpoints`);
    const go = (p) => () => {
      ckptPage = p;
      fillMissingInfo(render(latest)).catch(duet.showError);
    };
    const first = ckptPage * PAGE_ROWS + 1;
    box.replaceChildren(
      el("button", { type: "button", disabled: ckptPage === 0 }, "newer"),
      ` ${first}–${Math.min(n, first + PAGE_ROWS - 1)} of ${n} `,
      el("button", { type: "button", disabled: ckptPage >= pages - 1 }, "older"),
    );
    box.children[0].onclick = go(ckptPage - 1);
    box.children[1].onclick = go(ckptPage + 1);
  }

  function queue(jobs) {
    const counts = {};
    for (const j of jobs) counts[j.status] = (counts[j.status] || 0) + 1;
    document.getElementById("queue-counts").textContent = ["queued", "leased", "done", "dead", "cancelled"]
      .map((s) => `${STATUS_LABEL[s] || s} ${counts[s] || 0}`)
      .join(" · ");
    const open = jobs
      .filter((j) => j.status !== "done")
      .sort((a, b) => QUEUE_ORDER.indexOf(a.status) - QUEUE_ORDER.indexOf(b.status) || a.id - b.id)
      .slice(0, 200);
    replaceRows(
      document.querySelector("#queue tbody"),
      open.map((j) =>
        el(
          "tr",
          { dataset: { job: j.id, status: j.status } },
          el("td", {}, el("a", { href: `/jobs/${j.id}` }, j.id)),
          el("td", { class: "num" }, j.step),
          el("td", {}, j.spec.task),
          el("td", { class: `status-${j.status}` }, STATUS_LABEL[j.status] || j.status),
          el("td", { class: "num" }, `${j.attempt}/${j.max_attempts}`),
          el("td", {}, j.lease_owner || "–"),
          el("td", { class: "error-text" }, j.last_error || ""),
        ),
      ),
    );
  }

  function render(d) {
    trainChart.update(trainSeries(d.train));
    evalChart.update(evalSeries(d.scores));
    // the newest done job per checkpoint holds that checkpoint's shown result (jobs come newest first)
    const jobByCkpt = new Map();
    for (const j of d.jobs) if (j.status === "done" && !jobByCkpt.has(j.checkpoint_id)) jobByCkpt.set(j.checkpoint_id, j);
    const rows = checkpointRows(d.scores, jobByCkpt);
    replaceRows(document.querySelector("#checkpoints tbody"), rows.map((r) => r.tr));
    queue(d.jobs);
    const best = d.scores.reduce((b, r) => ((r.metrics["eval/accuracy"] ?? -1) > (b ? b.metrics["eval/accuracy"] ?? -1 : -1) ? r : b), null);
    const trainSteps = Object.values(d.train).flat().map((r) => r.step);
    document.getElementById("summary").textContent = [
      `${d.scores.length} checkpoints scored`,
      trainSteps.length ? `train step ${Math.max(...trainSteps)}` : "no train metrics yet",
      best ? `best accuracy ${fmt(best.metrics["eval/accuracy"])} at step ${best.step}` : null,
    ].filter(Boolean).join(" · ");
    return rows;
  }

  async function fillMissingInfo(rows) {
    const missing = rows.filter((r) => r.job && !infoCache.has(r.job.id));
    await Promise.all(
      missing.map(async (r) => {
        const res = await api(`/v1/jobs/${r.job.id}/result`);
        infoCache.set(r.job.id, res.info);
        fillInfo(r.tr, res.info);
      }),
    );
  }

  live(async () => {
    // Scores and train metrics first: the table and the charts need nothing else. The job list
    // (job links, the queue, load/eval time) follows, so it does not hold up the first drawing.
    const [scores, loss, lr] = await Promise.all([
      api(`/v1/runs/${enc(run)}/scores`),
      api(`/v1/runs/${enc(run)}/train-metrics`, { key: "train/loss" }),
      api(`/v1/runs/${enc(run)}/train-metrics`, { key: "train/learning_rate" }),
    ]);
    latest = { scores, jobs: latest ? latest.jobs : [], train: { "train/loss": loss, "train/learning_rate": lr } };
    render(latest);
    const body = document.body.dataset;
    if (!body.readyMs) {
      // time from navigation start until the table and charts are in a painted frame (the benchmark reads it)
      await new Promise((resolve) => requestAnimationFrame(() => resolve()));
      body.readyMs = performance.now().toFixed(1);
    }
    latest.jobs = await api("/v1/jobs", { run, limit: 10000 });
    await fillMissingInfo(render(latest));
    if (!body.completeMs) body.completeMs = performance.now().toFixed(1);
    body.ready = "1";
  });
})();
