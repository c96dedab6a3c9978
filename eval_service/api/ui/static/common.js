// Shared by every dashboard page: the read token, JSON reads of /v1/..., DOM helpers, polling.
"use strict";

const duet = (() => {
  const TOKEN_KEY = "duet-read-token";
  const here = new URL(window.location.href);
  // A `?token=` link (DUET_READ_AUTH=true) is kept for this tab only and dropped from the address bar.
  if (here.searchParams.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, here.searchParams.get("token"));
    here.searchParams.delete("token");
    history.replaceState(null, "", here.pathname + here.search + here.hash);
  }
  const token = () => sessionStorage.getItem(TOKEN_KEY);

  // Page navigations cannot carry a header, so same-origin links get the token at click time.
  document.addEventListener("click", (ev) => {
    const a = ev.target.closest && ev.target.closest("a[href]");
    if (!a || !token()) return;
    const url = new URL(a.href, window.location.href);
    if (url.origin !== window.location.origin || url.pathname.startsWith("/v1/")) return;
    url.searchParams.set("token", token());
    a.href = url.toString();
  });

  const page = JSON.parse(document.getElementById("page-data").textContent);
  const pollMs = Number(document.body.dataset.pollMs);

  class ApiError extends Error {
    constructor(status, detail, path) {
      super(`${path}: HTTP ${status} ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
      this.status = status;
    }
  }

  async function api(path, params) {
    const url = new URL(path, window.location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
    }
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    const res = await fetch(url, { headers });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, body && body.detail, url.pathname);
    return body;
  }

  // el("td", {class: "x"}, "text", child) — text is always set as text, never parsed as HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const fmt = (v, digits = 3) => (v === undefined || v === null || Number.isNaN(v) ? "–" : Number(v).toFixed(digits));
  const enc = encodeURIComponent;

  function failureBreakdown(metrics) {
    const parts = Object.entries(metrics)
      .filter(([k, v]) => k.startsWith("eval/fail/") && v > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k.slice("eval/fail/".length)} ${v.toFixed(2)}`);
    return parts.join(", ") || "–";
  }

  function showError(err) {
    const box = document.getElementById("error");
    box.hidden = !err;
    box.textContent = err ? String(err.message || err) : "";
  }

  // Calls `fn` now and then `pollMs` after each run finishes (never overlapping), while the tab is visible.
  function live(fn) {
    const tick = async () => {
      if (!document.hidden) {
        try {
          await fn();
          showError(null);
        } catch (err) {
          showError(err);
        }
      }
      setTimeout(tick, pollMs);
    };
    tick();
  }

  function replaceRows(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  return { api, el, fmt, enc, page, live, showError, failureBreakdown, replaceRows, ApiError };
})();
