// Job page: the failure-category breakdown and a paginated, filterable sample browser.
"use strict";

(() => {
  const { api, el, fmt, enc, page, live, showError } = duet;
  const jobId = page.job;
  const PAGE_ROWS = 20;
  const form = document.getElementById("filters");
  let pageNo = 0;
  let seq = 0; // the newest request for samples; answers to older ones are dropped

  function breakdown(metrics) {
    // the share of samples per grade category: correct, wrong answer, then each format failure
    const bars = [["correct", metrics["accuracy"]], ["wrong_answer", metrics["wrong_answer_rate"]]];
    for (const [k, v] of Object.entries(metrics)) if (k.startsWith("fail/")) bars.push([k.slice(5), v]);
    const box = document.getElementById("breakdown");
    box.replaceChildren(
      ...bars
        .filter(([, v]) => typeof v === "number")
        .map(([cat, v]) =>
          el(
            "div",
            { class: `bar-row cat-${cat}`, dataset: { category: cat, share: v } },
            el("button", { type: "button", class: "bar-label", title: "show these samples" }, cat),
            el("span", { class: "bar-track" }, el("span", { class: "bar-fill", style: `width:${(100 * v).toFixed(1)}%` })),
            el("span", { class: "bar-value num" }, `${(100 * v).toFixed(1)}%`),
          ),
        ),
    );
    box.querySelectorAll(".bar-row").forEach((row) => {
      row.querySelector("button").onclick = () => {
        const cat = row.dataset.category;
        form.correct.value = cat === "correct" ? "true" : "false";
        form.category.value = cat === "correct" ? "" : cat;
        refresh();
      };
    });
    const cats = ["wrong_answer", ...bars.slice(2).map(([c]) => c)];
    const sel = form.category;
    if (sel.options.length === 1) for (const c of cats) sel.append(el("option", { value: c }, c));
  }

  function highlighted(response, extracted) {
    // mark the last occurrence of the extracted answer: graders take the final answer in the text
    const at = extracted ? response.lastIndexOf(extracted) : -1;
    if (at < 0) return [response];
    return [response.slice(0, at), el("mark", {}, extracted), response.slice(at + extracted.length)];
  }

  function sampleCard(s) {
    const verdict = s.correct ? "correct" : `failed · ${s.category}`;
    return el(
      "article",
      { class: `sample ${s.correct ? "ok" : "bad"}`, dataset: { index: s.index, sample: s.sample, category: s.category, correct: s.correct } },
      el("header", {}, `#${s.index}${s.sample ? `.${s.sample}` : ""} · `, el("strong", {}, verdict),
        ` · format ${s.format_ok ? "ok" : "failed"} · ${s.num_tokens} tokens · finish ${s.finish_reason || "–"}`,
        s.mean_entropy === null || s.mean_entropy === undefined ? "" : ` · entropy ${fmt(s.mean_entropy)}`),
      el("div", { class: "field" }, el("h4", {}, "prompt"), el("pre", {}, s.prompt)),
      el("div", { class: "field" }, el("h4", {}, "response"), el("pre", { class: "response" }, ...highlighted(s.response, s.extracted))),
      el("p", {}, "gold ", el("code", {}, s.gold), " · extracted ", el("code", {}, s.extracted ?? "–")),
    );
  }

  function filters() {
    return { correct: form.correct.value, category: form.category.value, truncated: form.truncated.checked ? "true" : "", q: form.q.value.trim() };
  }

  // Every filter is a query parameter of the samples route: the ledger filters and pages.
  async function readPage(f) {
    const res = await api(`/v1/jobs/${jobId}/samples`, { ...f, offset: pageNo * PAGE_ROWS, limit: PAGE_ROWS });
    return { items: res.items, total: res.total };
  }

  async function showSamples() {
    const f = filters();
    const gen = ++seq;
    const { items, total } = await readPage(f);
    if (gen !== seq) return; // a newer filter or page was asked for meanwhile
    document.getElementById("samples").replaceChildren(...items.map(sampleCard));
    const first = pageNo * PAGE_ROWS;
    document.getElementById("sample-count").textContent = items.length
      ? `samples ${first + 1}–${first + items.length} of ${total}`
      : "no samples match";
    const pager = document.getElementById("sample-pager");
    const more = first + PAGE_ROWS < total;
    pager.replaceChildren(
      el("button", { type: "button", class: "prev", disabled: pageNo === 0 }, "previous"),
      ` page ${pageNo + 1} `,
      el("button", { type: "button", class: "next", disabled: !more }, "next"),
    );
    pager.querySelector(".prev").onclick = () => { pageNo -= 1; showSamples().catch(showError); };
    pager.querySelector(".next").onclick = () => { pageNo += 1; showSamples().catch(showError); };
    document.body.dataset.samplesShown = String(Date.now());
  }

  function refresh() {
    pageNo = 0;
    showSamples().catch(showError);
  }
  form.addEventListener("change", refresh);
  form.q.addEventListener("input", refresh);
  form.addEventListener("submit", (ev) => ev.preventDefault());

  let finished = false;
  live(async () => {
    if (finished) return; // a finished job never changes: stop re-reading it
    const job = await api(`/v1/jobs/${jobId}`);
    const run = await api(`/v1/runs/${job.run_id}`);
    const crumb = document.getElementById("crumb-run");
    crumb.replaceChildren(el("a", { href: `/runs/${enc(run.name)}` }, run.name));
    const summary = [`step ${job.step}`, job.spec.task, job.status, `attempt ${job.attempt}/${job.max_attempts}`, job.checkpoint_path];
    if (job.last_error) summary.push(`last error: ${job.last_error}`);
    document.getElementById("summary").textContent = summary.join(" · ");
    if (job.status === "done") {
      const result = await api(`/v1/jobs/${jobId}/result`);
      breakdown(result.metrics);
      await showSamples();
    }
    finished = !["queued", "leased"].includes(job.status);
    document.body.dataset.ready = "1";
  });
})();
