// Fleet and business overview. Today's deliveries, the average delivery time, the open alerts
// and this month's revenue come from /api/v1/overview (computed by the stores, not from a page
// of records); drones by status follow the live table the map holds, once a second.
/* global Chart */

import { getJSON } from "./api.js";
import { STATUS_COLOURS, duration } from "./format.js";

const DELIVERY_STATUSES = [
  "pending", "assigned", "picked_up", "in_transit", "non_conforming", "contingent", "delivered", "failed", "cancelled",
];
const REFRESH_MS = 15000;

function barChart(canvasId, labels, colours) {
  return new Chart(document.getElementById(canvasId), {
    type: "bar",
    data: { labels, datasets: [{ data: labels.map(() => 0), backgroundColor: colours }] },
    options: {
      animation: false,
      aspectRatio: 2.2,
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  });
}

function show(id, text) {
  document.getElementById(id).textContent = text;
}

export class Overview {
  constructor() {
    const statuses = Object.keys(STATUS_COLOURS);
    this._fleet = barChart("chart-fleet", statuses, statuses.map((s) => STATUS_COLOURS[s]));
    this._deliveries = barChart("chart-deliveries", DELIVERY_STATUSES, "#0b5cad");
    setInterval(() => this.refresh(), REFRESH_MS);
  }

  /** Drones by status, from the live table the map holds. */
  fleet(drones) {
    const counts = Object.fromEntries(Object.keys(STATUS_COLOURS).map((s) => [s, 0]));
    for (const d of drones) {
      const s = d.emergency ? "emergency" : d.status || "idle";
      if (s in counts) counts[s] += 1;
    }
    this._fleet.data.datasets[0].data = Object.values(counts);
    this._fleet.update("none");
    return counts;
  }

  async refresh() {
    let ov;
    try {
      ov = await getJSON("/api/v1/overview");
    } catch {
      for (const id of ["ov-deliveries", "ov-avg", "ov-alerts", "ov-revenue", "ov-unbilled"]) {
        show(id, "—");
      }
      return;
    }
    const today = ov.deliveries_today;
    this._deliveries.data.datasets[0].data = DELIVERY_STATUSES.map((s) => today.by_status[s] ?? 0);
    this._deliveries.update("none");
    show("ov-deliveries", String(today.total));
    show("ov-avg", today.avg_delivery_s === null ? "—" : duration(today.avg_delivery_s));
    const alerts = ov.open_alerts.by_severity;
    const unacked = ov.open_alerts.unacknowledged ? ` (+${ov.open_alerts.unacknowledged} resolved, to acknowledge)` : "";
    show("ov-alerts", `${alerts.critical ?? 0} / ${alerts.warning ?? 0}${unacked}`);
    const revenue = ov.revenue_this_month;
    show("ov-revenue", `${revenue.revenue} ${revenue.currency}`);
    show("ov-unbilled", `${revenue.unbilled} ${revenue.currency} (${revenue.unbilled_deliveries})`);
  }
}
