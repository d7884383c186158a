// The two charts, drawn with uPlot (vendor/, loaded before this module as the global `uPlot`).
// Pure shaping (API document -> uPlot's columns) is kept apart from drawing.

const HEIGHT = 220;

/** Seconds since the epoch of an ISO-8601 time or date (uPlot's time axis counts seconds). */
export function epochSeconds(iso) {
  const millis = Date.parse(iso);
  return Number.isNaN(millis) ? null : millis / 1000;
}

/** GET /analytics/inventory's series -> [x, demand, rejected, committed], oldest first. */
export function demandColumns(doc) {
  const rows = ((doc && doc.series) || [])
    .map((row) => [epochSeconds(row.window_start), row.demand_units, row.rejected_units, row.committed_units])
    .filter((row) => row[0] !== null)
    .sort((a, b) => a[0] - b[0]);
  return [0, 1, 2, 3].map((i) => rows.map((row) => row[i] ?? null));
}

/** GET /analytics/forecast/{sku} -> [x, history, forecast, low, high] over the dates of both. */
export function forecastColumns(doc) {
  const byDate = new Map();
  const at = (date) => {
    const x = epochSeconds(date);
    if (x === null) return null;
    if (!byDate.has(x)) byDate.set(x, [x, null, null, null, null]);
    return byDate.get(x);
  };
  for (const day of (doc && doc.daily_demand) || []) {
    const row = at(day.date);
    if (row) row[1] = day.units;
  }
  for (const day of (doc && doc.forecast) || []) {
    const row = at(day.date);
    if (row) [row[2], row[3], row[4]] = [day.units, day.low ?? null, day.high ?? null];
  }
  const rows = [...byDate.values()].sort((a, b) => a[0] - b[0]);
  return [0, 1, 2, 3, 4].map((i) => rows.map((row) => row[i]));
}

const DEMAND_SERIES = [
  {},
  { label: "demand", stroke: "#2563eb", width: 2 },
  { label: "rejected", stroke: "#dc2626", width: 2 },
  { label: "committed", stroke: "#16a34a", width: 2 },
];
const FORECAST_SERIES = [
  {},
  { label: "daily demand", stroke: "#2563eb", width: 2 },
  { label: "forecast", stroke: "#9333ea", width: 2 },
  { label: "low", stroke: "#c4b5fd", width: 1, dash: [4, 4] },
  { label: "high", stroke: "#c4b5fd", width: 1, dash: [4, 4] },
];

/** One chart in a container: redrawn with new columns, removed when there is nothing to draw. */
export class Chart {
  constructor(container, kind) {
    this.container = container;
    this.series = kind === "forecast" ? FORECAST_SERIES : DEMAND_SERIES;
    this.plot = null;
  }

  /** Draws ``columns``; false (and nothing drawn) when they hold no point or uPlot is missing. */
  show(columns) {
    if (!columns[0].length || typeof globalThis.uPlot !== "function") {
      this.clear();
      return false;
    }
    const width = Math.max(300, this.container.clientWidth || 600);
    if (this.plot && this.plot.series.length === this.series.length) {
      this.plot.setData(columns);
      this.plot.setSize({ width, height: HEIGHT });
      return true;
    }
    this.clear();
    const options = { width, height: HEIGHT, series: this.series, scales: { x: { time: true } } };
    this.plot = new globalThis.uPlot(options, columns, this.container);
    return true;
  }

  clear() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}
