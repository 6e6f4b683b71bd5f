// Demand forecast against actual orders, one station at a time (GET /api/v1/forecasts and
// /api/v1/forecasts/<station>): the actual orders per hour, the held-out week as the model
// forecast it (what its MASE scores), and the hours ahead with their interval.
// Self-contained: `new ForecastPanel(element)` fills an empty element, wherever it is placed.
/* global Chart */

import { getJSON } from "./api.js";
import { el, num } from "./format.js";

const ACTUAL_HOURS = 24 * 8; // the held-out week and the day after it
const REFRESH_MS = 5 * 60 * 1000; // forecasts change hourly, actual orders by the minute
const COLOURS = { actual: "#1f2933", forecast: "#0b5cad", band: "rgba(11, 92, 173, 0.15)", holdout: "#7b3fb5" };

/** "Nov 23 14:05" for an RFC 3339 time, in UTC like the rest of the dashboard. */
function utcLabel(iso) {
  const d = new Date(iso);
  const month = d.toLocaleString("en", { month: "short", timeZone: "UTC" });
  const [hh, mm] = [d.getUTCHours(), d.getUTCMinutes()].map((n) => String(n).padStart(2, "0"));
  return `${month} ${d.getUTCDate()} ${hh}:${mm}`;
}

function line(label, colour, extra = {}) {
  return { label, data: [], borderColor: colour, backgroundColor: colour, borderWidth: 1.5, pointRadius: 0, spanGaps: false, ...extra };
}

export class ForecastPanel {
  constructor(root) {
    this.station = "";
    this._select = el("select", { "aria-label": "Station", onchange: () => this.show(this._select.value) });
    this._summary = el("p", { class: "empty", role: "status", "aria-live": "polite" }, "No forecasts yet.");
    const canvas = el("canvas", { height: "190", role: "img", "aria-label": "Orders per hour: actual, forecast and its interval" });
    root.append(
      el("h3", {}, "Demand forecast"),
      el("label", { class: "inline" }, "Station ", this._select),
      this._summary,
      el("div", { class: "charts" }, el("figure", {}, el("figcaption", {}, "Orders per hour (UTC)"), canvas)),
    );
    this.chart = new Chart(canvas, {
      type: "line",
      data: {
        labels: [],
        datasets: [
          line("actual", COLOURS.actual),
          line("held-out week, as forecast", COLOURS.holdout, { borderDash: [4, 3] }),
          line("forecast", COLOURS.forecast),
          line("interval", COLOURS.band, { fill: "+1", borderWidth: 0 }), // its upper edge, filled down to
          line("", COLOURS.band, { borderWidth: 0 }), // the lower edge
        ],
      },
      options: {
        animation: false,
        aspectRatio: 1.6,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { labels: { boxWidth: 12, filter: (item) => item.text !== "" } } },
        scales: {
          x: { ticks: { maxTicksLimit: 8, callback: (_, i) => utcLabel(this.chart.data.labels[i]) } },
          y: { beginAtZero: true, ticks: { precision: 0 } },
        },
      },
    });
    setInterval(() => this.station && this.show(this.station), REFRESH_MS);
  }

  /** The stations' list; shows the current station, or the first one with a forecast. */
  async load() {
    let page;
    try {
      page = await getJSON("/api/v1/forecasts");
    } catch {
      this._summary.textContent = "Forecasts unavailable.";
      return;
    }
    if (page.items.length === 0) return;
    const ok = page.items.filter((f) => f.status === "ok").map((f) => f.station_id);
    this._select.replaceChildren(
      ...page.items.map((f) => el("option", { value: f.station_id }, f.status === "ok" ? f.station_id : `${f.station_id} (no forecast)`)),
    );
    const known = page.items.some((f) => f.station_id === this.station);
    await this.show(known ? this.station : ok[0] ?? page.items[0].station_id);
  }

  async show(station) {
    this.station = station;
    this._select.value = station;
    let f;
    try {
      f = await getJSON(`/api/v1/forecasts/${encodeURIComponent(station)}?hours=${ACTUAL_HOURS}`);
    } catch (err) {
      this._summary.textContent = `${station}: ${err.message}`;
      return;
    }
    this._summary.textContent = summary(f);
    this.draw(f);
  }

  /** One x axis (the hours of every series), each series null where it has no value. */
  draw(f) {
    const hours = [...new Set([...f.actual.map((a) => a.hour), ...f.holdout_points.map((p) => p.hour), ...f.points.map((p) => p.hour)])].sort();
    const at = (rows, value) => {
      const byHour = new Map(rows.map((r) => [r.hour, value(r)]));
      return hours.map((h) => byHour.get(h) ?? null);
    };
    const [actual, holdout, forecast, upper, lower] = this.chart.data.datasets;
    this.chart.data.labels = hours;
    actual.data = at(f.actual, (a) => a.orders);
    holdout.data = at(f.holdout_points, (p) => p.yhat);
    forecast.data = at(f.points, (p) => p.yhat);
    upper.data = at(f.points, (p) => p.upper);
    lower.data = at(f.points, (p) => p.lower);
    this.chart.update("none");
  }
}

function summary(f) {
  if (f.status !== "ok") return `${f.station_id}: no forecast (${f.reason}).`;
  const acc = f.accuracy;
  const score = acc?.mase === null || acc?.mase === undefined
    ? `accuracy: ${acc?.note || f.accuracy_note || "not measured"}`
    : `MASE ${num(acc.mase, 2)} on the held-out week (under 1: better than a ${acc.period_h === 168 ? "week" : "day"} before)`;
  return `${f.station_id}: ${num(f.horizon_orders, 0)} orders expected in the next ${f.horizon.hours} h; ` +
    `trained ${utcLabel(f.trained_at)} on ${f.training.hours} h; ${score}.`;
}
