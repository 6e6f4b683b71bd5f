"""The fleet KPIs over the columnar archive, defined once as SQL that runs unchanged on
DuckDB (`skyhive archive kpis`, ``adapters/archive_sql.py``) and on Spark SQL
(``jobs/fleet_kpis.py``), over the views ``telemetry``, ``deliveries``, ``alerts``,
``drones`` and ``stations`` (each with its partition column ``date``).

Written in the subset the two engines share, so they agree on the same archive: no dialect
functions (times as the archive's epoch milliseconds or ``hour()``/``CAST(... AS DATE)`` of a
UTC timestamp, both sessions in UTC), explicit ``CAST(... AS DOUBLE)`` where Spark would read
a literal as a decimal, ``NULLIF`` under every divisor (Spark's ANSI mode raises on a division
by zero), every output column named, and an ``ORDER BY`` on non-null keys. Percentiles are
nearest-rank, from ``ROW_NUMBER`` (the smallest value whose rank r has r/n ≥ p, compared in
integers): both engines pick the same reading, where their own percentile functions
interpolate differently. Sums and averages of floating-point values may differ in the last
bits between the engines (the order of addition); everything else is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from skyhive.domain.geo import EARTH_RADIUS_M
from skyhive.domain.rollups import FLYING as FLYING_STATUSES
from skyhive.domain.rollups import GROUNDED as GROUNDED_STATUSES
from skyhive.domain.rollups import GROUNDED_GAP_S, MAX_GAP_S

GAP_MS = int(MAX_GAP_S * 1000)
GROUNDED_GAP_MS = int(GROUNDED_GAP_S * 1000)
FLYING = "(" + ", ".join(f"'{s}'" for s in FLYING_STATUSES) + ")"
GROUNDED = "(" + ", ".join(f"'{s}'" for s in GROUNDED_STATUSES) + ")"
ALL = "*"  # the row over every station

_EARTH_KM = f"CAST({EARTH_RADIUS_M / 1000} AS DOUBLE)"
_RANKS = (50, 90, 95, 99)


@dataclass(frozen=True, slots=True)
class Kpi:
    name: str
    title: str
    sql: str


def _percentiles(value: str) -> str:
    return ",\n".join(
        f"    MIN(CASE WHEN rn * 100 >= n * {p} THEN {value} END) AS p{p}_s" for p in _RANKS
    )


STATION_HOURS = Kpi(
    "station_hours",
    "Deliveries per station and hour: orders, pickups per pad, waiting before assignment",
    """
WITH events AS (
    SELECT pickup_station AS station, CAST(created_at AS DATE) AS day,
           hour(created_at) AS hour, 1 AS orders, 0 AS pickups, wait_s
    FROM deliveries
    UNION ALL
    SELECT pickup_station AS station, CAST(picked_up_at AS DATE) AS day,
           hour(picked_up_at) AS hour, 0 AS orders, 1 AS pickups,
           CAST(NULL AS DOUBLE) AS wait_s
    FROM deliveries
    WHERE picked_up_at IS NOT NULL
),
pads AS (
    SELECT code, MAX(pads) AS pads FROM stations GROUP BY code
)
SELECT e.station AS station, e.day AS day, e.hour AS hour,
       SUM(e.orders) AS orders,
       SUM(e.pickups) AS pickups,
       MAX(p.pads) AS pads,
       SUM(e.pickups) / NULLIF(MAX(p.pads), 0) AS pickups_per_pad,
       AVG(e.wait_s) AS mean_wait_s,
       MAX(e.wait_s) AS max_wait_s
FROM events e LEFT JOIN pads p ON p.code = e.station
GROUP BY e.station, e.day, e.hour
ORDER BY station, day, hour
""",
)

ON_TIME = Kpi(
    "on_time",
    f"On-time rate: delivered by the ETA given at assignment, per station ({ALL}: all)",
    f"""
WITH done AS (
    SELECT pickup_station AS station, delivered_at, promised_eta
    FROM deliveries WHERE status = 'delivered'
),
grouped AS (
    SELECT station, delivered_at, promised_eta FROM done
    UNION ALL
    SELECT '{ALL}' AS station, delivered_at, promised_eta FROM done
)
SELECT station,
       COUNT(*) AS delivered,
       COUNT(promised_eta) AS with_eta,
       SUM(CASE WHEN delivered_at <= promised_eta THEN 1 ELSE 0 END) AS on_time,
       SUM(CASE WHEN delivered_at <= promised_eta THEN 1 ELSE 0 END)
           / NULLIF(COUNT(promised_eta), 0) AS on_time_rate
FROM grouped
GROUP BY station
ORDER BY station
""",
)

DELIVERY_TIMES = Kpi(
    "delivery_times",
    f"Order-to-delivery time percentiles (nearest rank), per station ({ALL}: all)",
    f"""
WITH done AS (
    SELECT pickup_station AS station, delivery_s
    FROM deliveries WHERE status = 'delivered' AND delivery_s IS NOT NULL
),
grouped AS (
    SELECT station, delivery_s FROM done
    UNION ALL
    SELECT '{ALL}' AS station, delivery_s FROM done
),
ranked AS (
    SELECT station, delivery_s,
           CAST(ROW_NUMBER() OVER (PARTITION BY station ORDER BY delivery_s) AS BIGINT) AS rn,
           COUNT(*) OVER (PARTITION BY station) AS n
    FROM grouped
)
SELECT station,
    MAX(n) AS deliveries,
{_percentiles("delivery_s")},
    MAX(delivery_s) AS max_s,
    AVG(delivery_s) AS mean_s
FROM ranked
GROUP BY station
ORDER BY station
""",
)

OUTCOMES = Kpi(
    "outcome_reasons",
    "Failure and cancellation reasons",
    """
SELECT status AS outcome, COALESCE(reason, 'unknown') AS reason, COUNT(*) AS deliveries
FROM deliveries
WHERE status IN ('failed', 'cancelled')
GROUP BY status, COALESCE(reason, 'unknown')
ORDER BY outcome, deliveries DESC, reason
""",
)

# A step between two readings of a drone: counted in the day of the later reading, to the
# status of the earlier one, if no longer than that status reports (``domain/rollups.py``, whose
# minute and hour rollups count steps the same way): gaps over a minute in the air, a quarter
# of an hour on a pad, count as unknown.
_STEPS = """
    SELECT date AS day, drone_id, battery_pct, lat, lon,
           LAG(status) OVER w AS prev_status,
           LAG(battery_pct) OVER w AS prev_pct,
           LAG(lat) OVER w AS prev_lat,
           LAG(lon) OVER w AS prev_lon,
           ts_ms - LAG(ts_ms) OVER w AS gap_ms
    FROM telemetry
    WINDOW w AS (PARTITION BY drone_id ORDER BY ts_ms, seq)
"""
_COUNTED = (
    f"gap_ms > 0 AND gap_ms <= CASE WHEN prev_status IN {GROUNDED} "
    f"THEN {GROUNDED_GAP_MS} ELSE {GAP_MS} END"
)

UTILISATION = Kpi(
    "drone_utilisation",
    "Drone utilisation per day: seconds flying, idle, charging (gaps over a minute in the air, "
    "a quarter of an hour on a pad, count as unknown)",
    f"""
WITH steps AS ({_STEPS}),
spans AS (
    SELECT day, drone_id, prev_status AS status,
           CASE WHEN {_COUNTED} THEN gap_ms ELSE 0 END AS ms
    FROM steps
)
SELECT day, drone_id,
       COUNT(*) AS readings,
       CAST(SUM(CASE WHEN status IN {FLYING} THEN ms ELSE 0 END) AS DOUBLE) / 1000 AS flight_s,
       CAST(SUM(CASE WHEN status = 'idle' THEN ms ELSE 0 END) AS DOUBLE) / 1000 AS idle_s,
       CAST(SUM(CASE WHEN status = 'charging' THEN ms ELSE 0 END) AS DOUBLE) / 1000
           AS charging_s,
       CAST(SUM(ms) AS DOUBLE) / 1000 AS observed_s,
       CAST(SUM(CASE WHEN status IN {FLYING} THEN ms ELSE 0 END) AS DOUBLE)
           / NULLIF(SUM(ms), 0) AS flight_share
FROM spans
GROUP BY day, drone_id
ORDER BY day, drone_id
""",
)


def _haversine_km(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    """``domain/geo.haversine_m`` in SQL, in km."""
    a = (
        f"POWER(SIN(RADIANS({lat2} - {lat1}) / 2), 2) + COS(RADIANS({lat1})) * "
        f"COS(RADIANS({lat2})) * POWER(SIN(RADIANS({lon2} - {lon1}) / 2), 2)"
    )
    return f"2 * {_EARTH_KM} * ASIN(LEAST(CAST(1 AS DOUBLE), SQRT({a})))"


ENERGY = Kpi(
    "energy_per_km",
    "Energy per km flown, by drone model (battery drops in flight times the model's capacity)",
    f"""
WITH steps AS ({_STEPS}),
flown AS (
    SELECT day, drone_id,
           {_haversine_km("prev_lat", "prev_lon", "lat", "lon")} AS km,
           CASE WHEN prev_pct > battery_pct THEN prev_pct - battery_pct ELSE 0 END AS used_pct
    FROM steps
    WHERE prev_status IN {FLYING} AND {_COUNTED}
      AND lat IS NOT NULL AND lon IS NOT NULL
      AND prev_lat IS NOT NULL AND prev_lon IS NOT NULL
)
SELECT d.model AS model,
       COUNT(DISTINCT f.drone_id) AS drones,
       SUM(f.km) AS km,
       SUM(f.used_pct * d.battery_capacity_wh / 100) AS energy_wh,
       SUM(f.used_pct * d.battery_capacity_wh / 100) / NULLIF(SUM(f.km), 0) AS wh_per_km
FROM flown f JOIN drones d ON d.drone_id = f.drone_id AND d.date = f.day
GROUP BY d.model
ORDER BY model
""",
)

ALERTS = Kpi(
    "alerts_by_type_station",
    "Alerts by type and station (the drone's home station; ? when not registered)",
    """
SELECT a.type AS type, COALESCE(d.home_station, '?') AS station,
       COUNT(*) AS alerts,
       SUM(CASE WHEN a.severity = 'critical' THEN 1 ELSE 0 END) AS critical
FROM alerts a LEFT JOIN drones d ON d.drone_id = a.drone_id AND d.date = a.date
GROUP BY a.type, COALESCE(d.home_station, '?')
ORDER BY type, station
""",
)

KPIS: tuple[Kpi, ...] = (
    STATION_HOURS,
    ON_TIME,
    DELIVERY_TIMES,
    OUTCOMES,
    UTILISATION,
    ENERGY,
    ALERTS,
)
BY_NAME = {k.name: k for k in KPIS}
