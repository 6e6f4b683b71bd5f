"""The offline rule: a timer, since silence brings no message to react to.

Every ``SKYHIVE_ALERTS_SWEEP_S`` one processor (``FleetState.take_sweep`` picks it) looks at
the drones not heard from for longer than the shortest limit, and raises ``offline`` for those
silent longer than theirs: ``offline_in_flight_s`` in the air (critical),
``offline_docked_s`` docked (warning), per drone model. "Heard" is when a message *arrived*, by the server's clock, so a
drone with a skewed clock or late, out-of-order messages is never taken for silent. The next
reading resolves the alert (``domain/alert_rules.evaluate``).
"""

from __future__ import annotations

import logging

from skyhive.domain.alert_rules import AIRBORNE, Finding, offline_finding
from skyhive.ports.clock import Clock
from skyhive.ports.fleet_state import FleetState
from skyhive.services.alerting import AlertEngine
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings

log = logging.getLogger(__name__)

MAX_PER_SWEEP = 10_000


class OfflineWatch:
    def __init__(
        self,
        settings: Settings,
        *,
        fleet: FleetState,
        engine: AlertEngine,
        specs: SpecCache,
        clock: Clock,
    ) -> None:
        """``specs``: a registry cache someone keeps fresh (the processor's)."""
        self._s = settings
        self._fleet = fleet
        self._engine = engine
        self._specs = specs
        self._clock = clock
        cfg = settings.alerts
        limits = [cfg.defaults.offline_in_flight_s, cfg.defaults.offline_docked_s]
        for model in cfg.models:
            th = cfg.for_model(model)
            limits += [th.offline_in_flight_s, th.offline_docked_s]
        self._shortest = min(limits)

    def sweep(self) -> int:
        """Raise the offline alerts due; returns how many changed. A no-op while another
        processor holds the sweep."""
        at = self._clock.now()
        now = at.timestamp()
        hold_ms = max(100, int(self._s.alerts_sweep_s * 900))
        if not self._fleet.take_sweep(hold_ms):
            return 0
        silent = self._fleet.silent(now - self._shortest, MAX_PER_SWEEP)
        if not silent:
            return 0
        ids = [d.drone_id for d in silent]
        active = self._engine.active.get_many(ids)
        specs = self._specs.get_many(ids)
        findings: list[tuple[str, Finding]] = []
        for drone in silent:
            spec = specs.get(drone.drone_id)
            if spec is not None and spec.status != "active":
                continue  # retired or in maintenance: silence is expected
            th = self._s.alerts.for_model(spec.model if spec else None)
            airborne = drone.status in AIRBORNE
            found = offline_finding(now - drone.heard_at, airborne, th, at, drone.status)
            if found is None:
                continue
            raised = active.get((drone.drone_id, "offline"))
            if raised is not None and raised.severity == found.severity:
                continue  # already raised at this severity
            findings.append((drone.drone_id, found))
        return len(self._engine.apply(findings))
