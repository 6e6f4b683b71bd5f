// The dashboard: load the current picture from the REST API, then follow one SSE stream
// (/api/v1/stream/live) that carries drone batches and alert changes.

import { AlertsPanel } from "./alerts.js";
import { AnalyticsPanel } from "./analytics.js";
import { getJSON, session, signOut } from "./api.js";
import { DeliveriesPanel } from "./deliveries.js";
import { DronePanel } from "./drone.js";
import { FleetList } from "./fleet_list.js";
import { ForecastPanel } from "./forecast.js";
import { watchIngest } from "./ingest.js";
import { FleetMap } from "./map.js";
import { Overview } from "./overview.js";
import { setupTabs } from "./tabs.js";

const config = JSON.parse(document.getElementById("dashboard-config").textContent);
// Who is signed in comes from the session (the key's name), never from a text box.
const who = await session();
document.getElementById("whoami").textContent = `${who.name} (${who.role})`;
document.getElementById("sign-out").addEventListener("click", () => signOut());
const operator = () => who.name;

const tabs = setupTabs(document.querySelector("[role=tablist]"));
const conn = document.getElementById("conn");

function setConn(text, cls) {
  conn.textContent = text;
  conn.className = `conn ${cls}`;
}

async function start() {
  const [stations, geofences, drones] = await Promise.all([
    getJSON("/api/v1/stations"),
    getJSON("/api/v1/geofences"),
    getJSON("/api/v1/drones"),
  ]);
  const stationsByCode = new Map(stations.items.map((s) => [s.code, s]));

  let deliveries;
  let drone;
  const map = new FleetMap(document.getElementById("map"), config, {
    onDrone: (id) => selectDrone(id),
    onClick: (latlng) => {
      if (tabs.current() === "panel-deliveries") deliveries.pick(latlng);
    },
  });
  map.setStations(stations.items);
  map.setGeofences(geofences.items);

  const overview = new Overview();
  const analytics = new AnalyticsPanel(document.getElementById("analytics-panel"));
  const forecast = new ForecastPanel(document.getElementById("forecast-panel"));
  const fleetList = new FleetList({ drones: map.drones.drones, onSelect: (id) => selectDrone(id, undefined, true) });
  const kpis = () => {
    const counts = overview.fleet(map.drones.drones.values());
    document.getElementById("kpi-drones").textContent = String(map.drones.drones.size);
    document.getElementById("kpi-flying").textContent = String(counts.in_flight + counts.returning);
    fleetList.render();
  };

  const alerts = new AlertsPanel({
    operator,
    onFocus: (a) => selectDrone(a.drone_id, a.details),
    onChange: (active) => {
      const open = active.filter((a) => a.state === "open");
      const critical = open.filter((a) => a.severity === "critical").length;
      document.getElementById("kpi-alerts").textContent = String(open.length);
      document.getElementById("kpi-critical").textContent = String(critical);
      document.getElementById("kpi-critical-box").classList.toggle("alarm", critical > 0);
      const badge = document.getElementById("alerts-count");
      // Also the critical ones resolved by themselves that nobody acknowledged yet.
      badge.textContent = String(active.filter((a) => a.state !== "acknowledged").length);
      badge.classList.toggle("critical", critical > 0);
      if (drone?.droneId) drone.renderAlerts();
    },
  });
  drone = new DronePanel({ operator, alertsFor: (id) => alerts.forDrone(id) });
  deliveries = new DeliveriesPanel({ map, stationsByCode, canOrder: who.role !== "viewer" });

  /** Show a drone on the map and in its panel; from the keyboard, the focus follows. */
  function selectDrone(id, fallback, moveFocus = false) {
    const state = map.drones.drones.get(id) ?? { drone_id: id, ...(fallback ?? {}) };
    map.drones.select(id);
    if (state.lat !== null && state.lat !== undefined) map.focus(state.lat, state.lon);
    tabs.show("panel-drone");
    drone.show(state);
    if (moveFocus) document.getElementById("drone-title").focus();
  }
  document.getElementById("drone-find").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = e.target.elements.drone_id.value.trim();
    if (id) selectDrone(id);
  });

  tabs.onShow((panelId) => {
    if (panelId === "panel-fleet") fleetList.render();
    if (panelId === "panel-overview") overview.refresh();
    if (panelId === "panel-analytics") {
      analytics.load();
      forecast.load();
    }
  });

  map.drones.update(drones.items);
  kpis();
  await Promise.all([alerts.load(), deliveries.refresh(), overview.refresh()]);

  watchIngest(document.getElementById("ingest-lag"));

  // One stream for everything live. EventSource reconnects by itself (after `retry`); the
  // current picture is re-read then, since pub/sub keeps nothing for a disconnected client.
  const source = new EventSource("/api/v1/stream/live");
  let lost = false;
  source.addEventListener("open", () => {
    setConn("live", "live");
    if (lost) {
      lost = false;
      getJSON("/api/v1/drones").then((p) => map.drones.update(p.items)).catch(() => {});
      alerts.load().catch(() => {});
    }
  });
  source.addEventListener("error", () => {
    lost = true;
    setConn("reconnecting…", "down");
  });
  let kpiPending = false;
  source.addEventListener("drones", (e) => {
    const batch = JSON.parse(e.data);
    map.drones.update(batch);
    deliveries.live(batch);
    if (drone.droneId) {
      const mine = batch.findLast((s) => s.drone_id === drone.droneId);
      if (mine) drone.live(map.drones.drones.get(drone.droneId));
    }
    if (!kpiPending) {
      kpiPending = true; // the counters follow at most once a second
      setTimeout(() => {
        kpiPending = false;
        kpis();
      }, 1000);
    }
  });
  source.addEventListener("alert", (e) => alerts.apply(JSON.parse(e.data)));

  // For the browser tests and the load measurement: the live picture as the page holds it.
  window.skyhive = { map, alerts, deliveries, drone, source, fleetList, overview, analytics, forecast };
  document.body.dataset.ready = "true";
}

start().catch((err) => {
  setConn(`failed to start: ${err.message}`, "down");
});
