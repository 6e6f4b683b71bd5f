"""What the connected MongoDB server can do, found out once per client by trying it.

The embedded MongoDB-wire server (nx-27017) speaks the protocol but lacks some of MongoDB's
features, and takes some requests only to do something else: a time-series collection comes
out a plain one, a 2dsphere index a plain one, ``$dateTrunc`` ignores ``binSize``. So nothing
is inferred from a version: each feature SkyHive would use is tried on scratch collections
(``skyhive_probe_*``, dropped after) and its answer checked. Only the server's refusal
(``OperationFailure``) or a wrong answer means "no"; a connection error propagates and
nothing is cached, so the next use asks again.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from bson.decimal128 import Decimal128
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import CollectionInvalid, OperationFailure

from skyhive.adapters.mongo import Document

log = logging.getLogger(__name__)

PROBE_PREFIX = "skyhive_probe_"
# $dateTrunc counts bins of seconds from 2000-01-01T00:00:00Z, this many seconds after the epoch.
DATE_TRUNC_ORIGIN_S = 946_684_800


@dataclass(frozen=True)
class Capabilities:
    decimal128: bool  # stores Decimal128: money as Decimal128, else int64 cents (money.py)
    timeseries: bool  # native time-series collections: history as one, else buckets
    date_trunc: bool  # epoch_bins() is right: charts are averaged by the server
    geo: bool  # 2dsphere indexes that $geoNear uses: the stations' location index
    compound_id: bool  # _id as a key of a compound index (a sort's tie-break), else left out
    explain: bool  # explain of a find names the index it uses (the index tests read it)

    def __str__(self) -> str:
        return ", ".join(f"{name} {'yes' if ok else 'no'}" for name, ok in asdict(self).items())


def epoch_bins(date: Any, seconds: int) -> dict[str, Any]:
    """An expression: ``date`` down to the start of its ``seconds``-long bin, bins aligned
    to the epoch (as ``domain/downsample.py`` aligns them). ``$dateTrunc`` aligns its bins
    to 2000-01-01, so the date is shifted by that origin's remainder and back."""
    shift_ms = DATE_TRUNC_ORIGIN_S % seconds * 1000
    shifted = {"$add": [date, shift_ms]}
    trunc = {"$dateTrunc": {"date": shifted, "unit": "second", "binSize": seconds}}
    return {"$subtract": [trunc, shift_ms]}


_EMBEDDED_INDEX = re.compile(r"USING (?:COVERING )?INDEX (\S+)")


def index_in_plan(explained: Mapping[str, Any]) -> str | None:
    """The name of the index the winning plan of an ``explain`` uses, or None (a scan).
    Reads MongoDB's plan tree (``indexName``; an ``_id`` lookup is IDHACK) and the embedded
    server's, which is SQLite's query plan (``SEARCH t USING INDEX idx_t_f (<expr>=?)``)."""

    def walk(node: Any) -> str | None:
        if isinstance(node, Mapping):
            if "indexName" in node:
                return str(node["indexName"])
            if node.get("stage") in ("IDHACK", "EXPRESS_IDHACK"):
                return "_id_"
            if isinstance(node.get("detail"), str):
                found = _EMBEDDED_INDEX.search(node["detail"])
                return found.group(1) if found else None
            node = list(node.values())
        if isinstance(node, list):
            return next((name for n in node if (name := walk(n)) is not None), None)
        return None

    return walk(explained.get("queryPlanner", {}).get("winningPlan"))


def _decimal128(c: Collection[Document]) -> bool:
    c.insert_one({"_id": "decimal128", "amount": Decimal128("0.01")})
    stored = c.find_one({"_id": "decimal128"})
    return stored is not None and stored["amount"] == Decimal128("0.01")


def _timeseries(db: Database[Document], name: str) -> bool:
    db.create_collection(name, timeseries={"timeField": "ts", "metaField": "drone_id"})
    info = list(db.list_collections(filter={"name": name}))
    return bool(info) and info[0].get("type") == "timeseries"


def _date_trunc(c: Collection[Document]) -> bool:
    # Its 7 s bin starts at 12:00:01 counted from the epoch, but at 12:00:06 counted from
    # $dateTrunc's own origin: a missing or wrong shift shows.
    at = datetime(2026, 11, 23, 12, 0, 6, tzinfo=UTC)
    c.insert_one({"_id": "date", "at": at})
    rows = list(
        c.aggregate([{"$match": {"_id": "date"}}, {"$project": {"bin": epoch_bins("$at", 7)}}])
    )
    expected = datetime.fromtimestamp(int(at.timestamp()) // 7 * 7, tz=UTC)
    return [r.get("bin") for r in rows] == [expected]


def _geo(c: Collection[Document]) -> bool:
    c.create_index([("place", "2dsphere")])
    c.insert_many(
        [
            {"_id": "far", "place": {"type": "Point", "coordinates": [1.0, 1.0]}},
            {"_id": "near", "place": {"type": "Point", "coordinates": [0.0, 0.0]}},
        ]
    )
    near = {"type": "Point", "coordinates": [0.001, 0.0]}
    stage = {"$geoNear": {"near": near, "distanceField": "m", "key": "place"}}
    return [r["_id"] for r in c.aggregate([stage])] == ["near", "far"]


def _compound_id(c: Collection[Document]) -> bool:
    c.create_index([("n", 1), ("_id", 1)], name="n_id")
    return any(ix["name"] == "n_id" or list(ix["key"]) == ["n", "_id"] for ix in c.list_indexes())


def _explain(c: Collection[Document]) -> bool:
    c.create_index([("n", 1)], name="n")
    c.insert_one({"_id": "n", "n": 1})
    return index_in_plan(c.find({"n": 1}).explain()) is not None


def probe(db: Database[Document]) -> Capabilities:
    """Try every feature on the server of ``db`` now (no cache: see :func:`capabilities`)."""
    scratch = f"{PROBE_PREFIX}{secrets.token_hex(6)}"
    timeseries = f"{scratch}_ts"
    c = db[scratch]

    def works(check: Callable[[], bool]) -> bool:
        try:
            return check()
        except (OperationFailure, CollectionInvalid):
            return False

    try:
        return Capabilities(
            decimal128=works(lambda: _decimal128(c)),
            timeseries=works(lambda: _timeseries(db, timeseries)),
            date_trunc=works(lambda: _date_trunc(c)),
            geo=works(lambda: _geo(c)),
            compound_id=works(lambda: _compound_id(c)),
            explain=works(lambda: _explain(c)),
        )
    finally:
        db.drop_collection(scratch)
        db.drop_collection(timeseries)


_found: dict[int, Capabilities] = {}  # id(client) → its server's capabilities
_lock = threading.Lock()


def capabilities(db: Database[Document]) -> Capabilities:
    """The capabilities of the server ``db``'s client is connected to, probed on first use
    (logged) and kept for as long as that client lives."""
    client = db.client
    key = id(client)
    found = _found.get(key)
    if found is None:
        with _lock:
            found = _found.get(key)
            if found is None:
                found = _found[key] = probe(db)
                weakref.finalize(client, _found.pop, key, None)
                log.info("MongoDB at %s can: %s", sorted(client.nodes), found)
    return found
