"""What a notification says: an alert change or reminder as a title and a plain-text body,
the same for every channel."""

from __future__ import annotations

from typing import Any

import orjson

from skyhive.domain.alert_lifecycle import UNACKNOWLEDGED
from skyhive.ports.sender import Message, MessageKind


def _where(details: dict[str, Any]) -> str | None:
    lat, lon = details.get("lat"), details.get("lon")
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        return f"{lat:.5f}, {lon:.5f}"
    return None


def _details_line(details: dict[str, Any]) -> str:
    shown = []
    for k, v in details.items():
        if k in ("lat", "lon"):
            continue
        text = orjson.dumps(v).decode() if isinstance(v, dict | list) else str(v)
        shown.append(f"{k}={text[:80]}")
    return ", ".join(shown)[:500]


def render(alert: dict[str, Any], change: str, reminder: int = 0) -> Message:
    """Title and plain-text body of a notification. ``change`` is a stream change or
    ``reminder`` / ``escalation`` (``reminder`` is then the reminder's number)."""
    drone, kind = alert.get("drone_id", "?"), alert.get("type", "?")
    severity = str(alert.get("severity", "warning"))
    raw_details = alert.get("details")
    details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
    where = _where(details)
    alert_id = alert.get("id", "?")
    if change == "resolved":
        by = alert.get("resolved_by")
        at = alert.get("resolved_at") or alert.get("last_seen") or "now"
        lines = [
            f"Drone {drone}: {kind} resolved at {at}" + (f" by {by}." if by else "."),
            f"Alert id: {alert_id}",
        ]
        if alert.get("state") == UNACKNOWLEDGED:
            lines.insert(1, "Nobody acknowledged it: it stays on the dashboard until someone does.")
        return Message(f"[RESOLVED] {kind} on {drone}", "\n".join(lines), "success")
    label = {
        "opened": "opened",
        "escalated": "escalated to critical" if severity == "critical" else "escalated",
        "deescalated": f"de-escalated to {severity}",
        "reminder": f"still unacknowledged (reminder {reminder})",
        "escalation": f"ESCALATED: unacknowledged after {reminder} reminders",
    }.get(change, change)
    prefix = "ESCALATION" if change == "escalation" else severity.upper()
    lines = [
        f"Drone: {drone}",
        f"Alert: {kind}, {severity} — {label}",
        f"Count: {alert.get('count', 1)} reading(s)",
    ]
    if where:
        lines.append(f"Where: {where}")
    lines.append(f"Time: {alert.get('last_seen') or 'now'} (opened {alert.get('opened_at', '?')})")
    if extra := _details_line(details):
        lines.append(f"Details: {extra}")
    if alert.get("acknowledged_by"):
        lines.append(f"Acknowledged by: {alert['acknowledged_by']}")
    lines.append(f"Alert id: {alert_id}")
    kind_of: MessageKind = (
        "failure" if severity == "critical" or change == "escalation" else "warning"
    )
    return Message(f"[{prefix}] {kind} on {drone} {label}", "\n".join(lines), kind_of)
