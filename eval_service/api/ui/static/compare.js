// Compare page: metric deltas of two checkpoints and the questions whose verdict flipped
// (the ledger's /v1/compare and /v1/compare/samples: first generations, matched by question id).
"use strict";

(() => {
  const { api, el, fmt, page, live } = duet;

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

  function flips(res) {
    const rows = [...res.learned.map((f) => [f, "fixed"]), ...res.forgotten.map((f) => [f, "broken"])];
    rows.sort(([x], [y]) => x.a.index - y.a.index || (x.question_id < y.question_id ? -1 : 1));
    document.getElementById("task").textContent = res.task;
    document.getElementById("flip-count").textContent =
      `${rows.length} flipped: ${res.learned.length} wrong → right, ${res.forgotten.length} right → wrong ` +
      `(of ${res.common} questions evaluated at both)`;
    document.querySelector("#flips tbody").replaceChildren(
      ...rows.map(([f, direction]) => el("tr", { dataset: { index: f.a.index, question: f.question_id, direction } },
        el("td", { class: "num", title: `question ${f.question_id}` }, f.a.index),
        el("td", {}, el("pre", {}, f.a.prompt)),
        el("td", {}, el("code", {}, f.a.gold)),
        el("td", {}, verdict(f.a)),
        el("td", {}, verdict(f.b)))),
    );
  }

  let done = false;
  live(async () => {
    if (done) return; // both results are final: nothing to re-read
    const q = { a: page.a, b: page.b, task: page.task };
    const [cmp, res] = await Promise.all([api("/v1/compare", q), api("/v1/compare/samples", q)]);
    deltas(cmp);
    flips(res);
    done = true;
    document.body.dataset.ready = "1";
  });
})();
