// The Analytics tab: the fleet's figures over the last 24 h, 7 days or 30 days, from
// /api/v1/analytics/* (one request per chart's answer, all at once): orders and waits per
// station, on-time rate, delivery-time percentiles, failure and cancellation reasons,
// utilisation per day, energy per km by model, alerts by type.
// Self-contained: `new AnalyticsPanel(element)` fills an empty element; `load()` reads again.
/* global Chart */

import { getJSON, query } from "./api.js";
import { STATUS_COLOURS, el, num } from "./format.js";

const HOUR_MS = 3600 * 1000;
const WINDOWS = [
  ["24h", "last 24 hours", 24 * HOUR_MS],
  ["7d", "last 7 days", 7 * 24 * HOUR_MS],
  ["30d", "last 30 days", 30 * 24 * HOUR_MS],
];
const TOP_STATIONS = 12; // the busiest, so that the bars stay readable
const TOP_REASONS = 8;
const BLUE = "#0b5cad";
const AMBER = "#c77700";
const GREY = "#8a99a8";
const RED = "#d0021b";

const minutes = (s) => (s === null || s === undefined ? null : s / 60);
const percent = (share) => (share === null || share === undefined ? null : share * 100);
const hours = (s) => s / 3600;

function figure(caption, label) {
  const canvas = el("canvas", { height: "190", role: "img", "aria-label": label });
  return { canvas, node: el("figure", {}, el("figcaption", {}, caption), canvas) };
}

function chart(canvas, type, datasets, scales = {}, extra = {}) {
  return new Chart(canvas, {
    type,
    data: { labels: [], datasets: datasets.map((d) => ({ data: [], borderWidth: 0, ...d })) },
    options: {
      animation: false,
      aspectRatio: 1.7,
      plugins: { legend: { display: datasets.length > 1, labels: { boxWidth: 12 } } },
      scales: { y: { beginAtZero: true }, ...scales },
      ...extra,
    },
  });
}

function fill(c, labels, ...series) {
  c.data.labels = labels;
  series.forEach((data, i) => {
    c.data.datasets[i].data = data;
  });
  c.update("none");
}

export class AnalyticsPanel {
  constructor(root) {
    this.window = "7d";
    this._picker = el(
      "select",
      { id: "analytics-window", "aria-label": "Window", onchange: () => this.load(this._picker.value) },
      ...WINDOWS.map(([value, text]) => el("option", { value, selected: value === this.window }, text)),
    );
    this._status = el("p", { class: "empty", role: "status", "aria-live": "polite" }, "");
    this._stats = {};
    const stat = (key, text) => {
      this._stats[key] = el("strong", {}, "—");
      return el("li", {}, el("span", {}, text), this._stats[key]);
    };
    const figures = {
      stations: figure("Orders and mean wait for a drone, busiest stations", "Orders and mean wait before assignment per station"),
      onTime: figure("On time against the ETA given at assignment, % per station", "On-time rate per station"),
      times: figure("Order to delivery, minutes (nearest-rank percentiles)", "Delivery-time percentiles"),
      outcomes: figure("Why orders failed or were cancelled", "Failure and cancellation reasons"),
      utilisation: figure("Fleet hours per day (UTC): flying, idle, charging", "Fleet utilisation per day"),
      energy: figure("Energy per km flown by model, Wh/km", "Energy per km by drone model"),
      alerts: figure("Alerts by type", "Alerts by type"),
    };
    root.append(
      el("label", { class: "inline" }, "Window ", this._picker),
      this._status,
      el(
        "ul",
        { class: "stats" },
        stat("orders", "Orders"),
        stat("onTime", "On time"),
        stat("times", "Delivery p50 / p90"),
        stat("flying", "Fleet time flying"),
      ),
      el("div", { class: "charts" }, ...Object.values(figures).map((f) => f.node)),
    );
    const stacked = { x: { stacked: true }, y: { stacked: true, beginAtZero: true } };
    this.charts = {
      stations: chart(
        figures.stations.canvas,
        "bar",
        [
          { label: "orders", backgroundColor: BLUE, yAxisID: "y" },
          { label: "mean wait, min", backgroundColor: AMBER, yAxisID: "y1" },
        ],
        { y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } },
      ),
      onTime: chart(figures.onTime.canvas, "bar", [{ label: "on time %", backgroundColor: BLUE }], { y: { beginAtZero: true, max: 100 } }),
      times: chart(figures.times.canvas, "bar", [{ label: "minutes", backgroundColor: BLUE }]),
      outcomes: chart(figures.outcomes.canvas, "bar", [{ label: "orders", backgroundColor: [] }], { x: { beginAtZero: true, ticks: { precision: 0 } }, y: {} }, { indexAxis: "y" }),
      utilisation: chart(
        figures.utilisation.canvas,
        "bar",
        [
          { label: "flying", backgroundColor: STATUS_COLOURS.in_flight },
          { label: "idle", backgroundColor: STATUS_COLOURS.idle },
          { label: "charging", backgroundColor: STATUS_COLOURS.charging },
        ],
        stacked,
      ),
      energy: chart(figures.energy.canvas, "bar", [
        { label: "measured", backgroundColor: BLUE },
        { label: "rated", backgroundColor: GREY },
      ]),
      alerts: chart(figures.alerts.canvas, "bar", [
        { label: "alerts", backgroundColor: AMBER },
        { label: "critical", backgroundColor: RED },
      ], { y: { beginAtZero: true, ticks: { precision: 0 } } }),
    };
  }

  /** Read every answer over the window (`24h`, `7d`, `30d`; the current one by default). */
  async load(windowName = this.window) {
    this.window = windowName;
    this._picker.value = windowName;
    const span = WINDOWS.find(([value]) => value === windowName)[2];
    const until = new Date();
    const params = query({ since: new Date(until.getTime() - span).toISOString(), until: until.toISOString() });
    const names = ["stations", "on-time", "delivery-times", "outcomes", "utilisation", "energy", "alerts"];
    this._status.textContent = "Loading…";
    let answers;
    try {
      answers = await Promise.all(names.map((n) => getJSON(`/api/v1/analytics/${n}${params}`)));
    } catch (err) {
      this._status.textContent = `Analytics unavailable: ${err.message}`;
      return;
    }
    if (windowName !== this.window) return; // another window was picked meanwhile
    const [stations, onTime, times, outcomes, utilisation, energy, alerts] = answers;
    this.draw({ stations, onTime, times, outcomes, utilisation, energy, alerts });
    this._status.textContent = `${outcomes.orders} orders, ${alerts.total} alerts, ` +
      `${utilisation.drones.length} drone-days flown or docked in the ${WINDOWS.find(([v]) => v === windowName)[1]} (UTC).`;
  }

  draw(a) {
    const c = this.charts;
    const busiest = [...a.stations.stations].sort((x, y) => y.orders - x.orders).slice(0, TOP_STATIONS);
    fill(c.stations, busiest.map((s) => s.station), busiest.map((s) => s.orders), busiest.map((s) => minutes(s.mean_wait_s)));

    const rated = a.onTime.stations.filter((s) => s.with_eta > 0).sort((x, y) => y.delivered - x.delivered).slice(0, TOP_STATIONS);
    fill(c.onTime, rated.map((s) => s.station), rated.map((s) => percent(s.on_time_rate)));

    const t = a.times.overall;
    fill(c.times, ["p50", "p90", "p95", "p99"], [t.p50_s, t.p90_s, t.p95_s, t.p99_s].map(minutes));

    const reasons = a.outcomes.reasons.slice().sort((x, y) => y.deliveries - x.deliveries).slice(0, TOP_REASONS);
    c.outcomes.data.datasets[0].backgroundColor = reasons.map((r) => (r.outcome === "failed" ? RED : GREY));
    fill(c.outcomes, reasons.map((r) => `${r.outcome}: ${r.reason}`), reasons.map((r) => r.deliveries));

    const days = a.utilisation.fleet;
    fill(c.utilisation, days.map((d) => d.day), days.map((d) => hours(d.flight_s)), days.map((d) => hours(d.idle_s)), days.map((d) => hours(d.charging_s)));

    const models = a.energy.items;
    fill(c.energy, models.map((m) => m.model), models.map((m) => m.wh_per_km), models.map((m) => m.rated_wh_per_km));

    const types = a.alerts.by_type;
    fill(c.alerts, types.map((x) => x.type), types.map((x) => x.alerts), types.map((x) => x.critical));

    const on = a.onTime.overall;
    this._stats.orders.textContent = String(a.outcomes.orders);
    this._stats.onTime.textContent = on.on_time_rate === null ? "—" : `${num(percent(on.on_time_rate), 0)} % of ${on.with_eta}`;
    this._stats.times.textContent = t.p50_s === null ? "—" : `${num(minutes(t.p50_s), 0)} / ${num(minutes(t.p90_s), 0)} min`;
    const observed = days.reduce((s, d) => s + d.observed_s, 0);
    const flying = days.reduce((s, d) => s + d.flight_s, 0);
    this._stats.flying.textContent = observed > 0 ? `${num((flying / observed) * 100, 0)} %` : "—";
  }
}
