"""Alerting configuration: every threshold in one typed object, overridable per drone model,
and the notification channels. Read from ``SKYHIVE_ALERTS__*`` / ``SKYHIVE_NOTIFY__*``
(see ``settings.py``); pure data, no I/O."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Severity = Literal["warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2}

AlertType = Literal[
    "emergency",
    "low_battery",
    "cannot_reach_station",
    "geofence",
    "offline",
    "altitude",
    "overspeed",
    "gps_jump",
    "battery_drop",
    # Raised by the MAVLink gateway: GPS fix below 3D, few satellites, or a poor eph.
    "gps_degraded",
    # Raised by the stream models (the `models` role, models/): a drone's energy per km
    # drifted above its own baseline; a reading unlike what the drone usually does.
    "maintenance_due",
    "anomaly",
    # A delivery's drone off its declared flight (domain/conformance.py): a warning at once,
    # critical once it lasts (the delivery contingent, the drone sent to a station).
    "conformance",
]
ALERT_TYPES: tuple[str, ...] = get_args(AlertType)


class Thresholds(BaseModel):
    """The numbers the rules compare against. Every field can be overridden per drone model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    low_battery_warning_pct: float = Field(default=25.0, ge=0, le=100)
    low_battery_critical_pct: float = Field(default=10.0, ge=0, le=100)
    # Energy left after flying to the nearest station must stay above this share of a full
    # battery, else ``cannot_reach_station``.
    reach_reserve_pct: float = Field(default=10.0, ge=0, lt=100)
    altitude_ceiling_m: float = Field(default=120.0, gt=0)
    overspeed_mps: float = Field(default=30.0, gt=0)
    # A position implying more than this since the previous one is a glitch or spoofing.
    gps_jump_mps: float = Field(default=80.0, gt=0)
    battery_drop_pct: float = Field(default=15.0, gt=0, le=100)
    battery_drop_window_s: float = Field(default=60.0, gt=0)
    offline_in_flight_s: float = Field(default=15.0, gt=0)
    offline_docked_s: float = Field(default=600.0, gt=0)
    # gps_degraded (readings of the MAVLink gateway, which carry ``gps``): a fix below this
    # fix type (3: 3D), fewer satellites, or an eph (HDOP) above this.
    gps_min_fix_type: int = Field(default=3, ge=0, le=8)
    gps_min_satellites: int = Field(default=6, ge=0, le=64)
    gps_max_eph: float = Field(default=2.5, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.low_battery_critical_pct > self.low_battery_warning_pct:
            raise ValueError("low_battery_critical_pct must not exceed low_battery_warning_pct")
        return self


class AlertConfig(BaseModel):
    """Defaults, per-model overrides (``models``: model name → the fields it changes), and
    which types resolve by themselves when their condition clears."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    defaults: Thresholds = Thresholds()
    models: dict[str, dict[str, float]] = Field(default_factory=dict)
    # A glitch, a cell failure or an anomaly wants a human look even once the readings are
    # normal again.
    auto_resolve: dict[str, bool] = Field(
        default_factory=lambda: {
            t: t not in ("gps_jump", "battery_drop", "anomaly") for t in ALERT_TYPES
        }
    )
    # A drone with a critical alert of one of these types is grounded (kept out of dispatch)
    # until a person clears the alert: ``SKYHIVE_ALERTS__GROUNDING_TYPES``.
    grounding_types: frozenset[AlertType] = frozenset({"battery_drop", "gps_jump", "gps_degraded"})

    @model_validator(mode="after")
    def _valid_overrides(self) -> AlertConfig:
        for model in self.models:
            self.for_model(model)  # raises on an unknown field or a bad value
        unknown = set(self.auto_resolve) - set(ALERT_TYPES)
        if unknown:
            raise ValueError(f"auto_resolve names unknown alert types: {sorted(unknown)}")
        return self

    def for_model(self, model: str | None) -> Thresholds:
        override = self.models.get(model or "")
        if not override:
            return self.defaults
        return Thresholds.model_validate({**self.defaults.model_dump(), **override})

    def resolves_itself(self, alert_type: str) -> bool:
        return self.auto_resolve.get(alert_type, True)

    def grounds(self, alert_type: str, severity: str) -> bool:
        """Whether an alert of this type and severity takes its drone out of dispatch."""
        return severity == "critical" and alert_type in self.grounding_types


class Channel(BaseModel):
    """One notification channel: an apprise URL (``discord://``, ``slack://``, ``mailto://``,
    ``json://`` ...) and what it wants to hear about."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str = Field(min_length=3)
    min_severity: Severity = "warning"
    types: list[AlertType] | None = None  # None: every type
    # An escalation channel hears only of critical alerts nobody acknowledged in time.
    escalation: bool = False

    def wants(self, alert_type: str, severity: str) -> bool:
        return SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK[self.min_severity] and (
            self.types is None or alert_type in self.types
        )


class NotifyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: list[Channel] = Field(default_factory=list)
    reminder_every_s: float = Field(default=300.0, gt=0)  # unacknowledged critical alerts
    escalate_after_reminders: int = Field(default=3, ge=1)
    throttle_s: float = Field(default=60.0, ge=0)  # per alert and channel, escalations excepted
    retries: int = Field(default=4, ge=0)
    backoff_s: float = Field(default=0.5, gt=0)  # doubled on every retry
    timeout_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _unique_names(self) -> NotifyConfig:
        names = [c.name for c in self.channels]
        if len(names) != len(set(names)):
            raise ValueError("notification channel names must be unique")
        return self
