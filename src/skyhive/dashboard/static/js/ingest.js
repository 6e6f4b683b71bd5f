// Whether processing keeps up with the drones (GET /api/v1/bus): a header badge when a
// consumer group trails by more than a few seconds, or when ingest is held back because the
// bus is over its backlog limit. Hidden while everything keeps up.

import { getJSON } from "./api.js";

const BEHIND_S = 3;
const EVERY_MS = 5000;

export function describe(lag) {
  if (!lag) return null;
  if (lag.held_back) {
    return `Ingest held back: ${lag.backlog.toLocaleString()} readings waiting (limit ${lag.limit.toLocaleString()})`;
  }
  const worst = lag.groups.reduce((a, g) => (g.lag_s > (a?.lag_s ?? -1) ? g : a), null);
  if (!worst || worst.lag_s < BEHIND_S) return null;
  return `Ingest behind: ${worst.group} ${worst.lag_s.toFixed(0)} s (${worst.unacked.toLocaleString()} waiting)`;
}

export function watchIngest(badge) {
  async function check() {
    try {
      const text = describe((await getJSON("/api/v1/bus")).lag);
      badge.hidden = !text;
      badge.textContent = text ?? "";
    } catch {
      // the connection badge already says when the API is unreachable
    }
  }
  check();
  setInterval(check, EVERY_MS);
}
