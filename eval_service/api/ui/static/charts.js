// Line charts against train/global_step on uPlot; redrawn in place when new points arrive.
"use strict";

const duetCharts = (() => {
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f",
    "#7c3aed", "#b45309", "#0f766e", "#c026d3", "#475569", "#65a30d", "#e11d48", "#1d4ed8"];

  // series: [{label, scale, values: Map(step -> value), show}] (show: false = off until its legend entry is clicked); scales: {name: {label, side}}.
  // Returns [steps, ...one array per series with null where a series has no point].
  function align(series) {
    const steps = [...new Set(series.flatMap((s) => [...s.values.keys()]))].sort((a, b) => a - b);
    return [steps, ...series.map((s) => steps.map((x) => (s.values.has(x) ? s.values.get(x) : null)))];
  }

  // uPlot's default ticks round 1e-4 to "0": learning rates need significant digits, not decimals
  const HEIGHT = 260;
  const tick = (v) => (v !== 0 && Math.abs(v) < 0.01 ? v.toExponential(1) : String(+v.toPrecision(4)));

  class LineChart {
    constructor(container, scales) {
      this.container = container;
      this.scales = scales;
      this.plot = null;
      this.key = "";
      // the grid re-flows as charts are added (one per suite entry) and with the window: follow it
      new ResizeObserver(() => {
        if (this.plot && this.container.clientWidth !== this.plot.width) this.plot.setSize({ width: this.width(), height: HEIGHT });
      }).observe(container);
    }

    width() {
      return Math.max(320, this.container.clientWidth);
    }

    update(series) {
      const data = align(series);
      const key = series.map((s) => `${s.scale}:${s.label}`).join("|");
      this.container.dataset.series = String(series.length);
      this.container.dataset.points = String(data[0].length);
      if (this.plot && key === this.key) {
        this.plot.setData(data);
        return;
      }
      // the set of series changed (a new metric appeared): build the chart again
      if (this.plot) this.plot.destroy();
      this.key = key;
      const used = Object.entries(this.scales).filter(([name]) => series.some((s) => s.scale === name));
      const opts = {
        width: this.width(),
        height: HEIGHT,
        legend: { live: false }, // names only: 30 metrics with values under the cursor is a wall of text
        scales: { x: { time: false } },
        axes: [
          { label: "train/global_step" },
          ...used.map(([name, sc]) => ({
            scale: name, label: sc.label, side: sc.side === "right" ? 1 : 3, grid: { show: sc.side !== "right" },
            size: 60, values: (u, vals) => vals.map(tick),
          })),
        ],
        series: [
          { label: "step" },
          ...series.map((s, i) => ({ label: s.label, scale: s.scale, stroke: COLORS[i % COLORS.length], width: 1.5,
            spanGaps: true, points: { size: 4 }, show: s.show !== false })),
        ],
      };
      this.plot = new uPlot(opts, data, this.container);
      this.container.dataset.drawn = "1";
    }
  }

  return { LineChart };
})();
