"""Deliveries in MongoDB ``deliveries`` (the record, with its timeline) and the fast paths in
Redis: ``delivery_status`` (id → status), ``deliveries:pending`` (zset by creation time),
``drone:assignment:{drone}`` (the atomic claim of a drone by one delivery)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import DESCENDING, UpdateOne
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from skyhive.adapters.mongo import Document, restore_datetimes
from skyhive.domain.deliveries import TERMINAL, can_transition

STATUS_HASH = "delivery_status"
PENDING = "deliveries:pending"
ACTIVE = "deliveries:active"
WAKE = "dispatch:wake"

# Delete the claim only if it is still ours: a stale release must not free a drone that a
# later delivery has claimed since.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


DATE_FIELDS = ("created_at", "updated_at", "eta", "delivered_at")


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
    def __init__(self, db: Database[Document], redis_text: Any) -> None:
        self._c = db.deliveries
        self._r = redis_text
        self._release = redis_text.register_script(_RELEASE)

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
        self._r.hset(STATUS_HASH, doc["_id"], doc["status"])
        if doc["status"] == "pending":
            self._r.zadd(PENDING, {doc["_id"]: doc["created_at"].timestamp()})
            self._r.publish(WAKE, doc["_id"])
        return doc, True

    def get(self, delivery_id: str) -> Document | None:
        return _dates(self._c.find_one({"_id": delivery_id}))

    def find(
        self,
        status: str | None = None,
        customer_id: str | None = None,
        drone_id: str | None = None,
        limit: int = 100,
    ) -> list[Document]:
        query: dict[str, Any] = {}
        if status:
            query["status"] = status
        if customer_id:
            query["customer_id"] = customer_id
        if drone_id:
            query["drone_id"] = drone_id
        docs = self._c.find(query).sort("created_at", DESCENDING).limit(limit)
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

    def assign_many(
        self, items: list[tuple[Document, str, dict[str, Any], str]], at: datetime
    ) -> set[str]:
        """Move many pending deliveries to ``assigned`` in one bulk write: (the copy the
        caller holds, drone id, fields, timeline note) each. Each update is conditional on
        the copy's version and on ``pending``, so one a concurrent writer changed is left
        alone; its claim on the drone is released. Returns the ids assigned."""
        if not items:
            return set()
        ops = []
        for doc, _drone, fields, note in items:
            update = _advanced(doc, "assigned", at, note, fields)
            version = int(doc.get("version", 0))
            ops.append(
                UpdateOne(
                    {"_id": doc["_id"], "version": version, "status": "pending"}, {"$set": update}
                )
            )
        res = self._c.bulk_write(ops, ordered=False)
        ids = [str(doc["_id"]) for doc, *_ in items]
        if res.matched_count == len(items):
            won = set(ids)
        else:
            now = {
                str(d["_id"]): d
                for d in self._c.find({"_id": {"$in": ids}}, {"status": 1, "drone_id": 1})
            }
            won = {
                str(doc["_id"])
                for doc, drone, *_ in items
                if now.get(str(doc["_id"]), {}).get("status") == "assigned"
                and now[str(doc["_id"])].get("drone_id") == drone
            }
        pipe = self._r.pipeline(transaction=False)
        for delivery_id in won:
            self._sync_redis(delivery_id, "assigned", pipe)
        pipe.execute()
        for doc, drone, *_ in items:
            if str(doc["_id"]) not in won:
                self.release(drone, str(doc["_id"]))
        return won

    def claim_many(self, pairs: list[tuple[str, str]]) -> set[str]:
        """:meth:`claim` for many (drone, delivery) pairs in one round trip; returns the
        drones won."""
        pipe = self._r.pipeline(transaction=False)
        for drone_id, delivery_id in pairs:
            pipe.set(claim_key(drone_id), delivery_id, nx=True)
        return {drone for (drone, _), ok in zip(pairs, pipe.execute(), strict=True) if ok}

    def set_fields_many(self, fields_by_id: dict[str, dict[str, Any]]) -> None:
        if fields_by_id:
            ops = [UpdateOne({"_id": i}, {"$set": f}) for i, f in fields_by_id.items()]
            self._c.bulk_write(ops, ordered=False)

    def set_fields(self, delivery_id: str, fields: dict[str, Any]) -> None:
        """Fields outside the lifecycle (ETA, waiting reason): no version bump needed."""
        self._c.update_one({"_id": delivery_id}, {"$set": fields})

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

    def claim(self, drone_id: str, delivery_id: str) -> bool:
        """Atomically reserve a drone for one delivery (SET NX): two dispatchers can never
        both win the same drone."""
        return bool(self._r.set(claim_key(drone_id), delivery_id, nx=True))

    def release(self, drone_id: str, delivery_id: str) -> None:
        self._release(keys=[claim_key(drone_id)], args=[delivery_id])

    def queue_claimed(self, pipe: Any, drone_ids: list[str]) -> None:
        """Queue the claims lookup on a pipeline (see :meth:`claims_from`)."""
        pipe.mget([claim_key(d) for d in drone_ids])

    @staticmethod
    def claims_from(drone_ids: list[str], values: list[Any]) -> dict[str, str]:
        return {d: str(v) for d, v in zip(drone_ids, values, strict=True) if v is not None}

    def claimed(self, drone_ids: list[str]) -> dict[str, str]:
        if not drone_ids:
            return {}
        return self.claims_from(drone_ids, self._r.mget([claim_key(d) for d in drone_ids]))
