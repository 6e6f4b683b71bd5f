// The drone panel: live state (from the stream), the last hour of battery, altitude and speed
// (from history), its current delivery, its recent alerts, and "return to station".
/* global Chart */

import { getJSON, postJSON, query } from "./api.js";
import { ago, el, hhmmss, num } from "./format.js";

const HOUR_MS = 3600 * 1000;
// The hour's history as 10-second averages (360 points, whatever the reporting rate); the
// readings that arrive live are added one by one.
const BUCKET_S = 10;

function lineChart(canvasId, colour) {
  return new Chart(document.getElementById(canvasId), {
    type: "line",
    data: { datasets: [{ data: [], borderColor: colour, borderWidth: 1.5, pointRadius: 0, tension: 0.2 }] },
    options: {
      animation: false,
      parsing: false,
      normalized: true,
      aspectRatio: 3.2,
      plugins: { legend: { display: false }, tooltip: { enabled: true } },
      scales: {
        x: { type: "linear", ticks: { maxTicksLimit: 5, callback: (v) => new Date(v).toISOString().slice(11, 16) } },
        y: { ticks: { maxTicksLimit: 4 } },
      },
    },
  });
}

/** Show the hour up to ``t`` (epoch ms), whatever the data covers. */
function lastHour(chart, t) {
  chart.options.scales.x.min = t - HOUR_MS;
  chart.options.scales.x.max = t;
  chart.update("none");
}

export class DronePanel {
  constructor({ operator, alertsFor, onShown }) {
    this.droneId = null;
    this._operator = operator;
    this._alertsFor = alertsFor;
    this._onShown = onShown;
    this._facts = document.getElementById("drone-facts");
    this._charts = {
      battery_pct: lineChart("chart-battery", "#1b7d3a"),
      alt_m: lineChart("chart-alt", "#0b5cad"),
      speed_mps: lineChart("chart-speed", "#7b3fb5"),
    };
    this._returnButton = document.getElementById("drone-return");
    this._returnButton.addEventListener("click", () => this._returnToStation());
    this._result = document.getElementById("drone-command-result");
    this._deliveryId = undefined;
  }

  /** Show ``droneId`` (its state as the map holds it). */
  async show(state) {
    const changed = this.droneId !== state.drone_id;
    this.droneId = state.drone_id;
    document.getElementById("drone-empty").hidden = true;
    document.getElementById("drone-detail").hidden = false;
    document.getElementById("drone-title").textContent = `Drone ${state.drone_id}`;
    if (changed) {
      this._result.textContent = "";
      this._deliveryId = undefined;
      for (const chart of Object.values(this._charts)) {
        chart.data.datasets[0].data = [];
        chart.update();
      }
    }
    this.live(state);
    this.renderAlerts();
    this._onShown?.();
    if (changed) await Promise.all([this._loadHistory(state.drone_id), this._loadAlerts(state.drone_id)]);
  }

  /** A newer state of the shown drone. */
  live(s) {
    if (s.drone_id !== this.droneId) return;
    const rows = [
      ["Status", s.emergency ? "EMERGENCY" : (s.status ?? "—")],
      ["Battery", num(s.battery_pct, 0, " %")],
      ["Altitude", num(s.alt_m, 0, " m")],
      ["Speed", num(s.speed_mps, 1, " m/s")],
      ["Heading", num(s.heading_deg, 0, "°")],
      ["Position", s.lat === null || s.lat === undefined ? "—" : `${s.lat.toFixed(5)}, ${s.lon.toFixed(5)}`],
      ["Payload", num(s.payload_kg, 1, " kg")],
      ["Last report", `${hhmmss(s.ts)} UTC (${ago(s.ts)})`],
    ];
    this._facts.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    const t = Date.parse(s.ts);
    for (const [field, chart] of Object.entries(this._charts)) {
      const data = chart.data.datasets[0].data;
      if (s[field] !== null && s[field] !== undefined && Number.isFinite(t) && (!data.length || data.at(-1).x < t)) {
        data.push({ x: t, y: s[field] });
        while (data.length && data[0].x < t - HOUR_MS) data.shift();
        lastHour(chart, t);
      }
    }
    if ((s.delivery_id ?? null) !== this._deliveryId) this._loadDelivery(s.delivery_id ?? null);
  }

  /** Its recent alerts, resolved ones included; the live ones come from the alerts panel. */
  async _loadAlerts(droneId) {
    try {
      const page = await getJSON(`/api/v1/alerts${query({ drone_id: droneId, limit: 10 })}`);
      if (droneId !== this.droneId) return;
      this._recentAlerts = page.items;
      this.renderAlerts();
    } catch {
      // the live ones stay listed
    }
  }

  renderAlerts() {
    const byId = new Map((this._recentAlerts ?? []).filter((a) => a.drone_id === this.droneId).map((a) => [a.id, a]));
    for (const a of this._alertsFor(this.droneId)) byId.set(a.id, a);
    const recent = [...byId.values()].sort((a, b) => (b.last_seen ?? "").localeCompare(a.last_seen ?? "")).slice(0, 10);
    const items = recent.map((a) =>
      el("li", {}, `${a.severity} · ${a.type.replaceAll("_", " ")} · ${a.state} · ${hhmmss(a.last_seen ?? a.opened_at)}`),
    );
    document.getElementById("drone-alerts").replaceChildren(...(items.length ? items : [el("li", {}, "none")]));
  }

  async _loadHistory(droneId) {
    const since = new Date(Date.now() - HOUR_MS).toISOString();
    try {
      const params = query({ since, bucket_s: BUCKET_S, limit: HOUR_MS / 1000 / BUCKET_S });
      const page = await getJSON(`/api/v1/drones/${encodeURIComponent(droneId)}/telemetry${params}`);
      if (droneId !== this.droneId) return;
      const rows = page.items.slice().reverse(); // the API gives newest first
      for (const [field, chart] of Object.entries(this._charts)) {
        const live = chart.data.datasets[0].data;
        const first = live.length ? live[0].x : Infinity;
        const past = rows
          .map((r) => ({ x: Date.parse(r.ts), y: r[field] }))
          .filter((p) => p.y !== null && p.y !== undefined && p.x < first);
        chart.data.datasets[0].data = [...past, ...live];
        lastHour(chart, Date.now());
      }
    } catch (err) {
      this._result.textContent = `History unavailable: ${err.message}`;
    }
  }

  async _loadDelivery(deliveryId) {
    this._deliveryId = deliveryId;
    const box = document.getElementById("drone-delivery");
    if (!deliveryId) {
      box.textContent = "None.";
      return;
    }
    try {
      const d = await getJSON(`/api/v1/deliveries/${encodeURIComponent(deliveryId)}`);
      box.replaceChildren(
        el("div", {}, el("strong", {}, d.id), ` · ${d.status} · from ${d.pickup_station}`),
        el("div", {}, `to ${d.destination.lat.toFixed(4)}, ${d.destination.lon.toFixed(4)} · ${d.package.weight_kg} kg ${d.package.size}`),
        el("div", {}, d.eta ? `ETA ${hhmmss(d.eta)} UTC` : ""),
      );
    } catch (err) {
      box.textContent = `${deliveryId} (${err.message})`;
    }
  }

  async _returnToStation() {
    const droneId = this.droneId;
    this._returnButton.disabled = true;
    try {
      const out = await postJSON(`/api/v1/drones/${encodeURIComponent(droneId)}/commands`, {
        action: "return_to_station",
        reason: `ordered by ${this._operator()} from the dashboard`,
      });
      this._result.className = "ok";
      this._result.textContent = `Ordered to ${out.command.return_station.station}.`;
    } catch (err) {
      this._result.className = "error";
      this._result.textContent = `Not sent: ${err.message}`;
    } finally {
      this._returnButton.disabled = false;
    }
  }
}
