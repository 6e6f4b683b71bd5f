// The live map: Leaflet for the base map, stations, routes and geofences (its canvas renderer),
// and one canvas layer of our own for the drones. Drone updates are merged into a table and the
// canvas is redrawn at most once per animation frame, in a handful of batched paths (one per
// colour), so 1,000 drones at 1 Hz cost a few milliseconds a second.
/* global L */

import { STATUS_COLOURS } from "./format.js";

const HIT_RADIUS_PX = 10;
// A declared corridor: conforming, off it (non_conforming), sent to a station (contingent).
const CORRIDOR_COLOURS = { conforming: "#1b7d3a", non_conforming: "#c77700", contingent: "#d0021b" };
const MAX_SAMPLES = 100000; // kept per series (trimmed in bulk, so an all-day tab stays small)

function batteryColour(pct) {
  if (pct === null || pct === undefined) return "#7a8896";
  if (pct > 50) return "#1b7d3a";
  if (pct > 20) return "#c77700";
  return "#d0021b";
}

/** Every drone drawn on one canvas, above the overlays. */
const DroneLayer = L.Layer.extend({
  initialize(onFrameDrawn) {
    this.drones = new Map();
    this.selected = null;
    this._pendingTs = [];
    this._onFrameDrawn = onFrameDrawn;
    // Per drone update, for the load measurement: telemetry time -> drawn, and the time the
    // platform applied it (updated_at) -> drawn; and what each redraw cost.
    this.lagMs = [];
    this.streamLagMs = [];
    this.drawMs = [];
    this.frames = 0;
    this.updatesDrawn = 0;
  },

  onAdd(map) {
    const pane = map.getPane("drones") ?? map.createPane("drones");
    pane.style.zIndex = 450;
    pane.style.pointerEvents = "none";
    this._canvas = L.DomUtil.create("canvas", "drone-canvas", pane);
    this._ctx = this._canvas.getContext("2d");
    map.on("move resize zoomend viewreset", this.redraw, this);
    map.on("zoomstart", this._hide, this);
    this.redraw();
  },

  onRemove(map) {
    map.off("move resize zoomend viewreset", this.redraw, this);
    map.off("zoomstart", this._hide, this);
    L.DomUtil.remove(this._canvas);
  },

  /** Merge a batch of drone states (as the API and the stream give them). */
  update(states) {
    const now = Date.now();
    for (const s of states) {
      const cur = this.drones.get(s.drone_id);
      if (cur && cur.ts && s.ts && Date.parse(s.ts) < Date.parse(cur.ts)) continue;
      this.drones.set(s.drone_id, cur ? Object.assign(cur, s) : { ...s });
      if (s.ts) this._pendingTs.push([Date.parse(s.ts), Date.parse(s.updated_at)]);
    }
    this._receivedAt = now;
    this.redraw();
  },

  select(droneId) {
    this.selected = droneId;
    this.redraw();
  },

  redraw() {
    if (!this._map || this._frame) return;
    this._frame = L.Util.requestAnimFrame(this._draw, this);
  },

  _hide() {
    this._canvas.style.visibility = "hidden";
  },

  _draw() {
    this._frame = null;
    const started = performance.now();
    const map = this._map;
    const size = map.getSize();
    const ratio = window.devicePixelRatio || 1;
    const canvas = this._canvas;
    if (canvas.width !== size.x * ratio || canvas.height !== size.y * ratio) {
      canvas.width = size.x * ratio;
      canvas.height = size.y * ratio;
      canvas.style.width = `${size.x}px`;
      canvas.style.height = `${size.y}px`;
    }
    L.DomUtil.setPosition(canvas, map.containerPointToLayerPoint([0, 0]));
    canvas.style.visibility = "visible";
    const ctx = this._ctx;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, size.x, size.y);
    const r = map.getZoom() >= 13 ? 6 : 4.5;

    const byStatus = new Map();
    const byBattery = new Map();
    const headings = new Path2D();
    let selected = null;
    for (const d of this.drones.values()) {
      if (d.lat === null || d.lat === undefined || d.lon === null || d.lon === undefined) {
        d._x = d._y = undefined;
        continue;
      }
      const p = map.latLngToContainerPoint([d.lat, d.lon]);
      d._x = p.x;
      d._y = p.y;
      if (p.x < -20 || p.y < -20 || p.x > size.x + 20 || p.y > size.y + 20) continue;
      const status = d.emergency ? "emergency" : d.status || "idle";
      let dots = byStatus.get(status);
      if (!dots) byStatus.set(status, (dots = new Path2D()));
      dots.moveTo(p.x + r, p.y);
      dots.arc(p.x, p.y, r, 0, 2 * Math.PI);
      const colour = batteryColour(d.battery_pct);
      let ring = byBattery.get(colour);
      if (!ring) byBattery.set(colour, (ring = new Path2D()));
      const end = -Math.PI / 2 + (2 * Math.PI * Math.max(0, Math.min(100, d.battery_pct ?? 0))) / 100;
      ring.moveTo(p.x + (r + 2.5) * Math.cos(-Math.PI / 2), p.y + (r + 2.5) * Math.sin(-Math.PI / 2));
      ring.arc(p.x, p.y, r + 2.5, -Math.PI / 2, end);
      if (d.heading_deg !== null && d.heading_deg !== undefined && (d.speed_mps ?? 0) > 0.5) {
        const a = (d.heading_deg * Math.PI) / 180;
        headings.moveTo(p.x + Math.sin(a) * r, p.y - Math.cos(a) * r);
        headings.lineTo(p.x + Math.sin(a) * (r + 8), p.y - Math.cos(a) * (r + 8));
      }
      if (d.drone_id === this.selected) selected = p;
    }
    if (byStatus.has("emergency")) {
      ctx.fillStyle = "rgba(208, 2, 27, 0.25)";
      for (const d of this.drones.values()) {
        if (d.emergency && d._x !== undefined) {
          ctx.beginPath();
          ctx.arc(d._x, d._y, r + 9, 0, 2 * Math.PI);
          ctx.fill();
        }
      }
    }
    ctx.lineWidth = 2.5;
    for (const [colour, ring] of byBattery) {
      ctx.strokeStyle = colour;
      ctx.stroke(ring);
    }
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 1;
    for (const [status, dots] of byStatus) {
      ctx.fillStyle = STATUS_COLOURS[status] ?? STATUS_COLOURS.idle;
      ctx.fill(dots);
      ctx.stroke(dots);
    }
    ctx.strokeStyle = "#14202b";
    ctx.lineWidth = 2;
    ctx.stroke(headings);
    if (selected) {
      ctx.strokeStyle = "#ffb000";
      ctx.lineWidth = 3;
      ctx.beginPath();
      ctx.arc(selected.x, selected.y, r + 7, 0, 2 * Math.PI);
      ctx.stroke();
    }
    this.frames += 1;
    const drawnAt = Date.now();
    this.updatesDrawn += this._pendingTs.length;
    for (const [ts, appliedAt] of this._pendingTs) {
      this.lagMs.push(drawnAt - ts);
      if (Number.isFinite(appliedAt)) this.streamLagMs.push(drawnAt - appliedAt);
    }
    this._pendingTs.length = 0;
    this.drawMs.push(performance.now() - started);
    for (const samples of [this.lagMs, this.streamLagMs, this.drawMs]) {
      if (samples.length > 2 * MAX_SAMPLES) samples.splice(0, samples.length - MAX_SAMPLES);
    }
    this._onFrameDrawn?.();
  },

  /** The drone drawn nearest to a container point, within a few pixels. */
  hit(point) {
    let best = null;
    let bestD2 = HIT_RADIUS_PX * HIT_RADIUS_PX;
    for (const d of this.drones.values()) {
      if (d._x === undefined) continue;
      const d2 = (d._x - point.x) ** 2 + (d._y - point.y) ** 2;
      if (d2 <= bestD2) {
        best = d;
        bestD2 = d2;
      }
    }
    return best;
  },
});

export class FleetMap {
  constructor(container, config, { onDrone, onClick }) {
    this.map = L.map(container, { preferCanvas: true, zoomControl: true }).setView([37.8, -122.27], 11);
    this._note = document.getElementById("map-note");
    this._addTiles(config);
    this.stations = L.layerGroup().addTo(this.map);
    this.geofences = L.layerGroup().addTo(this.map);
    this.routes = L.layerGroup().addTo(this.map);
    this.corridors = L.layerGroup().addTo(this.map); // declared flights of active deliveries
    this.track = L.polyline([], { color: "#ffb000", weight: 4 }).addTo(this.map);
    this.pick = L.circleMarker([0, 0], { radius: 7, color: "#14202b", fillColor: "#ffb000", fillOpacity: 1 });
    this.drones = new DroneLayer().addTo(this.map);
    this.map.on("click", (e) => {
      const d = this.drones.hit(e.containerPoint);
      if (d) onDrone(d.drone_id);
      else onClick(e.latlng);
    });
    this.map.on("mousemove", (e) => {
      container.style.cursor = this.drones.hit(e.containerPoint) ? "pointer" : "";
    });
  }

  _addTiles(config) {
    if (!config.tilesUrl) {
      this._showNote("Map tiles off: plain background.");
      return;
    }
    const layer = L.tileLayer(config.tilesUrl, { attribution: config.tilesAttribution, maxZoom: 19 });
    // One probe first: offline, a tile layer would fill the console with failed image loads.
    const probe = config.tilesUrl.replace("{s}", "a").replace("{z}", "0").replace("{x}", "0")
      .replace("{y}", "0").replace("{r}", "");
    fetch(probe, { mode: "no-cors" })
      .then(() => layer.addTo(this.map))
      .catch(() => this._showNote("Map tiles unreachable: plain background."));
  }

  _showNote(text) {
    this._note.textContent = text;
    this._note.hidden = false;
  }

  setStations(stations) {
    this.stations.clearLayers();
    if (stations.length) this.map.fitBounds(stations.map((s) => [s.lat, s.lon]), { padding: [20, 20] });
    for (const s of stations) {
      L.circleMarker([s.lat, s.lon], {
        radius: 5, color: "#111111", weight: 3, fillColor: "#ffffff", fillOpacity: 1,
      }).bindTooltip(`${s.name} (${s.code})`).addTo(this.stations);
    }
  }

  setGeofences(zones) {
    this.geofences.clearLayers();
    for (const z of zones) {
      L.geoJSON(z.geometry, {
        style: { color: "#d0021b", weight: 2, dashArray: "6 4", fillOpacity: z.enabled ? 0.12 : 0.03 },
      }).bindTooltip(`No-fly: ${z.name}`).addTo(this.geofences);
    }
  }

  /** Routes of the active deliveries: pickup station to destination. */
  setRoutes(deliveries, stationsByCode) {
    this.routes.clearLayers();
    this.corridors.clearLayers();
    for (const d of deliveries) {
      if (d.declaration) this._corridor(d);
      const from = stationsByCode.get(d.pickup_station);
      if (!from) continue;
      const to = [d.destination.lat, d.destination.lon];
      L.polyline([[from.lat, from.lon], to], { color: "#0b5cad", weight: 2, dashArray: "4 4", opacity: 0.8 })
        .bindTooltip(`${d.id}: ${d.status}`).addTo(this.routes);
      L.circleMarker(to, { radius: 4, color: "#0b5cad", fillColor: "#0b5cad", fillOpacity: 1 })
        .bindTooltip(`Destination of ${d.id}`).addTo(this.routes);
    }
  }

  /** The delivery's declared corridor ([lon, lat] pairs), as wide as its buffer on the ground
   * (a polyline's weight is in pixels, so at this zoom); off it, in the colour of the breach. */
  _corridor(d) {
    const path = d.declaration.corridor.coordinates.map(([lon, lat]) => [lat, lon]);
    const colour = CORRIDOR_COLOURS[d.status] ?? CORRIDOR_COLOURS.conforming;
    const metresPerPx = 156543.03 * Math.cos((path[0][0] * Math.PI) / 180) / 2 ** this.map.getZoom();
    const weight = Math.max(3, Math.min(40, (2 * d.declaration.buffer_m) / metresPerPx));
    L.polyline(path, { color: colour, weight, opacity: 0.4, lineCap: "round", lineJoin: "round" })
      .bindTooltip(`corridor of ${d.id}: ${d.status}`).addTo(this.corridors);
  }

  showPick(latlng) {
    this.pick.setLatLng(latlng).addTo(this.map);
  }

  focus(lat, lon) {
    this.map.setView([lat, lon], Math.max(this.map.getZoom(), 14));
  }
}
