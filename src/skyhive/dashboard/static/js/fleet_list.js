// The drones as a list, for the keyboard (and screen readers): the map draws them on a canvas
// nobody can tab to. Filter by id or status; Enter or a click shows the drone on the map and in
// its panel. At most MAX_ROWS rows are built, and only while the list is on screen, at most once
// a second, so 1,000 live drones cost next to nothing.

import { el, num } from "./format.js";

const MAX_ROWS = 50;

function statusOf(d) {
  return d.emergency ? "emergency" : d.status || "unknown";
}

export class FleetList {
  constructor({ drones, onSelect }) {
    this._drones = drones; // the map's live table: drone id -> state
    this._onSelect = onSelect;
    this._panel = document.getElementById("panel-fleet");
    this._list = document.getElementById("fleet-list");
    this._filter = document.getElementById("fleet-filter");
    this._summary = document.getElementById("fleet-summary");
    this._filter.addEventListener("input", () => this.render());
    this._list.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-drone-id]");
      if (button) this._onSelect(button.dataset.droneId);
    });
    this._ids = [];
  }

  /** The drones matching the filter: emergencies first, then by id. */
  matching() {
    const words = this._filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const out = [];
    for (const d of this._drones.values()) {
      const text = `${d.drone_id} ${statusOf(d)}`.toLowerCase();
      if (words.every((w) => text.includes(w))) out.push(d);
    }
    // Plain string order (not localeCompare): a thousand drones sort in well under 1 ms.
    const byId = (a, b) => (a.drone_id < b.drone_id ? -1 : a.drone_id > b.drone_id ? 1 : 0);
    return out.sort((a, b) => Number(b.emergency) - Number(a.emergency) || byId(a, b));
  }

  /** Redraw if on screen (the caller limits this to once a second). */
  render() {
    if (this._panel.hidden) return;
    const found = this.matching();
    const shown = found.slice(0, MAX_ROWS);
    const summary = found.length > shown.length
      ? `${shown.length} of ${found.length} drones shown; type to narrow.`
      : `${found.length} of ${this._drones.size} drones.`;
    if (this._summary.textContent !== summary) this._summary.textContent = summary;
    const ids = shown.map((d) => d.drone_id);
    if (ids.length === this._ids.length && ids.every((id, i) => id === this._ids[i])) {
      // Same rows: update their text in place, so the focused row keeps the focus.
      for (const [i, button] of [...this._list.querySelectorAll("button")].entries()) {
        const label = this._label(shown[i]);
        if (button.textContent !== label) button.textContent = label;
      }
      return;
    }
    const focused = document.activeElement?.closest?.("#fleet-list button")?.dataset.droneId;
    this._ids = ids;
    this._list.replaceChildren(
      ...shown.map((d) =>
        el("li", {}, el("button", { type: "button", class: `drone-row ${statusOf(d)}`, "data-drone-id": d.drone_id }, this._label(d))),
      ),
    );
    if (focused) this._list.querySelector(`button[data-drone-id="${CSS.escape(focused)}"]`)?.focus();
  }

  _label(d) {
    return `${d.drone_id} · ${statusOf(d).replace("_", " ")} · ${num(d.battery_pct, 0, " %")}`;
  }
}
