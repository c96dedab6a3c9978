// Compare page: metric deltas of two checkpoints and the questions whose verdict flipped.
// The ledger has no route listing flips yet, so they are matched here from the two jobs' samples.
"use strict";

(() => {
  const { api, el, fmt, page, live } = duet;
  const CHUNK = 10000; // the samples route's largest page

  async function allSamples(jobId) {
    const out = [];
    for (let offset = 0; ; offset += CHUNK) {
      const res = await api(`/v1/jobs/${jobId}/samples`, { offset, limit: CHUNK });
      out.push(...res.items);
      if (out.length >= res.total || res.items.length === 0) return out;
    }
  }

  // The newest done job of a checkpoint (for `task` when given): the one whose result compare shows.
  function doneJob(jobs, checkpointId, task) {
    const job = jobs.find((j) => j.checkpoint_id === checkpointId && j.status === "done" && (!task || j.spec.task === task));
    if (!job) throw new Error(`checkpoint ${checkpointId} has no finished eval job${task ? ` for task ${task}` : ""}`);
    return job;
  }

  function deltas(cmp) {
    document.getElementById("step-a").textContent = cmp.a.step;
    document.getElementById("step-b").textContent = cmp.b.step;
    const keys = Object.keys(cmp.delta).sort();
    document.querySelector("#deltas tbody").replaceChildren(
      ...keys.map((k) => {
        const d = cmp.delta[k];
        return el("tr", { dataset: { metric: k } },
          el("td", {}, k),
          el("td", { class: "num" }, fmt(cmp.a.metrics[k], 4)),
          el("td", { class: "num" }, fmt(cmp.b.metrics[k], 4)),
          el("td", { class: `num ${d > 0 ? "up" : d < 0 ? "down" : ""}` }, `${d > 0 ? "+" : ""}${fmt(d, 4)}`));
      }),
    );
  }

  const verdict = (s) => el("div", { class: s.correct ? "ok" : "bad" },
    el("strong", {}, s.correct ? "correct" : s.category), " · extracted ", el("code", {}, s.extracted ?? "–"),
    el("pre", {}, s.response));

  function flips(samplesA, samplesB) {
    const key = (s) => `${s.index}:${s.sample}`;
    const byKey = new Map(samplesA.map((s) => [key(s), s]));
    const rows = [];
    for (const b of samplesB) {
      const a = byKey.get(key(b));
      if (a && a.correct !== b.correct) rows.push([a, b]);
    }
    rows.sort(([x], [y]) => x.index - y.index || x.sample - y.sample);
    const fixed = rows.filter(([, b]) => b.correct).length;
    document.getElementById("flip-count").textContent =
      `${rows.length} flipped: ${fixed} wrong → right, ${rows.length - fixed} right → wrong (of ${samplesB.length} samples)`;
    document.querySelector("#flips tbody").replaceChildren(
      ...rows.map(([a, b]) => el("tr", { dataset: { index: a.index, sample: a.sample, direction: b.correct ? "fixed" : "broken" } },
        el("td", { class: "num" }, a.sample ? `${a.index}.${a.sample}` : a.index),
        el("td", {}, el("pre", {}, a.prompt)),
        el("td", {}, el("code", {}, a.gold)),
        el("td", {}, verdict(a)),
        el("td", {}, verdict(b)))),
    );
  }

  let done = false;
  live(async () => {
    if (done) return; // both results are final: nothing to re-read
    const cmp = await api("/v1/compare", { a: page.a, b: page.b });
    deltas(cmp);
    const jobs = await api("/v1/jobs", { status: "done", run: page.run, limit: 10000 });
    const jobA = doneJob(jobs, page.a);
    const jobB = doneJob(jobs, page.b, jobA.spec.task);
    const [sa, sb] = await Promise.all([allSamples(jobA.id), allSamples(jobB.id)]);
    flips(sa, sb);
    done = true;
    document.body.dataset.ready = "1";
  });
})();
