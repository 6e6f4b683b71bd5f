"""Every query SkyHive issues is served by an index (``adapters/mongo_indexes``).

(a) Every documented query shape (``QUERIES``) has an index in ``INDEXES`` whose keys are its
    equality fields, then its sort (directions checked), then its range field; and after the
    app's index setup (``bootstrap``) the embedded server has such an index for every shape
    of this database. The embedded server keeps neither index names nor directions, nor
    ``_id`` in a compound index (``mongo_capabilities.compound_id``): there indexes are
    compared by fields, without the sorts' ``_id`` tie-break.
(b) nx-27017 answers ``explain`` for ``find`` only (a stub plan for other commands), with
    SQLite's query plan, which leaves the sort out. It can use an index only for an equality
    on ``_id`` or on a field with an index of its own: its equality on any other field also
    matches arrays, a predicate SQLite cannot serve from a compound index, and it filters
    ranges in Python. So the plans are asserted for those shapes; for compound prefixes,
    sorts and ranges, (a) is the assertion.
(c) Completeness: every filter the API issues for a representative set of requests
    (captured with pymongo's command monitoring) is a documented shape, so a new query
    without one fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from billing_data import delivered, finish, order, world
from flask.testing import FlaskClient
from pymongo import MongoClient, monitoring

from auth_helpers import api_client
from skyhive.adapters import mongo
from skyhive.adapters.money import CENTS, MoneyCodec
from skyhive.adapters.mongo_capabilities import PROBE_PREFIX, capabilities, index_in_plan
from skyhive.adapters.mongo_indexes import (
    INDEXES,
    QUERIES,
    Query,
    conditions,
    indexes_for,
    server_keys,
)
from skyhive.api import create_app
from skyhive.bootstrap import bootstrap
from skyhive.domain.alert_config import AlertConfig
from skyhive.domain.alert_lifecycle import fold
from skyhive.domain.alert_rules import Context, Memory, evaluate
from skyhive.domain.billing import Period
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.history import group_readings
from skyhive.domain.telemetry import validate_telemetry
from skyhive.ports.credentials import NewCredential
from skyhive.settings import Settings
from skyhive.wiring import Clients

Keys = Sequence[tuple[str, Any]]  # (field, direction); direction None: not known
ID_INDEX: tuple[Keys, bool] = ((("_id", 1),), True)  # every collection's, unique
# The one index no SkyHive query uses: geo queries over stations by other tools.
# Made for what they do, not for a query: the map's geo index, TTL indexes.
QUERYLESS = {("stations", "location_2dsphere"), ("rollups_minute", "expire_start")}


def serves(keys: Keys, unique: bool, q: Query) -> bool:
    """The rule of ``mongo_indexes``: a unique index on equality fields only, or keys that
    are the equality fields, then the sort (all directions as asked or all reversed), then
    the range fields not sorted on."""
    fields = [f for f, _ in keys]
    if unique and set(fields) <= set(q.eq):
        return True
    n = len(q.eq)
    if set(fields[:n]) != set(q.eq) or len(fields) < n:
        return False
    rest = list(keys[n:])
    if q.sort:
        head, rest = rest[: len(q.sort)], rest[len(q.sort) :]
        if [f for f, _ in head] != [f for f, _ in q.sort]:
            return False
        known = [(d, s) for (_, d), (_, s) in zip(head, q.sort, strict=True) if d is not None]
        if not (all(d == s for d, s in known) or all(d == -s for d, s in known)):
            return False
    sorted_on = {f for f, _ in q.sort}
    ranged = [f for f in q.range if f not in sorted_on]
    return [f for f, _ in rest[: len(ranged)]] == ranged


def test_every_query_shape_has_an_index_in_the_table() -> None:
    for q in QUERIES:
        if q.scan:  # a whole collection on purpose: nothing an index would narrow
            assert not (q.eq or q.sort or q.range), q
            continue
        assert q.eq or q.sort or q.range, f"say why it reads the whole collection: {q}"
        table = [(ix.keys, ix.unique) for ix in INDEXES if ix.collection == q.collection]
        usable = [ID_INDEX, *((k, u) for k, u in table)]
        assert any(serves(k, u, q) for k, u in usable), f"no index serves {q}"
    for ix in INDEXES:
        served = [q for q in QUERIES if q.collection == ix.collection and not q.scan]
        if (ix.collection, ix.name) not in QUERYLESS:
            assert any(serves(ix.keys, ix.unique, q) for q in served), f"{ix} serves no query"


def test_the_architecture_doc_lists_every_index() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = {
        tuple(re.findall(r"`([^`]+)`", line)[:2])
        for line in doc.splitlines()
        if line.startswith("| `")
    }
    assert {(ix.collection, ix.name) for ix in INDEXES} <= rows


def test_the_rule_refuses_what_needs_a_sort_in_memory_or_more_keys() -> None:
    paged = Query("x", "t", eq=("status",), sort=(("at", -1), ("_id", 1)), range=("at",))
    assert serves((("status", 1), ("at", -1), ("_id", 1)), False, paged)
    assert serves((("status", -1), ("at", 1), ("_id", -1)), False, paged)  # all reversed
    assert not serves((("status", 1), ("at", -1)), False, paged)  # ties sorted in memory
    assert not serves((("status", 1), ("at", -1), ("_id", -1)), False, paged)  # mixed
    assert not serves((("at", -1), ("status", 1), ("_id", 1)), False, paged)  # sort first
    two = Query("x", "t", eq=("customer_id", "status"))
    assert not serves((("customer_id", 1),), False, two)
    assert serves((("customer_id", 1),), True, two)
    due = Query("x", "t", eq=("status",), range=("due",))
    assert serves((("status", 1), ("due", 1)), False, due)
    assert not serves((("due", 1), ("status", 1)), False, due)


def _active(clients: Clients) -> set[str | None]:
    """The ``when`` values of the shapes this database has (None: every database)."""
    return {None, *conditions(clients.db)}


def _server_indexes(clients: Clients, collection: str) -> list[dict[str, Any]]:
    return [dict(ix) for ix in clients.db[collection].list_indexes()]


def test_the_server_has_an_index_for_every_query_shape_after_setup(clients: Clients) -> None:
    bootstrap(clients)
    db = clients.db
    caps = capabilities(db)
    active = _active(clients)
    assert "buckets" in active and "geo" not in active  # what the embedded server gets
    for ix in indexes_for(db):  # every index of the table is there, as the server keeps it
        listed = {
            tuple(i["key"]): i.get("unique", False) for i in _server_indexes(clients, ix.collection)
        }
        fields = tuple(f for f, _ in server_keys(db, ix))
        assert listed.get(fields) == ix.unique, (ix, listed)
    for q in QUERIES:
        if q.scan or q.when not in active:
            continue
        if not caps.compound_id:
            q = Query(q.collection, q.by, q.eq, tuple(s for s in q.sort if s[0] != "_id"), q.range)
        keys = [
            ([(f, None) for f in i["key"]], bool(i.get("unique")) or list(i["key"]) == ["_id"])
            for i in _server_indexes(clients, q.collection)
        ]
        assert any(serves(k, u, q) for k, u in keys), f"no index on the server serves {q}"


def test_the_embedded_server_uses_the_index_where_its_plan_can(clients: Clients) -> None:
    bootstrap(clients)
    db = clients.db
    assert capabilities(db).explain
    active = _active(clients)
    explained = 0
    for q in QUERIES:
        if len(q.eq) != 1 or q.when not in active:
            continue
        [field] = q.eq
        by_name = {str(i["name"]): list(i["key"]) for i in _server_indexes(clients, q.collection)}
        by_name[f"idx_{q.collection}_id"] = ["_id"]  # its _id index, listed as _id_
        if field != "_id" and [field] not in by_name.values():
            continue  # only a compound index: it scans (see the module's docstring)
        name = index_in_plan(db[q.collection].find({field: "x"}).explain())
        assert name is not None and by_name.get(name) == [field], (q, name)
        explained += 1
    assert explained >= 15


# --- (c) the filters the API issues ----------------------------------------------------------

FILTERING = {"find", "aggregate", "count", "distinct", "findAndModify", "update", "delete"}


class Recorder(monitoring.CommandListener):
    """The filtering commands sent to one database (not the capability probe's scratch)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.commands: list[tuple[str, Mapping[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if event.database_name != self.database or name not in FILTERING:
            return
        if not str(event.command[name]).startswith(PROBE_PREFIX):
            self.commands.append((name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class RecordedClients(Clients):
    """The app's clients, its MongoDB client with the recorder listening."""

    def __init__(self, settings: Settings, recorder: Recorder) -> None:
        super().__init__(settings)
        self.recorder = recorder

    @cached_property
    def mongo_client(self) -> MongoClient[mongo.Document]:
        return MongoClient(
            self.settings.mongo_uri_or_default(), tz_aware=True, event_listeners=[self.recorder]
        )


def filters(name: str, cmd: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any], list[Any]]]:
    """(collection, filter, sort) of each filter in a command; an aggregation's is its
    leading ``$match`` (none: the whole collection)."""
    coll = str(cmd[name])
    if name == "aggregate":
        first = cmd["pipeline"][0] if cmd["pipeline"] else {}
        yield coll, first.get("$match", {}), []
    elif name in ("update", "delete"):
        for op in cmd[f"{name}s"]:
            yield coll, op["q"], []
    else:
        query = cmd.get("filter", cmd.get("query", {}))
        yield coll, query, list(dict(cmd.get("sort") or {}).items())


def fields(query: Mapping[str, Any]) -> set[str]:
    out: set[str] = set()
    for key, value in query.items():
        if key in ("$and", "$or", "$nor"):
            out |= set().union(*(fields(q) for q in value))
        else:
            out.add(key)  # an operator here ($expr, $where...) matches no shape
    return out


def shape_of(collection: str, query: Mapping[str, Any], sort: list[Any]) -> Query | None:
    found = fields(query)
    order = [tuple(s) for s in sort]
    for q in QUERIES:
        allowed = set(q.eq) | set(q.range) | set(q.residual)
        if q.collection == collection and set(q.eq) <= found <= allowed and order == list(q.sort):
            return q
    return None


AT = datetime(2026, 10, 12, 15, tzinfo=UTC)


@pytest.fixture
def world_clients(make_settings: Any) -> Iterator[RecordedClients]:
    """Stations, customers, deliveries in several states, a month billed, alerts, history,
    a registered drone and a geofence; the recorder emptied once they are in."""
    settings = make_settings()
    c = RecordedClients(settings, Recorder(settings.mongodb_db))
    svc = world(c, "alice", "bob")
    delivered(c, svc, "alice", "12TH", AT)
    delivered(c, svc, "bob", "EMBR", AT + timedelta(hours=1))
    finish(c, order(svc, "alice", "12TH", AT + timedelta(hours=2)), "cancelled", AT)
    order(svc, "alice", "12TH", AT + timedelta(hours=3))
    c.billing.run(Period(2026, 10), datetime(2026, 11, 1, 1, tzinfo=UTC))
    c.fleet.ensure_registered(
        [DroneSpec.model_validate({"drone_id": "d-1", "home_station": "12TH"})]
    )
    readings = [
        validate_telemetry(
            {
                "drone_id": "d-1",
                "seq": s,
                "ts": int(AT.timestamp() * 1000) + s * 1000,
                "battery_pct": 30 - s,
            }
        )
        for s in range(20)
    ]
    c.telemetry.store(group_readings(readings))
    cfg = AlertConfig()
    found = [
        (t.drone_id, f) for t in readings for f in evaluate(t, Context(cfg.defaults), Memory())
    ]
    c.alerts.apply(fold(found, {}, cfg.resolves_itself)[0])
    c.recorder.commands.clear()
    yield c
    c.close()


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _get(client: FlaskClient, url: str, **kwargs: Any) -> Any:
    resp = client.open(url, **kwargs)
    assert resp.status_code < 300, (url, resp.status_code, resp.data[:300])
    return resp.get_json(silent=True)


def test_every_filter_the_api_issues_is_a_documented_shape(world_clients: RecordedClients) -> None:
    c = world_clients
    app = create_app(c.settings, c)
    admin = api_client(c, "admin", app=app)
    alice = api_client(c, "customer", "alice", app=app)
    since = iso(AT - timedelta(days=1))
    until = iso(AT + timedelta(days=1))
    window = f"since={since}&until={until}"
    api = "/api/v1"

    alerts = _get(admin, f"{api}/alerts?limit=1")["items"]
    for query in (
        "",
        "?state=open",
        "?drone_id=d-1",
        "?state=open&severity=critical",
        f"?{window}",
    ):
        _get(admin, f"{api}/alerts{query}")
    _get(admin, f"{api}/alerts?limit=1&before={alerts[0]['id']}")
    _get(admin, f"{api}/alerts/{alerts[0]['id']}")
    _get(admin, f"{api}/alerts/{alerts[0]['id']}/ack", method="POST", json={"note": "seen"})

    deliveries = _get(admin, f"{api}/deliveries?limit=1")["items"]
    for query in (
        "?status=delivered",
        "?customer_id=alice",
        "?drone_id=d-1",
        "?customer_id=alice&status=pending",
    ):
        _get(admin, f"{api}/deliveries{query}")
    _get(admin, f"{api}/deliveries?limit=1&before={deliveries[0]['id']}")
    _get(admin, f"{api}/deliveries/{deliveries[0]['id']}")
    mine = _get(alice, f"{api}/deliveries?limit=1")["items"]
    _get(alice, f"{api}/deliveries?limit=1&before={mine[0]['id']}")
    pending = _get(admin, f"{api}/deliveries?status=pending")["items"]
    _get(admin, f"{api}/deliveries/{pending[0]['id']}/cancel", method="POST", json={})
    new = {
        "customer_id": "alice",
        "pickup_station": "12TH",
        "package": {"weight_kg": 1.0, "size": "small"},
    }
    _get(
        admin,
        f"{api}/deliveries",
        method="POST",
        json=new | {"destination": {"lat": 37.81, "lon": -122.27}},
    )

    invoices = _get(admin, f"{api}/invoices?limit=1")["items"]
    for query in ("?customer_id=alice", "?status=pending"):
        _get(admin, f"{api}/invoices{query}")
    _get(admin, f"{api}/invoices?limit=1&before={invoices[0]['id']}")
    _get(alice, f"{api}/invoices")
    _get(admin, f"{api}/invoices/{invoices[0]['id']}/pay", method="POST")

    _get(admin, f"{api}/customers")
    _get(admin, f"{api}/customers?email=Alice@example.com")
    _get(admin, f"{api}/customers/bob")
    _get(admin, f"{api}/customers/bob/revenue")
    _get(admin, f"{api}/customers/bob", method="PATCH", json={"name": "Bob B."})
    _get(admin, f"{api}/analytics/revenue?group_by=station")
    _get(admin, f"{api}/analytics/top-customers")
    _get(admin, f"{api}/overview")

    _get(admin, f"{api}/drones/d-1/telemetry?{window}")
    chart = f"bucket_s=10&since={iso(AT)}&until={iso(AT + timedelta(hours=1))}"
    _get(admin, f"{api}/drones/d-1/telemetry?{chart}")
    _get(admin, f"{api}/fleet/drones")
    _get(admin, f"{api}/fleet/drones?status=active")
    _get(admin, f"{api}/fleet/drones/d-1")
    _get(admin, f"{api}/stations")
    _get(admin, f"{api}/forecasts")
    _get(admin, f"{api}/forecasts/12TH")
    viewer = api_client(c, "viewer", app=app)  # a key of its own: admin's rate limit
    ragged = (
        f"since={iso(AT - timedelta(hours=5, seconds=30))}&until={iso(AT + timedelta(hours=2))}"
    )
    for what in ("stations", "on-time", "delivery-times", "outcomes", "utilisation", "energy"):
        _get(viewer, f"{api}/analytics/{what}?{ragged}&station=12TH")
    _get(viewer, f"{api}/analytics/alerts?{window}")
    zone = {
        "name": "z",
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [0, 1], [1, 1], [0, 0]]]},
    }
    zone_id = _get(admin, f"{api}/geofences", method="POST", json=zone)["id"]
    _get(admin, f"{api}/geofences")
    _get(admin, f"{api}/geofences/{zone_id}")

    keys = _get(admin, f"{api}/keys")["items"]
    _get(admin, f"{api}/keys?after={keys[0]['id']}")
    _get(admin, f"{api}/keys/{keys[0]['id']}")
    _get(admin, f"{api}/audit")
    _get(admin, f"{api}/audit?key_id={keys[0]['id']}&{window}")

    assert len(documented(c.recorder)) >= 35  # the shapes the requests above reached


def test_every_filter_the_workers_issue_is_a_documented_shape(
    world_clients: RecordedClients,
) -> None:
    """What the dispatcher, billing, the notifier, the brokers, the archiver and the tools
    ask, through the same repositories."""
    c = world_clients
    later = datetime(2027, 1, 1, tzinfo=UTC)
    c.billing.run(Period(2026, 10), later)  # again: the period's invoices, nothing new
    c.invoices.mark_overdue(later)
    c.deliveries.requeue_pending()
    c.notifications.was_sent("some-alert", "slack")
    c.credentials.put_many([NewCredential("d-1", "drone", "$7$hash", "test")])
    c.credentials.get("d-1")
    c.credentials.changed_since(0)
    c.credentials.active()
    c.api_keys.active_admin_exists(later)
    c.fleet.sync_registered_set()
    reading = {"drone_id": "d-2", "seq": 1, "ts": int(AT.timestamp() * 1000), "battery_pct": 50}
    c.telemetry.store(group_readings([validate_telemetry(reading)]))
    c.telemetry.count_for("d-2")
    c.telemetry.reading_ids()
    c.telemetry.migrate_readings()
    c.station_rollups.rebuild(AT - timedelta(hours=1), AT + timedelta(hours=4))
    c.forecaster.run(AT + timedelta(hours=4))  # every station: too little history, no fit
    c.archive_exporter.export_day(AT.date())
    c.archive_exporter.verify(AT.date())
    c.archive_exporter.run_due(AT + timedelta(days=1, hours=1))  # its lease; the days before
    c.archive_exporter.records()
    assert MoneyCodec(c.db).mode == CENTS
    assert len(documented(c.recorder)) >= 15


def documented(recorder: Recorder) -> set[Query]:
    """The documented shapes of every filter recorded; fails on one that is none of them."""
    seen: set[Query] = set()
    unmatched = []
    for name, cmd in recorder.commands:
        for coll, query, sort in filters(name, cmd):
            q = shape_of(coll, query, sort)
            if q is None:
                unmatched.append((name, coll, query, sort))
            else:
                seen.add(q)
    assert not unmatched, "filters no documented query shape describes (mongo_indexes.QUERIES)"
    return seen
