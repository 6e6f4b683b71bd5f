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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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
    # A TTL index: which retention setting says how long its documents are kept
    # (``adapters/retention.py``); plain where nothing expires.
    expire: str | None = None


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
    Index(
        "telemetry",
        "expire_start",
        (("start", ASC),),
        "raw readings expire after SKYHIVE_HISTORY__RAW_DAYS; a window's buckets, every drone",
        when="buckets",
        expire="raw",
    ),
    Index(
        "rollups_minute",
        "drone_start",
        (("drone_id", ASC), ("start", DESC)),
        "a drone's minutes in a window, newest first",
    ),
    Index(
        "rollups_minute",
        "expire_start",
        (("start", ASC),),
        "minute rollups expire after SKYHIVE_HISTORY__MINUTE_DAYS; the minutes of an hour",
        expire="minute",
    ),
    Index(
        "rollups_hour",
        "drone_start",
        (("drone_id", ASC), ("start", DESC)),
        "a drone's hours in a window, newest first",
    ),
    Index(
        "rollups_hour",
        "start",
        (("start", ASC),),
        "every drone's hours in a window (the analytics' utilisation and energy)",
    ),
    Index(
        "rollups_pending",
        "start",
        (("start", ASC),),
        "the minutes pending for the rollups, oldest first",
    ),
    Index(
        "rebalance_moves",
        "at",
        (("at", DESC),),
        "the rebalancing moves since a time, newest first (the API, the cooldown)",
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
        "deliveries",
        "updated",
        (("updated_at", ASC),),
        "station rollups: the deliveries moved since an hour",
    ),
    Index(
        "station_hours",
        "hour",
        (("hour", ASC),),
        "every station's hours in a window: a rollup pass, the forecaster's training",
    ),
    Index(
        "station_hours",
        "station_hour",
        (("station_id", ASC), ("hour", ASC)),
        "a station's hours in a window, oldest first; its first hour",
    ),
    Index(
        "drones",
        "status_id",
        (("status", ASC), ("_id", ASC)),
        "the registry by status; the active drones' payloads",
    ),
    Index(
        "drones",
        "mavlink_sysid",
        (("mavlink_sysid", ASC),),
        "the MAVLink gateway's drones; the drones on one system id (one per link)",
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
        "the chart's window, the rollups' readings of some drones, in a native time-series "
        "collection",
        eq=("drone_id",),
        range=("ts",),
        when="timeseries",
    ),
    Query(
        "telemetry",
        "rollups: the buckets of a window (its drones picked after); a rebuild's drones",
        range=("start",),
        when="buckets",
    ),
    Query("rollups_minute", "rollups: a rollup's guarded upsert; the minute before's", eq=("_id",)),
    Query(
        "rollups_minute",
        "rollups: the minutes of an hour, the minutes before (their drones picked after)",
        range=("start",),
    ),
    Query(
        "rollups_minute",
        "API GET /drones/{id}/telemetry?level=minute: a window, newest first",
        eq=("drone_id",),
        sort=(("start", DESC),),
        range=("start",),
    ),
    Query("rollups_hour", "rollups: a rollup's guarded upsert", eq=("_id",)),
    Query(
        "rollups_hour",
        "API GET /drones/{id}/telemetry?level=hour: a window, newest first",
        eq=("drone_id",),
        sort=(("start", DESC),),
        range=("start",),
    ),
    Query("rollups_pending", "archiver: a minute marked, cleared", eq=("_id",)),
    Query("rollups_pending_hours", "archiver: an hour marked, cleared", eq=("_id",)),
    Query(
        "rollups_pending_hours",
        "archiver: the pending hours closed or marked a while ago",
        residual=("start", "marked_at"),
        scan="the hours pending: about one per drone",
    ),
    Query(
        "rollups_pending",
        "archiver: the closed minutes pending, oldest first",
        sort=(("start", ASC),),
        range=("start",),
    ),
    Query(
        "rebalance_moves",
        "dispatcher, API GET /rebalancing/moves: the moves since a time, newest first",
        sort=(("at", DESC),),
        range=("at",),
    ),
    Query("rebalance_moves", "dispatcher: a move recorded", eq=("_id",)),
    Query(
        "alerts",
        "rollups: the alerts of a window (their drones picked after)",
        range=("opened_at",),
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
    Query(
        "alerts",
        "API GET /overview: open (and resolved_unacknowledged) alerts by severity",
        eq=("state",),
    ),
    Query(
        "alerts",
        "processor start: the grounding alerts, one state at a time (grounded drones rebuilt)",
        eq=("state",),
        residual=("grounding",),
    ),
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
    Query(
        "deliveries",
        "station rollups: the deliveries moved in a window (created before its end)",
        range=("updated_at",),
        residual=("created_at",),
    ),
    Query(
        "station_hours",
        "station rollups: a station hour's upsert, a stale one removed",
        eq=("_id",),
    ),
    Query(
        "station_hours",
        "station rollups: the hours of a window; the forecaster's training orders",
        range=("hour",),
    ),
    Query(
        "station_hours",
        "forecaster: a station's first hour; API GET /forecasts/{id}: its recent hours",
        eq=("station_id",),
        sort=(("hour", ASC),),
        range=("hour",),
    ),
    Query("forecasts", "forecaster: a station's upsert; API GET /forecasts/{id}", eq=("_id",)),
    Query("forecasts", "API GET /forecasts", sort=(("_id", ASC),)),
    Query("drones", "a drone's spec: API, dispatcher, registry changes", eq=("_id",)),
    Query("drones", "API GET /fleet", sort=(("_id", ASC),)),
    Query("drones", "API GET /fleet?status=", eq=("status",), sort=(("_id", ASC),)),
    Query("drones", "orders: the heaviest payload an active drone lifts", eq=("status",)),
    Query("drones", "registry: the drones on one MAVLink system id", eq=("mavlink_sysid",)),
    Query("drones", "mavlink gateway: the drones with a system id", range=("mavlink_sysid",)),
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
    Query(
        "telemetry",
        "archive export: the drones with readings in a day",
        range=("start",),
        when="buckets",
    ),
    Query(
        "telemetry",
        "archive export: a drone's readings of a day, and their count after",
        eq=("drone_id",),
        range=("start",),
        when="buckets",
    ),
    Query("deliveries", "archive export: the deliveries ordered in a day", range=("created_at",)),
    Query(
        "alerts",
        "archive export: the alerts opened in a day",
        sort=newest("opened_at"),
        range=("opened_at",),
    ),
    Query(
        "deliveries",
        "API GET /analytics/{stations,on-time,delivery-times,outcomes}: ordered in a window",
        range=("created_at",),
    ),
    Query(
        "alerts", "API GET /analytics/alerts: the alerts opened in a window", range=("opened_at",)
    ),
    Query(
        "rollups_hour",
        "API GET /analytics/{utilisation,energy}: every drone's closed hours in a window",
        range=("start",),
    ),
    Query(
        "rollups_minute",
        "API GET /analytics/{utilisation,energy}: every drone's minutes at a window's edges",
        range=("start",),
    ),
    Query("archive_exports", "archive: a day's export record, read and written whole", eq=("_id",)),
    Query("archive_exports", "skyhive archive list: every exported day", sort=(("_id", ASC),)),
    Query(
        "meta",
        "archive export: the lease, taken when free, expired or its holder's; given back",
        eq=("_id",),
        residual=("holder", "until_ms"),
    ),
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


def ensure_indexes(
    db: Database[Document], *collections: str, expiry: Mapping[str, int | None] | None = None
) -> None:
    """Make the indexes of ``collections`` (every collection's without any), after making
    ``telemetry`` a time-series collection where the server has them; drop the superseded
    ones. Idempotent. A TTL index gets its seconds from ``expiry`` (by its ``expire``
    setting; None: never); without ``expiry`` an existing one is left as it is."""
    if not collections or "telemetry" in collections:
        ensure_collection(db)
    for ix in indexes_for(db, collections):
        if ix.expire is not None:
            _ensure_expiry(db, ix, expiry)
            continue
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


def _ensure_expiry(
    db: Database[Document], ix: Index, expiry: Mapping[str, int | None] | None
) -> None:
    """Make ``ix`` with the expiry asked, making it again where it differs (the embedded
    server has no ``collMod``; it also names indexes itself, so it is found by its keys)."""
    c = db[ix.collection]
    keys = dict(server_keys(db, ix))
    found = [i for i in c.list_indexes() if dict(i["key"]) == keys]
    if found and expiry is None:
        return
    seconds = expiry.get(str(ix.expire)) if expiry is not None else None
    if found and found[0].get("expireAfterSeconds") == seconds:
        return
    if found:
        c.drop_index(found[0]["name"])
    ttl: dict[str, Any] = {} if seconds is None else {"expireAfterSeconds": seconds}
    c.create_index(list(keys.items()), name=ix.name, **ttl)
    log.info("%s: %s", ix.collection, f"expires after {seconds} s" if ttl else "kept for ever")


def _names(db: Database[Document], collection: str) -> set[str]:
    return {str(ix["name"]) for ix in db[collection].list_indexes()}
