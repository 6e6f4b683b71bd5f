// Deliveries: list and filter, create one (pickup station, a click on the map for the
// destination, the package), and follow one's timeline and live track.

import { getJSON, postJSON, query } from "./api.js";
import { el, hhmmss, num } from "./format.js";

const ACTIVE = new Set(["assigned", "picked_up", "in_transit", "non_conforming", "contingent"]);
const ROUTED = ["pending", ...ACTIVE]; // drawn on the map: planned or flying (with corridors)
const REFRESH_MS = 5000;

function orderId() {
  const random = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  return `dash-${random}`;
}

export class DeliveriesPanel {
  constructor({ map, stationsByCode, onList, canOrder = true }) {
    this._map = map;
    this._stations = stationsByCode;
    this._onList = onList;
    this.items = [];
    this.selected = null;
    this._body = document.getElementById("deliveries-body");
    this._status = document.getElementById("deliveries-status");
    this._drone = document.getElementById("deliveries-drone");
    this._form = document.getElementById("delivery-form");
    this._result = document.getElementById("delivery-form-result");
    this._status.addEventListener("change", () => this.refresh());
    this._drone.addEventListener("change", () => this.refresh());
    this._form.addEventListener("submit", (e) => {
      e.preventDefault();
      this._create();
    });
    this._fillStations();
    // Placing orders is an operator's; a viewer's session would only be refused.
    this._form.hidden = !canOrder;
    if (canOrder) this._customerSelect();
    setInterval(() => this.refresh(), REFRESH_MS);
  }

  _fillStations() {
    const select = document.getElementById("pickup");
    const stations = [...this._stations.values()].sort((a, b) => a.name.localeCompare(b.name));
    select.replaceChildren(...stations.map((s) => el("option", { value: s.code }, `${s.name} (${s.code})`)));
  }

  /** A select of the customers; while there are none (or they cannot be read), the id is typed
   * (and the API refuses an unknown one with a message in the form). */
  async _customerSelect() {
    try {
      const page = await getJSON("/api/v1/customers?limit=1000");
      if (!page.items.length) return;
      const select = el("select", { id: "customer", name: "customer_id", required: true });
      select.append(...page.items.map((c) => el("option", { value: c.id }, c.name ? `${c.name} (${c.id})` : c.id)));
      document.getElementById("customer-field").replaceChildren(select);
    } catch {
      // keep the text field
    }
  }

  /** A map click while this panel is open: the destination. */
  pick(latlng) {
    document.getElementById("dest-lat").value = latlng.lat.toFixed(6);
    document.getElementById("dest-lon").value = latlng.lng.toFixed(6);
    this._map.showPick(latlng);
  }

  async refresh() {
    const params = { status: this._status.value, drone_id: this._drone.value.trim(), limit: 200 };
    try {
      const [page, active] = await Promise.all([
        getJSON(`/api/v1/deliveries${query(params)}`),
        Promise.all(ROUTED.map((s) => getJSON(`/api/v1/deliveries?status=${s}&limit=1000`))),
      ]);
      this.items = page.items;
      this._map.setRoutes(active.flatMap((p) => p.items), this._stations);
      this._render();
      if (this.selected) await this._follow(this.selected);
    } catch (err) {
      this._result.className = "error";
      this._result.textContent = `Deliveries unavailable: ${err.message}`;
    }
    this._onList?.(this.items);
  }

  _render() {
    const rows = this.items.map((d) =>
      el(
        "tr",
        { "data-delivery-id": d.id, "aria-selected": d.id === this.selected ? "true" : "false", onclick: () => this.select(d.id) },
        el("td", {}, el("button", { type: "button", "aria-label": `Follow delivery ${d.id}` }, d.id.slice(0, 14))),
        el("td", {}, d.status),
        el("td", {}, d.pickup_station),
        el("td", {}, d.drone_id ?? "—"),
        el("td", {}, hhmmss(d.created_at)),
      ),
    );
    this._body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "5", class: "empty" }, "No deliveries."))]));
  }

  async select(id) {
    this.selected = id;
    this._render();
    try {
      await this._follow(id);
    } catch (err) {
      document.getElementById("delivery-track").textContent = `Unavailable: ${err.message}`;
    }
  }

  async _follow(id) {
    const [d, track] = await Promise.all([
      getJSON(`/api/v1/deliveries/${encodeURIComponent(id)}`),
      getJSON(`/api/v1/deliveries/${encodeURIComponent(id)}/track`),
    ]);
    document.getElementById("delivery-detail").hidden = false;
    document.getElementById("delivery-title").textContent = `${d.id} · ${d.status}`;
    document.getElementById("delivery-track").textContent = [
      d.drone_id ? `drone ${d.drone_id}` : d.waiting_reason ?? "waiting for a drone",
      track.remaining_km !== null && track.remaining_km !== undefined ? `${num(track.remaining_km, 2)} km to go` : "",
      d.eta ? `ETA ${hhmmss(d.eta)} UTC` : "",
      d.price_estimate ? `${d.price_estimate} ${d.currency}` : "",
    ].filter(Boolean).join(" · ");
    document.getElementById("delivery-timeline").replaceChildren(
      ...d.timeline.map((t) => el("li", {}, `${hhmmss(t.at)} ${t.status}${t.note ? ` — ${t.note}` : ""}`)),
    );
    this.followedDrone = ACTIVE.has(d.status) ? d.drone_id : null;
    if (!this.followedDrone) this._map.track.setLatLngs([]);
  }

  /** Drone states from the stream: extend the followed delivery's track. */
  live(states) {
    if (!this.followedDrone) return;
    for (const s of states) {
      if (s.drone_id === this.followedDrone && s.lat !== null && s.lat !== undefined) this._map.track.addLatLng([s.lat, s.lon]);
    }
  }

  async _create() {
    const f = this._form;
    if (!f.reportValidity()) return;
    const body = {
      order_id: orderId(),
      customer_id: f.elements.customer_id.value.trim(),
      pickup_station: f.elements.pickup_station.value,
      destination: { lat: Number(f.elements.lat.value), lon: Number(f.elements.lon.value) },
      package: { weight_kg: Number(f.elements.weight_kg.value), size: f.elements.size.value },
    };
    const button = f.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const d = await postJSON("/api/v1/deliveries", body);
      this._result.className = "ok";
      this._result.textContent = `Created ${d.id} (${d.distance_km} km, ${d.price_estimate} ${d.currency}).`;
      this._status.value = "";
      this._drone.value = "";
      await this.refresh();
      await this.select(d.id);
    } catch (err) {
      this._result.className = "error";
      this._result.textContent = `Not created: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  }
}
