"""The offline rule: a timer, since silence brings no message to react to.

Every ``SKYHIVE_ALERTS_SWEEP_S`` one processor (a Redis lock picks it) looks at the drones not
heard from for longer than the shortest limit, and raises ``offline`` for those silent longer
than theirs: ``offline_in_flight_s`` in the air (critical), ``offline_docked_s`` docked
(warning), per drone model. "Heard" is when a message *arrived*, by the server's clock, so a
drone with a skewed clock or late, out-of-order messages is never taken for silent. The next
reading resolves the alert (``domain/alert_rules.evaluate``).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from skyhive.adapters.alerts_repo import alert_state_key
from skyhive.adapters.live_state import drone_key
from skyhive.domain.alert_lifecycle import ActiveAlert
from skyhive.domain.alert_rules import AIRBORNE, Finding, offline_finding
from skyhive.services.alerting import AlertEngine
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

HEARD = "alerting:heard"  # zset: drone → when telemetry from it last arrived (epoch s)
LOCK = "alerting:offline:lock"
MAX_PER_SWEEP = 10_000


class OfflineWatch:
    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        engine: AlertEngine,
        specs: SpecCache | None = None,
    ) -> None:
        """``specs``: a registry cache someone keeps fresh (the processor's); without one,
        specs are read once and kept."""
        self._s = settings
        self._c = clients
        self._engine = engine
        self._specs = specs or SpecCache(clients.fleet)
        cfg = settings.alerts
        limits = [cfg.defaults.offline_in_flight_s, cfg.defaults.offline_docked_s]
        for model in cfg.models:
            th = cfg.for_model(model)
            limits += [th.offline_in_flight_s, th.offline_docked_s]
        self._shortest = min(limits)

    def sweep(self, now: float | None = None) -> int:
        """Raise the offline alerts due; returns how many changed. A no-op while another
        processor holds the sweep."""
        now = time.time() if now is None else now
        r = self._c.redis_text
        hold_ms = max(100, int(self._s.alerts_sweep_s * 900))
        if not r.set(LOCK, "1", nx=True, px=hold_ms):
            return 0
        silent: list[Any] = r.zrangebyscore(
            HEARD, "-inf", now - self._shortest, start=0, num=MAX_PER_SWEEP, withscores=True
        )
        if not silent:
            return 0
        ids = [str(d) for d, _ in silent]
        pipe = r.pipeline(transaction=False)
        for d in ids:
            pipe.hget(drone_key(d), "status")
            pipe.hget(alert_state_key(d), "offline")
        replies = pipe.execute()
        specs = self._specs.get_many(ids)
        at = datetime.fromtimestamp(now, UTC)
        findings: list[tuple[str, Finding]] = []
        for i, (drone_id, heard) in enumerate(silent):
            status, active = replies[2 * i], replies[2 * i + 1]
            spec = specs.get(str(drone_id))
            if spec is not None and spec.status != "active":
                continue  # retired or in maintenance: silence is expected
            th = self._s.alerts.for_model(spec.model if spec else None)
            found = offline_finding(now - float(heard), status in AIRBORNE, th, at, status)
            if found is None:
                continue
            if active and ActiveAlert.decode(active).severity == found.severity:
                continue  # already raised at this severity
            findings.append((str(drone_id), found))
        return len(self._engine.apply(findings))


def stop_watching(redis_text: Any, drone_id: str) -> None:
    """Stop watching a drone until it is heard again (a person resolved its offline alert:
    it must not be raised again at the next sweep)."""
    redis_text.zrem(HEARD, drone_id)
