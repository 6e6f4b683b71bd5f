"""An alert as stored, served and told: one condition of one drone, from its first finding
until it is resolved (the lifecycle that changes it is ``alert_lifecycle.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from skyhive.domain.alert_config import Severity
from skyhive.domain.alert_lifecycle import AlertUpdate

AlertState = Literal["open", "acknowledged", "resolved_unacknowledged", "resolved"]


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    drone_id: str
    type: str
    severity: Severity
    state: AlertState
    opened_at: datetime
    last_seen: datetime | None = None
    count: int | None = None  # findings that fired it
    details: dict[str, Any] | None = None  # what the last finding saw
    action: dict[str, Any] | None = None  # an automatic action taken
    grounding: bool | None = None  # it grounds its drone until it is resolved
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    ack_note: str | None = None
    resolved_by: str | None = None  # "auto", or who
    resolved_at: datetime | None = None
    resolve_note: str | None = None

    @property
    def grounds(self) -> bool:
        """Whether it keeps its drone out of dispatch: it was critical and of a grounding
        type, and no person has cleared it (resolved it, or acknowledged it once resolved)."""
        return bool(self.grounding) and self.state != "resolved"

    def to_json(self) -> dict[str, Any]:
        """The one serialization (the API, the alerts stream, the dashboard, notifications):
        the fields the alert has, its times in ISO 8601 UTC with ``Z``."""
        out = self.model_dump(exclude_unset=True)
        for k, v in out.items():
            if isinstance(v, datetime):
                out[k] = v.isoformat().replace("+00:00", "Z")
        return out


def insert_and_set(u: AlertUpdate) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a new alert gets once, and what every change of it by ``u`` sets."""
    on_insert: dict[str, Any] = {"drone_id": u.drone_id, "type": u.type, "opened_at": u.first_ts}
    fields: dict[str, Any] = {"severity": u.severity}
    if u.details:
        fields["details"] = u.details
    if u.action:
        fields["action"] = u.action
    if u.grounding:
        fields["grounding"] = True
    on_insert.update(resolution_fields(u) or {"state": "open"})
    return on_insert, fields


def resolution_fields(u: AlertUpdate) -> dict[str, Any] | None:
    """What resolving by itself sets (None: ``u`` does not resolve it). An alert already
    stored gets them only while it is still ``open``, or ``acknowledged`` with the state
    ``resolved`` (``adapters/alerts_repo.py``): a person's acknowledgement made meanwhile is
    never overwritten, nor a person's resolution by a replayed batch."""
    if u.resolved_at is None:
        return None
    return {"state": u.resolved_state, "resolved_at": u.resolved_at, "resolved_by": "auto"}


def opened_alert(u: AlertUpdate) -> Alert:
    """The alert that ``u`` creates when it is new (``u.opened``): all of it is in the update,
    so it can be announced before it is stored."""
    on_insert, fields = insert_and_set(u)
    alert = {"id": u.alert_id, **on_insert, **fields, "count": u.count}
    if u.count:
        alert["last_seen"] = u.last_ts
    return Alert.model_validate(alert)
