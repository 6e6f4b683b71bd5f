"""Deliveries in MongoDB ``deliveries`` (the record, with its timeline) and the fast paths in
Redis: ``delivery_status`` (id → status), ``deliveries:pending`` (zset by creation time),
``deliveries:orders`` (id → what dispatching needs, so the dispatcher never reads MongoDB),
``drone:assignment:{drone}`` (the atomic claim of a drone by one delivery) and
``deliveries:assigning`` (the journal of assignments made in Redis and not yet recorded in
MongoDB: the dispatcher commands the drone first and records after, off its critical path)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson
from pymongo import UpdateMany, UpdateOne
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from skyhive.adapters.mongo import Document, find_page, restore_datetimes
from skyhive.adapters.read_cache import ReadCache
from skyhive.domain.deliveries import TERMINAL, can_transition

STATUS_HASH = "delivery_status"
PENDING = "deliveries:pending"
ACTIVE = "deliveries:active"
WAKE = "dispatch:wake"
ORDERS = "deliveries:orders"
JOURNAL = "deliveries:assigning"
RESOURCE = "deliveries"  # in the read cache

# Delete the claim only if it is still ours: a stale release must not free a drone that a
# later delivery has claimed since.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# Assign each (delivery, drone) pair whose delivery is still pending and whose drone nobody
# holds: the claim, the status, the queue, the journal and the drone's command (an entry of
# the commands stream, which the dispatchers relay) change together or not at all, so two
# dispatchers never double-book, and a crash never loses an assignment nor leaves it without
# its command.
# KEYS: status hash, pending zset, journal, commands stream, then one claim key per pair;
# ARGV: the stream's approximate cap, then (delivery id, record, drone id, command) per pair.
# Returns the delivery ids assigned.
_CLAIM_ASSIGN = """
local won = {}
for i = 1, (#ARGV - 1) / 4 do
  local id, rec, drone, cmd = ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i], ARGV[4 * i + 1]
  if redis.call('HGET', KEYS[1], id) == 'pending'
     and redis.call('SET', KEYS[4 + i], id, 'NX') then
    redis.call('HSET', KEYS[1], id, 'assigned')
    redis.call('ZREM', KEYS[2], id)
    redis.call('HSET', KEYS[3], id, rec)
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[1], '*', 'k', drone, 'v', cmd)
    won[#won + 1] = id
  end
end
return won
"""


# Queue a delivery MongoDB holds as pending, unless Redis knows better: a status other than
# ``pending`` there is newer than the record (an assignment journaled and commanded, its record
# not written yet), and queueing it again would give it a second drone.
# KEYS: status hash, orders hash, pending zset; ARGV: delivery id, summary, score.
_REQUEUE = """
local status = redis.call('HGET', KEYS[1], ARGV[1])
if status and status ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], 'pending')
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[1])
return 1
"""


DATE_FIELDS = ("created_at", "updated_at", "eta", "delivered_at")


def order_summary(doc: Document, accepted_at: float) -> bytes:
    """What the dispatcher needs of a pending delivery (it never changes while pending)."""
    lon, lat = doc["destination"]["coordinates"]
    return orjson.dumps(
        {
            "station": doc["pickup_station"],
            "lat": lat,
            "lon": lon,
            "kg": doc["package"]["weight_kg"],
            "km": doc.get("distance_km"),
            "accepted_at": accepted_at,
        }
    )


def _journal_fields(record: dict[str, Any]) -> dict[str, Any]:
    """A journal record's fields as the MongoDB record stores them (dates as dates)."""
    fields = dict(record["fields"])
    fields["eta"] = datetime.fromisoformat(fields["eta"])
    dispatch = dict(fields["dispatch"])
    for name in ("assigned_at", "accepted_at"):
        dispatch[name] = datetime.fromisoformat(dispatch[name])
    fields["dispatch"] = dispatch
    return fields


def _dates(doc: Document | None) -> Document | None:
    return restore_datetimes(doc, DATE_FIELDS) if doc is not None else None


def _advanced(
    doc: Document, status: str, at: datetime, note: str, fields: dict[str, Any]
) -> dict[str, Any]:
    """The ``$set`` that moves ``doc`` to ``status``: the timeline is rewritten whole (the
    embedded server mangles ``$push`` of sub-documents) and the version bumped."""
    timeline = [*doc.get("timeline", []), {"status": status, "at": at, "note": note}]
    return {
        **fields,
        "status": status,
        "timeline": timeline,
        "updated_at": at,
        "version": int(doc.get("version", 0)) + 1,
    }


def claim_key(drone_id: str) -> str:
    return f"drone:assignment:{drone_id}"


class TransitionRefused(Exception):
    def __init__(self, current: str, wanted: str) -> None:
        super().__init__(f"a {current} delivery cannot become {wanted}")
        self.current = current
        self.wanted = wanted


class DeliveriesRepo:
    def __init__(self, db: Database[Document], redis_text: Any, cache: ReadCache) -> None:
        self._c = db.deliveries
        self._r = redis_text
        self._cache = cache  # every write to a record invalidates its cached API views
        self._release = redis_text.register_script(_RELEASE)
        self._claim_assign = redis_text.register_script(_CLAIM_ASSIGN)
        self._requeue = redis_text.register_script(_REQUEUE)

    # --- MongoDB record -------------------------------------------------------------------

    def insert(self, doc: Document) -> tuple[Document, bool]:
        """Insert a new delivery; with an ``_id`` already taken (the same order id), return
        the existing one instead. Returns (delivery, created)."""
        try:
            self._c.insert_one(doc)
        except DuplicateKeyError:
            existing = _dates(self._c.find_one({"_id": doc["_id"]}))
            if existing is None:  # raced with a delete; there is no delete, so unreachable
                raise
            return existing, False
        self._cache.invalidate(RESOURCE, [str(doc["_id"])])
        self._enqueue(doc, time.time())
        return doc, True

    def _enqueue(self, doc: Document, accepted_at: float) -> None:
        """Make a pending delivery visible to the dispatchers and wake them."""
        delivery_id = str(doc["_id"])
        pipe = self._r.pipeline(transaction=False)
        pipe.hset(STATUS_HASH, delivery_id, "pending")
        pipe.hset(ORDERS, delivery_id, order_summary(doc, accepted_at))
        pipe.zadd(PENDING, {delivery_id: doc["created_at"].timestamp()}, nx=True)
        pipe.publish(WAKE, delivery_id)
        pipe.execute()

    def requeue_pending(self) -> int:
        """Queue every delivery MongoDB holds as pending that Redis lost track of (a crash
        between the two writes, a Redis restored from an older file). Run at dispatcher start.

        Not one Redis has moved on (``_REQUEUE``): a dispatcher that died after assigning
        and commanding, before its record was written, leaves the record pending and the
        assignment in Redis's status and journal; the journal is recorded, and queueing the
        delivery again would assign it to a second drone."""
        queued = set(self.pending(1_000_000))
        n = 0
        for doc in self._c.find({"status": "pending"}):
            delivery_id = str(doc["_id"])
            if delivery_id in queued:
                continue
            doc = restore_datetimes(doc, DATE_FIELDS)
            created = doc["created_at"].timestamp()
            keys = [STATUS_HASH, ORDERS, PENDING]
            if self._requeue(keys=keys, args=[delivery_id, order_summary(doc, created), created]):
                self._r.publish(WAKE, delivery_id)
                n += 1
        return n

    def get(self, delivery_id: str) -> Document | None:
        return _dates(self._c.find_one({"_id": delivery_id}))

    def find(
        self,
        status: str | None = None,
        customer_id: str | None = None,
        drone_id: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Document]:
        """Newest first (then by id); ``before`` pages on (see :func:`find_page`)."""
        query: dict[str, Any] = {}
        if status:
            query["status"] = status
        if customer_id:
            query["customer_id"] = customer_id
        if drone_id:
            query["drone_id"] = drone_id
        owner = {"customer_id": customer_id} if customer_id else None
        docs = find_page(self._c, query, "created_at", limit, before, owner)
        return [restore_datetimes(d, DATE_FIELDS) for d in docs]

    def transition(
        self,
        delivery_id: str,
        new_status: str,
        at: datetime,
        note: str,
        fields: dict[str, Any] | None = None,
        only_from: frozenset[str] | None = None,
        known: Document | None = None,
    ) -> Document:
        """Move a delivery to ``new_status`` if the lifecycle allows it, appending to its
        timeline. Optimistic concurrency on ``version``: of two racing transitions exactly
        one wins; the loser re-reads and is judged against the new status. ``known`` is a
        copy the caller already holds (saves a read; a stale copy just loses the race)."""
        for _ in range(5):
            doc = known if known is not None else _dates(self._c.find_one({"_id": delivery_id}))
            known = None
            if doc is None:
                raise KeyError(delivery_id)
            current = str(doc["status"])
            allowed = only_from is None or current in only_from
            if not allowed or not can_transition(current, new_status):
                raise TransitionRefused(current, new_status)
            update = _advanced(doc, new_status, at, note, fields or {})
            res = self._c.update_one(
                {"_id": delivery_id, "version": doc.get("version", 0)}, {"$set": update}
            )
            if res.modified_count == 1:
                self._cache.invalidate(RESOURCE, [delivery_id])
                self._after_transition(delivery_id, new_status, doc.get("drone_id"))
                return {**doc, **update}
        raise TransitionRefused("busy", new_status)

    def get_many(
        self, delivery_ids: list[str], fields: list[str] | None = None
    ) -> dict[str, Document]:
        """Records by id; ``fields`` limits what is read (the timeline can be long)."""
        if not delivery_ids:
            return {}
        docs = self._c.find({"_id": {"$in": delivery_ids}}, fields)
        return {str(d["_id"]): restore_datetimes(d, DATE_FIELDS) for d in docs}

    def pending_orders(self, delivery_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The summaries of those of ``delivery_ids`` still pending, in one round trip. Ids no
        longer pending leave the queue; a pending one without a summary (queued before
        summaries existed, or after a partial write) gets one rebuilt from MongoDB."""
        if not delivery_ids:
            return {}
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(STATUS_HASH, delivery_ids)
        pipe.hmget(ORDERS, delivery_ids)
        statuses, raw = pipe.execute()
        out: dict[str, dict[str, Any]] = {}
        rebuild = []
        for delivery_id, status, summary in zip(delivery_ids, statuses, raw, strict=True):
            if status != "pending":
                self._r.zrem(PENDING, delivery_id)
            elif summary is None:
                rebuild.append(delivery_id)
            else:
                out[delivery_id] = orjson.loads(summary)
        for delivery_id, doc in self.get_many(rebuild).items():
            if doc["status"] == "pending":
                summary = order_summary(doc, doc["created_at"].timestamp())
                self._r.hset(ORDERS, delivery_id, summary)
                out[delivery_id] = orjson.loads(summary)
            else:
                self.reconcile(delivery_id, str(doc["status"]))
        return out

    def claim_assign(
        self,
        pairs: list[tuple[str, str, dict[str, Any], bytes]],
        commands_stream: str,
        maxlen: int,
    ) -> set[str]:
        """Atomically assign (delivery id, drone id, journal record, command to the drone)
        pairs, queueing each winner's command on ``commands_stream`` (a bus stream, entries
        capped at about ``maxlen``); see ``_CLAIM_ASSIGN``. Returns the deliveries assigned."""
        if not pairs:
            return set()
        keys = [STATUS_HASH, PENDING, JOURNAL, commands_stream]
        keys += [claim_key(drone) for _, drone, _, _ in pairs]
        args: list[Any] = [maxlen]
        for delivery_id, drone, record, command in pairs:
            args += [delivery_id, orjson.dumps(record), drone, command]
        return {str(x) for x in self._claim_assign(keys=keys, args=args)}

    def journal(self, limit: int = 500) -> dict[str, dict[str, Any]]:
        """Assignments made in Redis and not yet recorded in MongoDB."""
        _, items = self._r.hscan(JOURNAL, 0, count=limit)
        return {str(k): orjson.loads(v) for k, v in items.items()}

    def record_journal(
        self, records: dict[str, dict[str, Any]]
    ) -> dict[str, tuple[str, str | None]]:
        """Write journaled assignments to MongoDB in one bulk write (each conditional on the
        record still being the pending copy just read), then drop them from the journal.

        Idempotent: one already recorded is just dropped. Returns the assignments that lost
        to a change made in MongoDB meanwhile (a cancel): delivery id → (drone, status now);
        their claims are released and their drones must be recalled by the caller. One that
        lost only the version race stays in the journal for the next call."""
        ids = list(records)
        docs = {
            str(d["_id"]): restore_datetimes(d, DATE_FIELDS)
            for d in self._c.find({"_id": {"$in": ids}})
        }
        done: list[str] = []
        lost: dict[str, tuple[str, str | None]] = {}
        ops, written = [], []
        for delivery_id, record in records.items():
            doc, drone = docs.get(delivery_id), str(record["drone_id"])
            if doc is None:
                lost[delivery_id] = (drone, None)
            elif doc["status"] == "assigned" and doc.get("drone_id") == drone:
                done.append(delivery_id)
            elif doc["status"] != "pending":
                lost[delivery_id] = (drone, str(doc["status"]))
            else:
                at = datetime.fromisoformat(record["at"])
                update = _advanced(doc, "assigned", at, record["note"], _journal_fields(record))
                query = {"_id": delivery_id, "version": doc.get("version", 0), "status": "pending"}
                ops.append(UpdateOne(query, {"$set": update}))
                written.append(delivery_id)
        if ops:
            res = self._c.bulk_write(ops, ordered=False)
            self._cache.invalidate(RESOURCE, written)
            if res.matched_count == len(ops):
                done += written
            else:
                now = self._c.find({"_id": {"$in": written}}, {"status": 1, "drone_id": 1})
                done += [
                    str(d["_id"])
                    for d in now
                    if d["status"] == "assigned"
                    and d.get("drone_id") == records[str(d["_id"])]["drone_id"]
                ]
        pipe = self._r.pipeline(transaction=False)
        for delivery_id in done:
            pipe.sadd(ACTIVE, delivery_id)
            pipe.hdel(JOURNAL, delivery_id)
        for delivery_id, (_, status) in lost.items():
            pipe.hdel(JOURNAL, delivery_id)
            if status is None:
                pipe.hdel(STATUS_HASH, delivery_id)
            else:
                self._sync_redis(delivery_id, status, pipe)
        pipe.execute()
        for delivery_id, (drone, _) in lost.items():
            self.release(drone, delivery_id)
        return lost

    def set_fields_many(self, fields_by_id: dict[str, dict[str, Any]]) -> None:
        if fields_by_id:
            ops = [UpdateOne({"_id": i}, {"$set": f}) for i, f in fields_by_id.items()]
            self._c.bulk_write(ops, ordered=False)
            self._cache.invalidate(RESOURCE, fields_by_id)

    def created_by_status(self, start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
        """Deliveries created in ``[start, end)``, per current status: how many, and the mean
        ``delivery_s`` of those that have one (the delivered). The range is two ``$and``
        terms: the embedded server mis-evaluates ``{"$gte": a, "$lt": b}`` in a ``$match``."""
        rows = self._c.aggregate(
            [
                {
                    "$match": {
                        "$and": [{"created_at": {"$gte": start}}, {"created_at": {"$lt": end}}]
                    }
                },
                {
                    "$group": {
                        "_id": "$status",
                        "count": {"$sum": 1},
                        "avg_delivery_s": {"$avg": "$delivery_s"},
                    }
                },
            ]
        )
        return {
            str(r["_id"]): {"count": int(r["count"]), "avg_delivery_s": r.get("avg_delivery_s")}
            for r in rows
        }

    def unbilled_value(self, month: str) -> tuple[Any, int]:
        """The summed ``price_final`` (as stored: decode it with the money codec) and the
        number of the deliveries delivered in ``month`` that no invoice bills yet."""
        query = {"status": "delivered", "delivered_month": month, "invoice_id": None}
        rows = list(
            self._c.aggregate(
                [
                    {"$match": query},
                    {"$group": {"_id": None, "value": {"$sum": "$price_final"}, "n": {"$sum": 1}}},
                ]
            )
        )
        return (rows[0]["value"], int(rows[0]["n"])) if rows else (None, 0)

    # --- billing --------------------------------------------------------------------------

    def billable(self, month: str) -> list[Document]:
        """Deliveries delivered in ``month`` (YYYY-MM) and not billed yet. By the
        ``delivered_month`` field: the embedded server keeps ``$set`` dates as text, which a
        date range would not match."""
        query = {"status": "delivered", "delivered_month": month, "invoice_id": None}
        fields = [
            "customer_id",
            "pickup_station",
            "delivered_month",
            "price_final",
            "package",
            "distance_km",
        ]
        return list(self._c.find(query, fields))

    def mark_billed(self, billed: dict[str, list[str]]) -> int:
        """Record on each delivery the invoice that bills it (invoice id → delivery ids), only
        where none is recorded yet: a delivery is billed once. Returns how many were marked."""
        ops = [
            UpdateMany({"_id": {"$in": ids}, "invoice_id": None}, {"$set": {"invoice_id": inv}})
            for inv, ids in billed.items()
            if ids
        ]
        if not ops:
            return 0
        res = self._c.bulk_write(ops, ordered=False)
        self._cache.invalidate(RESOURCE, [i for ids in billed.values() for i in ids])
        return int(res.modified_count)

    def reconcile(self, delivery_id: str, status: str | None) -> None:
        """Bring the Redis fast paths in line with the record (after a crash between the two
        writes): a delivery leaves the pending queue and active set unless its status says."""
        if status is None:
            self._r.zrem(PENDING, delivery_id)
            self._r.srem(ACTIVE, delivery_id)
        else:
            self._sync_redis(delivery_id, status)

    def _after_transition(self, delivery_id: str, status: str, drone_id: object) -> None:
        self._sync_redis(delivery_id, status)
        if isinstance(drone_id, str) and (status == "pending" or status in TERMINAL):
            self.release(drone_id, delivery_id)

    def _sync_redis(self, delivery_id: str, status: str, pipe: Any = None) -> None:
        own = pipe is None
        pipe = self._r.pipeline(transaction=False) if own else pipe
        pipe.hset(STATUS_HASH, delivery_id, status)
        if status == "pending":
            pipe.zadd(PENDING, {delivery_id: 0}, nx=True)
            pipe.srem(ACTIVE, delivery_id)
            pipe.publish(WAKE, delivery_id)
        else:
            pipe.zrem(PENDING, delivery_id)
        if status in ("assigned", "picked_up", "in_transit"):
            pipe.sadd(ACTIVE, delivery_id)
        if status in TERMINAL:
            pipe.srem(ACTIVE, delivery_id)
            pipe.hdel(ORDERS, delivery_id)
        if own:
            pipe.execute()

    # --- Redis fast paths -----------------------------------------------------------------

    def status(self, delivery_id: str) -> str | None:
        value = self._r.hget(STATUS_HASH, delivery_id)
        return str(value) if value is not None else None

    def pending(self, limit: int) -> list[str]:
        return [str(x) for x in self._r.zrange(PENDING, 0, limit - 1)]

    def active(self) -> list[str]:
        return sorted(str(x) for x in self._r.smembers(ACTIVE))

    def release(self, drone_id: str, delivery_id: str) -> None:
        self._release(keys=[claim_key(drone_id)], args=[delivery_id])

    def claimed(self, drone_ids: list[str]) -> dict[str, str]:
        """Which of these drones are claimed, and by which delivery."""
        if not drone_ids:
            return {}
        values = self._r.mget([claim_key(d) for d in drone_ids])
        return {d: str(v) for d, v in zip(drone_ids, values, strict=True) if v is not None}
