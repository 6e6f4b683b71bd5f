// The alerts panel: open and acknowledged alerts, and the critical ones that resolved by
// themselves before anyone acknowledged them (until a person does), critical first, newest
// first; acknowledge and resolve; click one to focus its drone. Kept current by the live
// stream's alert frames. Who acknowledges or resolves is the signed-in key: the server
// records its name.

import { getJSON, postJSON } from "./api.js";
import { ago, el, hhmmss } from "./format.js";

const SEVERITY_RANK = { critical: 0, warning: 1 };

export class AlertsPanel {
  constructor({ onFocus, onChange }) {
    this.alerts = new Map();
    this._onFocus = onFocus;
    this._onChange = onChange;
    this._list = document.getElementById("alerts-list");
    this._empty = document.getElementById("alerts-empty");
    this._filter = document.getElementById("alerts-filter");
    this._filter.addEventListener("change", () => this.render());
    this._fresh = new Set();
    this._audio = null;
    // Browsers allow sound only after a user gesture: prepare it on the first one.
    document.addEventListener("pointerdown", () => this._unlockAudio(), { once: true });
    document.addEventListener("keydown", () => this._unlockAudio(), { once: true });
  }

  async load() {
    const lists = await Promise.all(
      ["open", "acknowledged", "resolved_unacknowledged"].map((s) => getJSON(`/api/v1/alerts?state=${s}&limit=500`)),
    );
    for (const a of lists.flatMap((l) => l.items)) this.alerts.set(a.id, a);
    this.render();
  }

  /** One alert change from the stream. */
  apply(alert) {
    const known = this.alerts.has(alert.id);
    if (alert.state === "resolved") {
      this.alerts.delete(alert.id);
    } else {
      this.alerts.set(alert.id, { ...this.alerts.get(alert.id), ...alert });
      if (alert.severity === "critical" && alert.state === "open" && (!known || alert.change === "escalated")) {
        this._fresh.add(alert.id);
        this._beep();
      }
    }
    this.render();
  }

  active() {
    return [...this.alerts.values()];
  }

  forDrone(droneId) {
    return this.active().filter((a) => a.drone_id === droneId);
  }

  render() {
    const onlyOpen = this._filter.value === "open";
    const shown = this.active()
      .filter((a) => !onlyOpen || a.state !== "acknowledged")
      .sort(
        (a, b) =>
          (SEVERITY_RANK[a.severity] ?? 2) - (SEVERITY_RANK[b.severity] ?? 2) ||
          (b.last_seen ?? b.opened_at ?? "").localeCompare(a.last_seen ?? a.opened_at ?? ""),
      );
    this._list.replaceChildren(...shown.map((a) => this._item(a)));
    this._empty.hidden = shown.length > 0;
    this._fresh.clear();
    this._onChange(this.active());
  }

  _item(a) {
    const focus = () => this._onFocus(a);
    const action = (verb) => async (event) => {
      event.stopPropagation();
      event.target.disabled = true;
      try {
        this.apply(await postJSON(`/api/v1/alerts/${encodeURIComponent(a.id)}/${verb}`, {}));
      } catch (err) {
        event.target.disabled = false;
        event.target.title = err.message;
        event.target.closest(".alert").querySelector(".meta").textContent = `Failed: ${err.message}`;
      }
    };
    const cls = ["alert", a.severity, a.state, this._fresh.has(a.id) ? "fresh" : ""].join(" ");
    return el(
      "li",
      {
        class: cls,
        tabindex: "0",
        "data-alert-id": a.id,
        "aria-label": `${a.severity} ${a.type} on drone ${a.drone_id}, ${a.state}`,
        onclick: focus,
        onkeydown: (e) => {
          if (e.target === e.currentTarget && (e.key === "Enter" || e.key === " ")) {
            e.preventDefault();
            focus();
          }
        },
      },
      el("header", {}, el("span", { class: "sev" }, a.severity), el("span", {}, hhmmss(a.last_seen ?? a.opened_at))),
      el("div", {}, el("strong", {}, a.type.replaceAll("_", " ")), " · drone ", a.drone_id, a.count > 1 ? ` · ×${a.count}` : ""),
      el(
        "div",
        { class: "meta" },
        this._meta(a),
      ),
      el(
        "div",
        { class: "actions" },
        a.state === "acknowledged"
          ? null
          : el("button", { type: "button", class: "secondary", onclick: action("ack"), "aria-label": `Acknowledge ${a.type} on ${a.drone_id}` }, "Acknowledge"),
        a.state === "resolved_unacknowledged"
          ? null
          : el("button", { type: "button", class: "secondary", onclick: action("resolve"), "aria-label": `Resolve ${a.type} on ${a.drone_id}` }, "Resolve"),
      ),
    );
  }

  _meta(a) {
    const grounded = a.grounding ? " · drone grounded" : "";
    if (a.state === "acknowledged") return `acknowledged by ${a.acknowledged_by} ${ago(a.acknowledged_at)}${grounded}`;
    if (a.state === "resolved_unacknowledged") return `resolved by itself ${ago(a.resolved_at)}, not acknowledged${grounded}`;
    return `opened ${ago(a.opened_at)}${grounded}`;
  }

  _unlockAudio() {
    try {
      this._audio = this._audio ?? new AudioContext();
    } catch {
      this._audio = null; // no sound on this browser; the visual emphasis remains
    }
  }

  _beep() {
    const ctx = this._audio;
    if (!ctx || ctx.state !== "running") return;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.08;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.25);
  }
}
