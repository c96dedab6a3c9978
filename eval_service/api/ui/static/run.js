// Run page: live curves (train, and every metric of each suite entry), the checkpoint table and the queue.
// Each poll reads only train metrics after the last step seen; scores and the queue are re-read whole
// (a new result also moves its neighbours' flip metrics).
"use strict";

(() => {
  const { api, el, fmt, enc, page, live, replaceRows, failureBreakdown } = duet;
  const run = page.run;
  const PAGE_ROWS = 50;
  const SCORES_PAGE = 1000; // the scores route's largest page
  const QUEUE_MAX = 500; // jobs read per open status
  const TRAIN_KEYS = { "train/loss": "loss", "train/learning_rate": "lr" };
  // drawn at first; every other eval metric is on the chart too, switched on from its legend entry
  const HEADLINE = new Set(["accuracy", "format_accuracy", "answer_accuracy", "wrong_answer_rate",
    "format_failure_rate", "truncation_rate"]);
  const QUEUE_STATUSES = ["leased", "queued", "dead", "cancelled"]; // the queue table's order
  const STATUS_LABEL = { leased: "running" };

  const trainChart = new duetCharts.LineChart(document.getElementById("chart-train"), {
    loss: { label: "loss" },
    lr: { label: "learning rate", side: "right" },
  });
  const evalCharts = new Map(); // suite entry (task) -> its chart
  const train = Object.fromEntries(Object.keys(TRAIN_KEYS).map((k) => [k, new Map()])); // key -> step -> value
  let ckptPage = 0; // 0 = the newest checkpoints
  let latest = null; // the last data read, so the pager can redraw without a read

  async function allScores(task) {
    const rows = [];
    for (;;) {
      const after_step = rows.length ? rows[rows.length - 1].step : undefined; // keyset: cheap at any depth
      const got = await api(`/v1/runs/${enc(run)}/scores`, { task, after_step, limit: SCORES_PAGE });
      rows.push(...got);
      if (got.length < SCORES_PAGE) return rows;
    }
  }

  // Only the points after the newest one already drawn: a poll of a long run stays a few bytes.
  async function readTrain() {
    await Promise.all(Object.entries(train).map(async ([key, values]) => {
      const since = values.size ? Math.max(...values.keys()) : undefined;
      for (const r of await api(`/v1/runs/${enc(run)}/train-metrics`, { key, since_step: since })) values.set(r.step, r.value);
    }));
  }

  function trainSeries() {
    return Object.entries(train)
      .filter(([, values]) => values.size)
      .map(([key, values]) => ({ label: key, scale: TRAIN_KEYS[key], values }));
  }

  // every metric of one suite entry, named as W&B names it: eval/<entry>/<metric>
  function evalSeries(task, scores) {
    const keys = [...new Set(scores.flatMap((r) => Object.keys(r.metrics)))].sort();
    return keys.map((key) => {
      const name = key.slice("eval/".length);
      const values = new Map(scores.filter((r) => key in r.metrics).map((r) => [r.step, r.metrics[key]]));
      const isRate = [...values.values()].every((v) => v >= 0 && v <= 1);
      return { label: `eval/${task}/${name}`, scale: isRate ? "rate" : "value", values, show: HEADLINE.has(name) };
    });
  }

  function evalChart(task, i) {
    if (!evalCharts.has(task)) {
      const box = el("div", { class: "chart", id: `chart-eval-${i}`, dataset: { task } });
      document.getElementById("charts").append(el("figure", {}, el("figcaption", {}, `eval · ${task}`), box));
      evalCharts.set(task, new duetCharts.LineChart(box, { rate: { label: "rate / accuracy" }, value: { label: "value", side: "right" } }));
    }
    return evalCharts.get(task);
  }

  function checkpointRows(scores, task) {
    const hasAnswerAcc = scores.some((r) => "eval/answer_accuracy" in r.metrics);
    document.querySelectorAll("#checkpoints .answer-acc").forEach((th) => (th.hidden = !hasAnswerAcc));
    // A stage column once the run has a stage after SFT (GRPO): as in `duet scores`, base/sft/grpo.
    const hasStages = scores.some((r) => r.algorithm && r.algorithm !== "sft");
    document.querySelectorAll("#checkpoints .stage").forEach((th) => (th.hidden = !hasStages));
    document.getElementById("table-task").textContent = task || "";
    const newestFirst = [...scores].reverse();
    const pages = Math.max(1, Math.ceil(newestFirst.length / PAGE_ROWS));
    ckptPage = Math.min(ckptPage, pages - 1);
    const shown = newestFirst.slice(ckptPage * PAGE_ROWS, (ckptPage + 1) * PAGE_ROWS);
    const prevOf = new Map(scores.slice(1).map((r, i) => [r.checkpoint_id, scores[i]]));
    pager(newestFirst.length, pages);
    return shown.map((r) => {
      const prev = prevOf.get(r.checkpoint_id);
      const m = r.metrics;
      const compare = prev ? `/compare?a=${prev.checkpoint_id}&b=${r.checkpoint_id}&run=${enc(run)}&task=${enc(task)}` : null;
      return el(
        "tr",
        { id: `step-${r.step}`, dataset: { step: r.step, checkpoint: r.checkpoint_id } },
        el("td", { class: "num" }, r.job_id ? el("a", { href: `/jobs/${r.job_id}` }, r.step) : r.step),
        hasStages ? el("td", { class: "stage" }, r.algorithm || (r.step === 0 ? "base" : "–")) : null,
        el("td", { class: "num" }, fmt(m["eval/accuracy"])),
        el("td", { class: "num" }, fmt(m["eval/format_accuracy"])),
        hasAnswerAcc ? el("td", { class: "num" }, fmt(m["eval/answer_accuracy"])) : null,
        el("td", {}, failureBreakdown(m)),
        el("td", { class: "load" }, r.load_mode || "–"),
        el("td", { class: "eval-time num" }, r.eval_seconds === null || r.eval_seconds === undefined ? "–" : `${r.eval_seconds.toFixed(1)} s`),
        el("td", {}, compare ? el("a", { href: compare }, `vs ${prev.step}`) : "–"),
      );
    });
  }

  function pager(n, pages) {
    const box = document.getElementById("ckpt-pager");
    if (pages <= 1) return box.replaceChildren(`${n} checkpoints`);
    const go = (p) => () => {
      ckptPage = p;
      renderTable(latest);
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

  function queue(byStatus) {
    document.getElementById("queue-counts").textContent = QUEUE_STATUSES
      .map((s) => `${STATUS_LABEL[s] || s} ${byStatus[s].length}${byStatus[s].length >= QUEUE_MAX ? "+" : ""}`)
      .join(" · ");
    const open = QUEUE_STATUSES.flatMap((s) => [...byStatus[s]].sort((a, b) => a.id - b.id)).slice(0, 200);
    replaceRows(
      document.querySelector("#queue tbody"),
      open.map((j) =>
        el(
          "tr",
          { dataset: { job: j.id, status: j.status } },
          el("td", {}, el("a", { href: `/jobs/${j.id}` }, j.id)),
          el("td", { class: "num" }, j.step),
          el("td", {}, j.spec.name || j.spec.task), // the suite entry, else the task
          el("td", { class: `status-${j.status}` }, STATUS_LABEL[j.status] || j.status),
          el("td", { class: "num" }, `${j.attempt}/${j.max_attempts}`),
          el("td", {}, j.lease_owner || "–"),
          // the first line says what happened; the whole traceback is one hover away
          el("td", { class: "error-text", title: j.last_error || "" }, (j.last_error || "").split("\n")[0]),
        ),
      ),
    );
  }

  function renderTable(d) {
    const task = d.tasks[0]; // the run's headline entry comes first
    replaceRows(document.querySelector("#checkpoints tbody"), checkpointRows(d.scores[task] || [], task));
  }

  function render(d) {
    trainChart.update(trainSeries());
    d.tasks.forEach((task, i) => evalChart(task, i).update(evalSeries(task, d.scores[task])));
    renderTable(d);
    const head = d.scores[d.tasks[0]] || [];
    const best = head.reduce((b, r) => ((r.metrics["eval/accuracy"] ?? -1) > (b ? b.metrics["eval/accuracy"] ?? -1 : -1) ? r : b), null);
    const trainSteps = Object.values(train).flatMap((values) => [...values.keys()]);
    document.getElementById("summary").textContent = [
      `${head.length} checkpoints scored`,
      d.tasks.length > 1 ? `suite: ${d.tasks.join(", ")}` : null,
      trainSteps.length ? `train step ${Math.max(...trainSteps)}` : "no train metrics yet",
      best ? `best accuracy ${fmt(best.metrics["eval/accuracy"])} at step ${best.step}` : null,
    ].filter(Boolean).join(" · ");
  }

  live(async () => {
    // Curves and the table first; the queue follows, so it does not hold up the first drawing.
    const [tasks] = await Promise.all([api(`/v1/runs/${enc(run)}/tasks`), readTrain()]);
    const scores = Object.fromEntries(await Promise.all(tasks.map(async (t) => [t, await allScores(t)])));
    latest = { tasks, scores };
    render(latest);
    const body = document.body.dataset;
    if (!body.readyMs) {
      // time from navigation start until the table and charts are in a painted frame (the benchmark reads it)
      await new Promise((resolve) => requestAnimationFrame(() => resolve()));
      body.readyMs = performance.now().toFixed(1);
    }
    const lists = await Promise.all(QUEUE_STATUSES.map((status) => api("/v1/jobs", { run, status, limit: QUEUE_MAX })));
    queue(Object.fromEntries(QUEUE_STATUSES.map((s, i) => [s, lists[i]])));
    if (!body.completeMs) body.completeMs = performance.now().toFixed(1);
    body.ready = "1";
    body.polls = String(Number(body.polls || 0) + 1); // the benchmark measures what one poll reads
  });
})();
