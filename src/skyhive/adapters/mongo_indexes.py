"""Every MongoDB index SkyHive makes (``INDEXES``, the one source: :func:`ensure_indexes`
makes them, docs/architecture.md lists them) and every query shape it issues (``QUERIES``).

A query shape is what decides which index serves a query: the collection, the fields
compared for equality (``$in`` included), the sort, and the fields bounded by a range. Its
``residual`` fields are filtered on the documents the index found: one record (by ``_id``),
one owner's few (a customer's, a drone's, an alert's), or a walk in the index's order that
ends when the page is full. ``scan`` says why a read takes a whole collection on purpose. An
index serves a shape when its keys are the equality fields (any order), then the sort (every
direction as asked or every one reversed), then any range field not sorted on; or when it is
unique and all its keys are equality fields. ``tests/integration/test_query_indexes.py``
holds the two together, and fails on a filter the API issues that no shape here describes.

``when`` marks what only some databases have: ``geo`` (a server with 2dsphere queries),
``buckets`` or ``timeseries`` (the layout of ``telemetry``, ``telemetry_repo``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from pymongo.database import Database
from pymongo.errors import OperationFailure

from skyhive.adapters.mongo import Document
from skyhive.adapters.mongo_capabilities import capabilities
from skyhive.adapters.telemetry_repo import ensure_collection, is_timeseries

log = logging.getLogger(__name__)

ASC, DESC = 1, -1
INDEX_NOT_FOUND = 27
Key = tuple[str, int | str]


@dataclass(frozen=True)
class Index:
    collection: str
    name: str
    keys: tuple[Key, ...]
    why: str
    unique: bool = False
    when: str | None = None


@dataclass(frozen=True)
class Query:
    collection: str
    by: str  # who issues it
    eq: tuple[str, ...] = ()
    sort: tuple[tuple[str, int], ...] = ()
    range: tuple[str, ...] = ()
    residual: tuple[str, ...] = ()
    scan: str = ""
    when: str | None = None


def newest(field: str) -> tuple[tuple[str, int], ...]:
    """Newest first, ties by id: the order of every paged list (``mongo.find_page``)."""
    return ((field, DESC), ("_id", ASC))


def _by_time(collection: str, name: str, field: str, *first: str, why: str) -> Index:
    return Index(collection, name, (*((f, ASC) for f in first), *newest(field)), why)


INDEXES: tuple[Index, ...] = (
    Index(
        "telemetry",
        "drone_start",
        (("drone_id", ASC), ("start", DESC)),
        "a drone's buckets in a window, newest first",
        when="buckets",
    ),
    Index(
        "telemetry",
        "drone_ts",
        (("drone_id", ASC), ("ts", DESC)),
        "a drone's readings in a window, newest first",
        when="timeseries",
    ),
    _by_time("alerts", "opened_id", "opened_at", why="every alert, newest first"),
    _by_time(
        "alerts",
        "state_opened_id",
        "opened_at",
        "state",
        why="alerts in a state, newest first; the open ones counted by severity",
    ),
    _by_time("alerts", "drone_opened_id", "opened_at", "drone_id", why="a drone's alerts"),
    Index(
        "alert_notifications",
        "alert_at_attempt",
        (("alert_id", ASC), ("at", ASC), ("attempt", ASC)),
        "an alert's notification attempts, oldest first; whether a channel was told",
    ),
    Index(
        "stations",
        "location_2dsphere",
        (("location", "2dsphere"),),
        "geo queries over stations (SkyHive ranks the cached stations itself)",
        when="geo",
    ),
    _by_time("deliveries", "created_id", "created_at", why="every delivery; today's"),
    _by_time(
        "deliveries",
        "status_created_id",
        "created_at",
        "status",
        why="deliveries in a status; the pending ones at dispatcher start",
    ),
    _by_time("deliveries", "customer_created_id", "created_at", "customer_id", why="a customer's"),
    _by_time("deliveries", "drone_created_id", "created_at", "drone_id", why="a drone's"),
    Index(
        "deliveries",
        "billing",
        (("status", ASC), ("delivered_month", ASC)),
        "a month's delivered deliveries: billing, the overview's unbilled value",
    ),
    Index(
        "drones",
        "status_id",
        (("status", ASC), ("_id", ASC)),
        "the registry by status; the active drones' payloads",
    ),
    Index(
        "customers",
        "email_key",
        (("email_key", ASC),),
        "one customer per address, any case; finding a customer by address",
        unique=True,
    ),
    _by_time("invoices", "date_id", "invoice_date", why="every invoice"),
    _by_time("invoices", "customer_date_id", "invoice_date", "customer_id", why="a customer's"),
    _by_time("invoices", "status_date_id", "invoice_date", "status", why="invoices in a status"),
    Index(
        "invoices",
        "status_due",
        (("status", ASC), ("due_date", ASC)),
        "pending invoices past due",
    ),
    Index("invoices", "period", (("period", ASC),), "a billing period's invoices"),
    Index(
        "api_keys",
        "role",
        (("role", ASC), ("revoked_at", ASC)),
        "whether an active admin key exists",
    ),
    Index("audit", "at_id", (("at", DESC), ("_id", DESC)), "the audit log, newest first"),
    Index(
        "audit",
        "key_at_id",
        (("key_id", ASC), ("at", DESC), ("_id", DESC)),
        "one key's audit log",
    ),
    Index(
        "mqtt_credentials",
        "changed",
        (("changed_ms", ASC),),
        "credentials changed since a broker's last look",
    ),
)

# Made by earlier versions, replaced by the ones above (their keys lacked a sort's tie-break
# or served no query): dropped where an index of that name exists. Only by a name listed
# there: the embedded server names its indexes itself and would take a name it does not list
# for the fields it spells, and drop the index a query uses.
SUPERSEDED: tuple[tuple[str, str], ...] = (
    ("alerts", "drone_type_state"),
    ("alerts", "state_opened"),
    ("alert_notifications", "alert_at"),
    ("deliveries", "status_created"),
    ("deliveries", "customer"),
    ("deliveries", "drone"),
    ("drones", "status"),
    ("invoices", "customer_date"),
    ("api_keys", "created"),
    ("audit", "at"),
    ("audit", "key_at"),
)

_PAGED = "API GET /{}: newest first, `before` pages on"

QUERIES: tuple[Query, ...] = (
    Query("telemetry", "archiver: a bucket's upsert", eq=("_id",), when="buckets"),
    Query(
        "telemetry",
        "API GET /drones/{id}/telemetry: a window of a drone's history, newest first",
        eq=("drone_id",),
        sort=(("start", DESC),),
        range=("start",),
        when="buckets",
    ),
    Query(
        "telemetry",
        "API GET /drones/{id}/telemetry?bucket_s=: a chart's window (averaged by the server "
        "where it can); tests and tools: a drone's readings (by an anchored regex)",
        eq=("drone_id",),
        range=("start",),
        when="buckets",
    ),
    Query(
        "telemetry",
        "the same, in a native time-series collection",
        eq=("drone_id",),
        sort=(("ts", DESC),),
        range=("ts",),
        when="timeseries",
    ),
    Query(
        "telemetry",
        "the chart's window, in a native time-series collection",
        eq=("drone_id",),
        range=("ts",),
        when="timeseries",
    ),
    Query(
        "telemetry",
        "tests and benches: every stored reading, for their no-loss account",
        scan="all of it, on purpose",
    ),
    Query(
        "telemetry",
        "skyhive drones migrate-history: documents of the layout before buckets",
        residual=("seq", "_id"),
        scan="once per database, until none is left",
    ),
    Query(
        "alerts",
        "an alert: API GET, ack and resolve (conditional on its state); the processor's upserts",
        eq=("_id",),
        residual=("state",),
    ),
    Query(
        "alerts",
        _PAGED.format("alerts"),
        sort=newest("opened_at"),
        range=("opened_at",),
        residual=("severity", "type", "last_seen"),
    ),
    Query(
        "alerts",
        _PAGED.format("alerts?state="),
        eq=("state",),
        sort=newest("opened_at"),
        range=("opened_at",),
        residual=("severity", "type", "last_seen"),
    ),
    Query(
        "alerts",
        _PAGED.format("alerts?drone_id="),
        eq=("drone_id",),
        sort=newest("opened_at"),
        range=("opened_at",),
        residual=("state", "severity", "type", "last_seen"),
    ),
    Query("alerts", "API GET /overview: open alerts by severity", eq=("state",)),
    Query(
        "alert_notifications",
        "API GET /alerts/{id}: its notification attempts, oldest first",
        eq=("alert_id",),
        sort=(("at", ASC), ("attempt", ASC)),
    ),
    Query(
        "alert_notifications",
        "notifier: whether a channel was told about an alert",
        eq=("alert_id",),
        residual=("channel", "outcome"),
    ),
    Query("stations", "a station: bootstrap's seeding, lookups", eq=("_id",)),
    Query("stations", "API GET /stations; the station cache", sort=(("_id", ASC),)),
    Query("geofences", "API GET, PUT, DELETE /geofences/{id}", eq=("_id",)),
    Query(
        "geofences",
        "API GET /geofences; the processor's zones (the enabled ones)",
        sort=(("_id", ASC),),
        residual=("enabled",),
    ),
    Query(
        "deliveries",
        "a delivery: API GET, cancel; the dispatcher's, the tracker's and billing's writes "
        "(conditional on its version and status, or on being unbilled); a customer key's "
        "paging cursor (its own)",
        eq=("_id",),
        residual=("version", "status", "invoice_id", "customer_id"),
    ),
    Query(
        "deliveries",
        _PAGED.format("deliveries"),
        sort=newest("created_at"),
        range=("created_at",),
    ),
    Query(
        "deliveries",
        _PAGED.format("deliveries?status="),
        eq=("status",),
        sort=newest("created_at"),
        range=("created_at",),
    ),
    Query(
        "deliveries",
        _PAGED.format("deliveries?customer_id=") + "; a customer key's",
        eq=("customer_id",),
        sort=newest("created_at"),
        range=("created_at",),
        residual=("status", "drone_id"),
    ),
    Query(
        "deliveries",
        _PAGED.format("deliveries?drone_id="),
        eq=("drone_id",),
        sort=newest("created_at"),
        range=("created_at",),
        residual=("status", "customer_id"),
    ),
    Query("deliveries", "dispatcher at start: the pending deliveries", eq=("status",)),
    Query("deliveries", "API GET /overview: deliveries created today", range=("created_at",)),
    Query(
        "deliveries",
        "billing run, API GET /overview: a month's delivered deliveries not yet billed",
        eq=("status", "delivered_month"),
        residual=("invoice_id",),
    ),
    Query("drones", "a drone's spec: API, dispatcher, registry changes", eq=("_id",)),
    Query("drones", "API GET /fleet", sort=(("_id", ASC),)),
    Query("drones", "API GET /fleet?status=", eq=("status",), sort=(("_id", ASC),)),
    Query("drones", "orders: the heaviest payload an active drone lifts", eq=("status",)),
    Query(
        "drones",
        "workers at start: every drone id, for Redis's mirror of the registry",
        scan="every id, once per process",
    ),
    Query("customers", "a customer: API, orders, seeding", eq=("_id",)),
    Query("customers", "API GET /customers", sort=(("_id", ASC),)),
    Query(
        "customers",
        "API GET /customers?email=",
        eq=("email_key",),
        sort=(("_id", ASC),),
    ),
    Query(
        "invoices",
        "an invoice: API GET, pay (conditional on its status); overdue marking",
        eq=("_id",),
        residual=("status", "period"),
    ),
    Query(
        "invoices",
        _PAGED.format("invoices"),
        sort=newest("invoice_date"),
        range=("invoice_date",),
    ),
    Query(
        "invoices",
        _PAGED.format("invoices?customer_id=") + "; a customer key's",
        eq=("customer_id",),
        sort=newest("invoice_date"),
        range=("invoice_date",),
        residual=("status",),
    ),
    Query(
        "invoices",
        _PAGED.format("invoices?status="),
        eq=("status",),
        sort=newest("invoice_date"),
        range=("invoice_date",),
    ),
    Query(
        "invoices",
        "API: a customer's revenue, its unpaid invoices (before deleting it)",
        eq=("customer_id",),
        residual=("status",),
    ),
    Query("invoices", "billing run: a period's invoices", eq=("period",), residual=("_id",)),
    Query("invoices", "billing: pending invoices past due", eq=("status",), range=("due_date",)),
    Query(
        "invoices",
        "API GET /analytics/revenue, /analytics/top-customers, /overview",
        scan="revenue over every invoice's lines",
    ),
    Query(
        "api_keys",
        "authentication (on a miss of its Redis copy), API GET and revoke /keys/{id}",
        eq=("_id",),
        residual=("revoked_at",),
    ),
    Query(
        "api_keys",
        "API GET /keys: by id, `after` pages on",
        sort=(("_id", ASC),),
        range=("_id",),
        residual=("revoked_at",),
    ),
    Query(
        "api_keys",
        "skyhive up: whether an active admin key exists",
        eq=("role", "revoked_at"),
        residual=("expires_at",),
    ),
    Query(
        "audit",
        "API GET /audit: newest first",
        sort=(("at", DESC), ("_id", DESC)),
        range=("at",),
        residual=("action", "target", "outcome"),
    ),
    Query(
        "audit",
        "API GET /audit?key_id=",
        eq=("key_id",),
        sort=(("at", DESC), ("_id", DESC)),
        range=("at",),
        residual=("action", "target", "outcome"),
    ),
    Query(
        "mqtt_credentials",
        "a credential: HTTP ingest, the brokers, rotation, revocation",
        eq=("_id",),
        residual=("password_hash",),
    ),
    Query(
        "mqtt_credentials",
        "the brokers: credentials changed since their last look",
        range=("changed_ms",),
    ),
    Query(
        "mqtt_credentials",
        "Mosquitto's password file: every active credential",
        sort=(("_id", ASC),),
        residual=("password_hash",),
    ),
    Query("meta", "the money codec's mode", eq=("_id",)),
)


def conditions(db: Database[Document]) -> set[str]:
    """The ``when`` values true of this database."""
    found = {"timeseries" if is_timeseries(db) else "buckets"}
    if capabilities(db).geo:
        found.add("geo")
    return found


def server_keys(db: Database[Document], index: Index) -> tuple[Key, ...]:
    """``index``'s keys as this server can have them: without the ``_id`` tie-break where
    a compound index cannot hold ``_id`` (the embedded server; its sorts settle ties of the
    matches in memory)."""
    if capabilities(db).compound_id or len(index.keys) == 1:
        return index.keys
    return tuple(k for k in index.keys if k[0] != "_id")


def indexes_for(db: Database[Document], collections: Iterable[str] = ()) -> list[Index]:
    """The indexes of ``INDEXES`` this database gets (of ``collections``, or of all)."""
    only = set(collections)
    active = conditions(db)
    return [
        ix
        for ix in INDEXES
        if (not only or ix.collection in only) and (ix.when is None or ix.when in active)
    ]


def ensure_indexes(db: Database[Document], *collections: str) -> None:
    """Make the indexes of ``collections`` (every collection's without any), after making
    ``telemetry`` a time-series collection where the server has them; drop the superseded
    ones. Idempotent."""
    if not collections or "telemetry" in collections:
        ensure_collection(db)
    for ix in indexes_for(db, collections):
        db[ix.collection].create_index(list(server_keys(db, ix)), name=ix.name, unique=ix.unique)
    for name, index_name in SUPERSEDED:
        if (not collections or name in collections) and index_name in _names(db, name):
            try:
                db[name].drop_index(index_name)
                log.info(
                    "dropped index %s.%s: an index of this version serves it", name, index_name
                )
            except OperationFailure as exc:
                if exc.code != INDEX_NOT_FOUND:  # dropped meanwhile by another process
                    raise


def _names(db: Database[Document], collection: str) -> set[str]:
    return {str(ix["name"]) for ix in db[collection].list_indexes()}
