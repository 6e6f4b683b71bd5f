"""The analytics API (``/api/v1/analytics/...``) against the embedded MongoDB and Redis: each
answer equals the same figure worked out here, in plain Python, from the raw records (the
deliveries and alerts as stored, the readings as the archiver stored them), never by the
code under test.

Two worlds: the archive tests' known day (``archive_data``: deliveries in every end state,
readings with gaps and an unregistered drone), where some figures are also checked by hand
and utilisation against the archive's own KPI on DuckDB; and a day of simulated history
(``services/history_seed``), read with whole and ragged windows, its last hour from its
minute rollups and then, once settled, from its hour rollup.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from api_asserts import assert_error, body
from archive_data import AFTER, DAY, MIDNIGHT, make_day
from flask.testing import FlaskClient

from auth_helpers import api_client
from manual_clock import ManualClock
from skyhive.bootstrap import bootstrap
from skyhive.domain.deliveries import Delivery
from skyhive.wiring import Clients

API = "/api/v1/analytics"
ENDPOINTS = ("stations", "on-time", "delivery-times", "outcomes", "utilisation", "energy", "alerts")
FLYING = {"in_flight", "returning", "emergency"}
EARTH_M = 6_371_008.8


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def get(api: FlaskClient, what: str, since: datetime, until: datetime, **extra: str) -> Any:
    resp = api.get(f"{API}/{what}", query_string={"since": iso(since), "until": iso(until)} | extra)
    assert resp.status_code == 200, resp.data[:400]
    return body(resp)


def span(answer: Mapping[str, Any] | None) -> tuple[datetime, datetime] | None:
    """A window as answered (``window``, ``covered``)."""
    if answer is None:
        return None
    return datetime.fromisoformat(answer["since"]), datetime.fromisoformat(answer["until"])


def floor(at: datetime, unit: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return at - (at - epoch) % unit


def ceil(at: datetime, unit: timedelta) -> datetime:
    f = floor(at, unit)
    return f if f == at else f + unit


def ts(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


# --- the figures, from the raw records ----------------------------------------------------------


def first_step(d: Delivery, status: str) -> datetime | None:
    return next((s.at for s in d.timeline if s.status == status), None)


def delivered_at(d: Delivery) -> datetime | None:
    return d.delivered_at or first_step(d, "delivered")


def ordered(clients: Clients, since: datetime, until: datetime) -> list[Delivery]:
    every = clients.deliveries.find(limit=100_000)
    return [d for d in every if since <= d.created_at < until]


def station_figures(found: Sequence[Delivery], pads: Mapping[str, int]) -> dict[str, Any]:
    hours: dict[tuple[str, datetime], dict[str, Any]] = defaultdict(
        lambda: {"orders": 0, "pickups": 0, "waits": []}
    )
    totals: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"orders": 0, "pickups": 0, "waits": []}
    )
    for d in found:
        s = d.pickup_station
        assigned, picked = first_step(d, "assigned"), first_step(d, "picked_up")
        wait = (assigned - d.created_at).total_seconds() if assigned else None
        created_hour = hours[(s, floor(d.created_at, timedelta(hours=1)))]
        created_hour["orders"] += 1
        totals[s]["orders"] += 1
        if wait is not None:
            created_hour["waits"].append(wait)
            totals[s]["waits"].append(wait)
        if picked:
            hours[(s, floor(picked, timedelta(hours=1)))]["pickups"] += 1
            totals[s]["pickups"] += 1
    return {"hours": hours, "totals": totals}


def nearest_rank(values: Sequence[float], p: int) -> float:
    ranked = sorted(values)
    return ranked[math.ceil(len(ranked) * p / 100) - 1]


def haversine_m(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (a["lat"], a["lon"], b["lat"], b["lon"]))
    h = (
        math.sin((la2 - la1) / 2) ** 2
        + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    )
    return 2 * EARTH_M * math.asin(min(1.0, math.sqrt(h)))


def longest_step_s(status: str | None) -> float:
    """A drone on a pad reports less often: a quarter of an hour; in the air, a minute."""
    return 900 if status in ("idle", "charging") else 60


def steps(
    by_drone: Mapping[str, Sequence[Mapping[str, Any]]], since: datetime, until: datetime
) -> Iterator[tuple[str, date, Mapping[str, Any], Mapping[str, Any] | None]]:
    """(drone, day, earlier, later) for each reading in [since, until): the step into it
    from the reading before (None when there is none, or it is too long ago to count)."""
    for drone, rs in by_drone.items():
        rs = sorted(rs, key=lambda r: (ts(r["ts"]), r["seq"]))
        for i, b in enumerate(rs):
            if not since <= ts(b["ts"]) < until:
                continue
            a = rs[i - 1] if i else None
            gap = (ts(b["ts"]) - ts(a["ts"])).total_seconds() if a else 0
            counted = a is not None and 0 < gap <= longest_step_s(a.get("status"))
            yield drone, ts(b["ts"]).date(), b, (a if counted else None)


def usage(
    by_drone: Mapping[str, Sequence[Mapping[str, Any]]], since: datetime, until: datetime
) -> dict[tuple[date, str], dict[str, float]]:
    """Per (day, drone): seconds per kind of status, metres flown, battery used in flight."""
    out: dict[tuple[date, str], dict[str, float]] = {}
    for drone, day, b, a in steps(by_drone, since, until):
        row = out.setdefault((day, drone), Counter())
        if a is None:
            continue
        dt = (ts(b["ts"]) - ts(a["ts"])).total_seconds()
        status = a.get("status")
        key = {"idle": "idle_s", "charging": "charging_s"}.get(status or "", "other_s")
        row["flight_s" if status in FLYING else key] += dt
        if status in FLYING:
            if a.get("lat") is not None and b.get("lat") is not None:
                row["m"] += haversine_m(a, b)
            row["used_pct"] += max(0.0, a["battery_pct"] - b["battery_pct"])
    return out


def raw_readings(clients: Clients, since: datetime, until: datetime) -> dict[str, list[Any]]:
    before = since - timedelta(minutes=20)  # the step into the window's first reading
    drones = {d for d, _ in clients.telemetry.touched(before, until)}
    found = clients.telemetry.readings_of(sorted(drones), before, until)
    return {d: rs for d, rs in found.items() if rs}


# --- checking each answer ---------------------------------------------------------------------


def check_stations(api: FlaskClient, clients: Clients, since: datetime, until: datetime) -> None:
    found = ordered(clients, since, until)
    pads = {code: s.pads for code, s in clients.stations.all().items()}
    want = station_figures(found, pads)
    got = get(api, "stations", since, until)
    assert span(got["window"]) == (since, until) and got["station"] is None
    assert [s["station"] for s in got["stations"]] == sorted(want["totals"])
    for s in got["stations"]:
        t = want["totals"][s["station"]]
        assert (s["orders"], s["pickups"], s["assigned"], s["pads"]) == (
            t["orders"],
            t["pickups"],
            len(t["waits"]),
            pads[s["station"]],
        )
        assert s["mean_wait_s"] == (
            pytest.approx(sum(t["waits"]) / len(t["waits"])) if t["waits"] else None
        )
        assert s["max_wait_s"] == (pytest.approx(max(t["waits"])) if t["waits"] else None)
    got_hours = {(h["station"], datetime.fromisoformat(h["hour"])): h for h in got["hours"]}
    assert set(got_hours) == set(want["hours"])
    for key, h in got_hours.items():
        w = want["hours"][key]
        assert (h["orders"], h["pickups"], h["pads"]) == (w["orders"], w["pickups"], pads[key[0]])
        assert h["pickups_per_pad"] == pytest.approx(w["pickups"] / pads[key[0]])
        waits = w["waits"]
        assert h["mean_wait_s"] == (pytest.approx(sum(waits) / len(waits)) if waits else None)
        assert h["max_wait_s"] == (pytest.approx(max(waits)) if waits else None)
    for s in got["stations"]:
        per_pad = [
            h["pickups_per_pad"] for (code, _), h in got_hours.items() if code == s["station"]
        ]
        assert s["peak_pickups_per_pad"] == pytest.approx(max(per_pad))


def check_on_time_and_times(
    api: FlaskClient, clients: Clients, since: datetime, until: datetime
) -> None:
    done = [d for d in ordered(clients, since, until) if d.status == "delivered"]
    on_time = get(api, "on-time", since, until)
    times = get(api, "delivery-times", since, until)
    for station in [None, *sorted({d.pickup_station for d in done})]:
        mine = [d for d in done if station in (None, d.pickup_station)]
        etas = [(delivered_at(d), (d.dispatch or {}).get("eta")) for d in mine]
        promised = [(at, ts(eta)) for at, eta in etas if eta is not None]
        hit = sum(1 for at, eta in promised if at is not None and at <= eta)
        row = (
            on_time["overall"]
            if station is None
            else next(r for r in on_time["stations"] if r["station"] == station)
        )
        assert (row["delivered"], row["with_eta"], row["on_time"]) == (
            len(mine),
            len(promised),
            hit,
        )
        assert row["on_time_rate"] == pytest.approx(hit / len(promised))
        spans = [
            d.delivery_s
            if d.delivery_s is not None
            else (delivered_at(d) - d.created_at).total_seconds()  # type: ignore[operator]
            for d in mine
        ]
        t = (
            times["overall"]
            if station is None
            else next(r for r in times["stations"] if r["station"] == station)
        )
        assert t["deliveries"] == len(spans)
        for p in (50, 90, 95, 99):
            assert t[f"p{p}_s"] == pytest.approx(nearest_rank(spans, p)), p
        assert t["max_s"] == pytest.approx(max(spans))
        assert t["mean_s"] == pytest.approx(sum(spans) / len(spans))
    assert (
        len(on_time["stations"]) == len(times["stations"]) == len({d.pickup_station for d in done})
    )


def reason(d: Delivery) -> str:
    note = d.timeline[-1].note or ""
    drone = d.drone_id or (d.dispatch or {}).get("drone_id")
    return re.sub(r"\d+(?:\.\d+)?", "N", note.replace(drone, "drone") if drone else note).strip()


def check_outcomes(api: FlaskClient, clients: Clients, since: datetime, until: datetime) -> None:
    found = ordered(clients, since, until)
    got = get(api, "outcomes", since, until)
    assert got["by_status"] == dict(Counter(d.status for d in found))
    assert got["orders"] == len(found)
    ended = Counter((d.status, reason(d)) for d in found if d.status in ("failed", "cancelled"))
    assert {(r["outcome"], r["reason"]): r["deliveries"] for r in got["reasons"]} == ended
    counts = [(r["outcome"], -r["deliveries"]) for r in got["reasons"]]
    assert counts == sorted(counts)  # per outcome, most frequent first


def check_alerts(api: FlaskClient, clients: Clients, since: datetime, until: datetime) -> None:
    home = {s.drone_id: s.home_station for s in clients.fleet.list(limit=10_000)}
    every = clients.alerts.list(limit=1000)
    assert len(every) < 1000
    opened = [a for a in every if since <= a.opened_at < until]
    want: Counter[tuple[str, str]] = Counter()
    critical: Counter[tuple[str, str]] = Counter()
    for a in opened:
        key = (a.type, home.get(a.drone_id, "?"))
        want[key] += 1
        critical[key] += a.severity == "critical"
    got = get(api, "alerts", since, until)
    assert {(r["type"], r["station"]): (r["alerts"], r["critical"]) for r in got["items"]} == {
        k: (n, critical[k]) for k, n in want.items()
    }
    assert got["total"] == len(opened)
    by_type = Counter(a.type for a in opened)
    assert {t["type"]: t["alerts"] for t in got["by_type"]} == by_type
    assert [t["alerts"] for t in got["by_type"]] == sorted(by_type.values(), reverse=True)


def check_rollup_answers(
    api: FlaskClient, clients: Clients, since: datetime, until: datetime
) -> dict[str, Any]:
    """Utilisation and energy over the whole minutes of the window, against the raw readings."""
    lo, hi = ceil(since, timedelta(minutes=1)), floor(until, timedelta(minutes=1))
    want = usage(raw_readings(clients, since, until), lo, hi)
    specs = {s.drone_id: s for s in clients.fleet.list(limit=10_000)}
    got = get(api, "utilisation", since, until)
    assert span(got["covered"]) == (lo, hi)
    rows = {(date.fromisoformat(r["day"]), r["drone_id"]): r for r in got["drones"]}
    assert set(rows) == set(want)
    for key, r in rows.items():
        w = want[key]
        for field in ("flight_s", "idle_s", "charging_s", "other_s"):
            assert r[field] == pytest.approx(w[field], abs=0.05), (key, field)
        observed = sum(w[f] for f in ("flight_s", "idle_s", "charging_s", "other_s"))
        assert r["observed_s"] == pytest.approx(observed, abs=0.1)
        share = r["flight_share"]
        assert share == (pytest.approx(w["flight_s"] / observed, abs=1e-6) if observed else None)
        spec = specs.get(key[1])
        assert (r["model"], r["home_station"]) == (
            (spec.model, spec.home_station) if spec else (None, None)
        )
    fleet = {date.fromisoformat(f["day"]): f for f in got["fleet"]}
    days = {
        lo.date() + timedelta(days=i)
        for i in range(((hi - timedelta(microseconds=1)).date() - lo.date()).days + 1)
    }
    assert set(fleet) == days
    for day, f in fleet.items():
        mine = [w for (d, _), w in want.items() if d == day]
        assert f["drones"] == len(mine)
        assert f["flight_s"] == pytest.approx(sum(w["flight_s"] for w in mine), abs=0.5)
        assert f["charging_s"] == pytest.approx(sum(w["charging_s"] for w in mine), abs=0.5)

    energy = get(api, "energy", since, until)
    models: dict[str, dict[str, Any]] = defaultdict(lambda: {"drones": set(), "m": 0.0, "wh": 0.0})
    for (_, drone), w in want.items():
        if drone in specs:
            m = models[specs[drone].model]
            m["drones"].add(drone)
            m["m"] += w["m"]
            m["wh"] += w["used_pct"] / 100 * specs[drone].battery_capacity_wh
    assert [e["model"] for e in energy["items"]] == sorted(models)
    for e in energy["items"]:
        m = models[e["model"]]
        assert e["drones"] == len(m["drones"])
        assert e["km"] == pytest.approx(m["m"] / 1000, rel=1e-4, abs=1e-4)
        assert e["energy_wh"] == pytest.approx(m["wh"], rel=1e-4, abs=1e-3)
        assert e["wh_per_km"] == (
            pytest.approx(m["wh"] / (m["m"] / 1000), rel=1e-3) if m["m"] else None
        )
        rated = [specs[d].consumption_wh_per_km for d in m["drones"]]
        assert e["rated_wh_per_km"] == pytest.approx(sum(rated) / len(rated))
    return got


def check_everything(
    api: FlaskClient, clients: Clients, since: datetime, until: datetime
) -> dict[str, Any]:
    check_stations(api, clients, since, until)
    check_on_time_and_times(api, clients, since, until)
    check_outcomes(api, clients, since, until)
    check_alerts(api, clients, since, until)
    return check_rollup_answers(api, clients, since, until)


# --- the known day ---------------------------------------------------------------------------

NEXT = MIDNIGHT + timedelta(days=1)


@pytest.fixture
def known_day(clients: Clients) -> Clients:
    """archive_data's day, its rollups rebuilt; the clock an hour after the day closed."""
    make_day(clients)
    clients.rollups.rebuild(MIDNIGHT - timedelta(hours=1), AFTER)
    return clients


def test_the_known_day_answers_as_its_records_say(known_day: Clients) -> None:
    api = api_client(known_day, "viewer")
    utilisation = check_everything(api, known_day, MIDNIGHT, NEXT)

    # By hand (archive_data's docstrings): three delivered at 12TH, A and C by their ETA.
    on_time = get(api, "on-time", MIDNIGHT, NEXT)["overall"]
    assert (on_time["delivered"], on_time["with_eta"], on_time["on_time"]) == (3, 3, 2)
    times = get(api, "delivery-times", MIDNIGHT, NEXT)["overall"]
    assert (times["p50_s"], times["p90_s"], times["max_s"]) == (20 * 60, 35 * 60, 35 * 60)
    outcomes = get(api, "outcomes", MIDNIGHT, NEXT)
    assert outcomes["by_status"] == {"delivered": 3, "failed": 1, "cancelled": 1, "picked_up": 1}
    assert outcomes["reasons"] == [
        {"outcome": "cancelled", "reason": "cancelled by request", "deliveries": 1},
        {
            "outcome": "failed",
            "reason": "drone reported failure: insufficient battery",
            "deliveries": 1,
        },
    ]
    alerts = get(api, "alerts", MIDNIGHT, NEXT)
    assert alerts["items"] == [
        {"type": "low_battery", "station": "12TH", "alerts": 1, "critical": 1},
        {"type": "offline", "station": "?", "alerts": 1, "critical": 0},
    ]
    d1 = next(r for r in utilisation["drones"] if r["drone_id"] == "d-1")
    assert (d1["flight_s"], d1["idle_s"], d1["charging_s"]) == (60, 30, 29)
    d3 = next(r for r in utilisation["drones"] if r["drone_id"] == "d-3")
    assert (d3["other_s"], d3["model"]) == (120, None)  # no status reported; not registered
    energy = {e["model"]: e for e in get(api, "energy", MIDNIGHT, NEXT)["items"]}
    assert set(energy) == {"x4", "x8"}  # d-3 is not registered: no model, no capacity
    assert energy["x4"]["energy_wh"] == pytest.approx(6.0 / 100 * 500)

    # The archive's own KPIs, on DuckDB over the day exported, count the same steps.
    known_day.archive_exporter.export_day(DAY)
    kpis = known_day.archive_sql.kpis(["drone_utilisation", "energy_per_km"])
    archived_energy = {r["model"]: r for r in kpis["energy_per_km"].records()}
    assert set(archived_energy) == set(energy)
    for model, e in energy.items():
        a = archived_energy[model]
        assert (e["km"], e["energy_wh"], e["wh_per_km"]) == pytest.approx(
            (a["km"], a["energy_wh"], a["wh_per_km"]), rel=1e-4
        )
    archived = {r["drone_id"]: r for r in kpis["drone_utilisation"].records()}
    assert set(archived) == {r["drone_id"] for r in utilisation["drones"]}
    for r in utilisation["drones"]:
        a = archived[r["drone_id"]]
        assert (r["flight_s"], r["idle_s"], r["charging_s"]) == pytest.approx(
            (a["flight_s"], a["idle_s"], a["charging_s"])
        )
        assert r["observed_s"] == pytest.approx(a["observed_s"])


def test_a_station_narrows_every_answer(known_day: Clients) -> None:
    api = api_client(known_day, "operator")
    q = {"station": "EMBR"}
    stations = get(api, "stations", MIDNIGHT, NEXT, **q)
    assert stations["station"] == "EMBR"
    assert [(s["station"], s["orders"], s["pickups"]) for s in stations["stations"]] == [
        ("EMBR", 2, 1)
    ]
    assert {h["station"] for h in stations["hours"]} == {"EMBR"}
    assert get(api, "on-time", MIDNIGHT, NEXT, **q)["overall"]["delivered"] == 0
    outcomes = get(api, "outcomes", MIDNIGHT, NEXT, **q)
    assert outcomes["by_status"] == {"failed": 1, "cancelled": 1}
    # Drones based at EMBR: d-2 only (x8), which raised no alert that day.
    assert [r["drone_id"] for r in get(api, "utilisation", MIDNIGHT, NEXT, **q)["drones"]] == [
        "d-2"
    ]
    assert [e["model"] for e in get(api, "energy", MIDNIGHT, NEXT, **q)["items"]] == ["x8"]
    assert get(api, "alerts", MIDNIGHT, NEXT, **q)["items"] == []
    twelfth = get(api, "alerts", MIDNIGHT, NEXT, station="12TH")
    assert twelfth["total"] == 1 and twelfth["by_type"] == [
        {"type": "low_battery", "alerts": 1, "critical": 1}
    ]


def test_an_empty_window_answers_zero(known_day: Clients) -> None:
    api = api_client(known_day, "viewer")
    since, until = MIDNIGHT - timedelta(days=30), MIDNIGHT - timedelta(days=28)
    assert get(api, "stations", since, until) | {"window": None} == {
        "window": None,
        "station": None,
        "stations": [],
        "hours": [],
    }
    assert get(api, "on-time", since, until)["overall"] == {
        "delivered": 0,
        "with_eta": 0,
        "on_time": 0,
        "on_time_rate": None,
    }
    times = get(api, "delivery-times", since, until)
    assert times["overall"]["deliveries"] == 0 and times["overall"]["p50_s"] is None
    assert times["stations"] == []
    assert get(api, "outcomes", since, until) | {"window": None} == {
        "window": None,
        "station": None,
        "orders": 0,
        "by_status": {},
        "reasons": [],
    }
    utilisation = get(api, "utilisation", since, until)
    assert utilisation["drones"] == [] and len(utilisation["fleet"]) == 2
    assert all(f["drones"] == 0 and f["flight_share"] is None for f in utilisation["fleet"])
    assert get(api, "energy", since, until)["items"] == []
    assert get(api, "alerts", since, until) | {"window": None} == {
        "window": None,
        "station": None,
        "total": 0,
        "by_type": [],
        "items": [],
    }
    # Under a minute: no whole minute to read rollups for.
    short = get(
        api, "utilisation", MIDNIGHT + timedelta(seconds=10), MIDNIGHT + timedelta(seconds=50)
    )
    assert (short["covered"], short["fleet"], short["drones"]) == (None, [], [])


def test_the_default_window_is_the_last_week_of_the_clock(known_day: Clients) -> None:
    api = api_client(known_day, "viewer")
    for what in ENDPOINTS:
        got = body(api.get(f"{API}/{what}"))
        assert span(got["window"]) == (AFTER - timedelta(days=7), AFTER)
    only_until = body(api.get(f"{API}/outcomes", query_string={"until": iso(NEXT)}))
    assert span(only_until["window"]) == (NEXT - timedelta(days=7), NEXT)
    assert only_until["orders"] == 7  # F, the day before, included


@pytest.mark.parametrize("what", ENDPOINTS)
def test_roles_and_bad_windows(known_day: Clients, what: str) -> None:
    url = f"{API}/{what}"
    assert api_client(known_day, "customer", "alice").get(url).status_code == 403
    assert api_client(known_day, "admin").get(url).status_code == 200
    api = api_client(known_day, "viewer")
    assert api.get(url).status_code == 200
    inverted = {"since": iso(NEXT), "until": iso(MIDNIGHT)}
    assert "before until" in assert_error(api.get(url, query_string=inverted), 400, "since")
    same = {"since": iso(MIDNIGHT), "until": iso(MIDNIGHT)}
    assert_error(api.get(url, query_string=same), 400, "since")
    long = {"since": iso(NEXT - timedelta(days=93)), "until": iso(NEXT)}
    assert "at most 92 days" in assert_error(api.get(url, query_string=long), 400, "since")
    ok = {"since": iso(NEXT - timedelta(days=92)), "until": iso(NEXT)}
    assert api.get(url, query_string=ok).status_code == 200
    assert_error(api.get(url, query_string={"since": "yesterday"}), 400, "since")
    assert_error(api.get(url, query_string={"station": "no such!"}), 400, "station")
    assert "NOPE" in assert_error(api.get(url, query_string={"station": "NOPE"}), 404, "station")


# --- a day of simulated history ------------------------------------------------------------------

# The clock 5 minutes into the hour after the history: its last hour has not settled.
SIM_NOW = datetime(2026, 11, 2, 5, 5, tzinfo=UTC)
SIM_UNTIL = datetime(2026, 11, 2, 5, tzinfo=UTC)
SIM_SINCE = SIM_UNTIL - timedelta(hours=12)  # across a midnight


@pytest.fixture
def simulated(clients: Clients) -> tuple[Clients, ManualClock]:
    clock = ManualClock(SIM_NOW)
    clients.__dict__["clock"] = clock
    bootstrap(clients)  # the stations, with their pads
    seeder = clients.history_seeder
    summary = seeder.run(timedelta(hours=12), seeder.drones(3), 11, 10.0, 60.0, orders_per_day=200)
    assert (summary.since, summary.until) == (SIM_SINCE, SIM_UNTIL)
    assert summary.statuses["delivered"] > 30 and summary.alerts > 0, summary.lines()
    clients.rollups.rebuild(SIM_SINCE - timedelta(minutes=5), SIM_UNTIL)
    return clients, clock


def test_simulated_history_answers_as_its_records_say(
    simulated: tuple[Clients, ManualClock],
) -> None:
    clients, clock = simulated
    api = api_client(clients, "viewer")
    whole = check_everything(api, clients, SIM_SINCE, SIM_UNTIL)
    assert sum(f["flight_s"] for f in whole["fleet"]) > 3600
    assert sum(f["charging_s"] for f in whole["fleet"]) > 0

    # Ragged edges: minute rollups at both ends, the hours between from the hour rollups.
    since = SIM_SINCE + timedelta(hours=1, minutes=30, seconds=30)
    until = SIM_UNTIL - timedelta(seconds=15)
    unsettled = check_rollup_answers(api, clients, since, until)
    clock.advance(30 * 60)  # the last hour has settled: read from its hour rollup now
    settled = check_rollup_answers(api, clients, since, until)
    for kind in ("drones", "fleet"):
        assert len(settled[kind]) == len(unsettled[kind])
        for a, b in zip(settled[kind], unsettled[kind], strict=True):
            assert a.keys() == b.keys()
            assert {k: pytest.approx(v) for k, v in a.items()} == b
    check_stations(api, clients, since, until)
