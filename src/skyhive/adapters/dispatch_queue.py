"""The dispatch queue in Redis, the fast path the dispatcher reads and writes instead of
MongoDB: ``delivery_status`` (id → status), ``deliveries:pending`` (zset by creation time),
``deliveries:orders`` (id → what dispatching needs), ``deliveries:active`` (set),
``drone:assignment:{drone}`` (the atomic claim of a drone by one delivery),
``deliveries:assigning`` (the journal of assignments made here and not yet recorded in
MongoDB) and ``dispatch:wake`` (channel: an order arrived). The MongoDB record
(``delivery_records.py``) keeps it in step with each write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from skyhive.adapters.fleet_repo import REGISTERED
from skyhive.adapters.live_state import LiveState
from skyhive.adapters.mongo import Document
from skyhive.domain.deliveries import TERMINAL
from skyhive.domain.dispatch import PendingOrder

STATUS_HASH = "delivery_status"
PENDING = "deliveries:pending"
ACTIVE = "deliveries:active"
WAKE = "dispatch:wake"
ORDERS = "deliveries:orders"
JOURNAL = "deliveries:assigning"
# What judging a candidate needs of its live state.
VIEW_FIELDS = ("battery_pct", "status")

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


def claim_key(drone_id: str) -> str:
    return f"drone:assignment:{drone_id}"


def pending_order(summary: bytes) -> PendingOrder:
    o = orjson.loads(summary)
    km = o.get("km")
    return PendingOrder(
        station=str(o["station"]),
        lat=float(o["lat"]),
        lon=float(o["lon"]),
        kg=float(o["kg"]),
        km=float(km) if km else None,
        accepted_at=float(o["accepted_at"]),
    )


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


class RedisDispatchQueue:
    def __init__(self, redis_text: Any, live: LiveState) -> None:
        self._r = redis_text
        self._live = live  # the candidates' state is read with their claims, in one command
        self._release = redis_text.register_script(_RELEASE)
        self._claim_assign = redis_text.register_script(_CLAIM_ASSIGN)
        self._requeue = redis_text.register_script(_REQUEUE)

    def enqueue(self, doc: Document, accepted_at: float) -> None:
        """Make a pending delivery visible to the dispatchers and wake them."""
        delivery_id = str(doc["_id"])
        pipe = self._r.pipeline(transaction=False)
        pipe.hset(STATUS_HASH, delivery_id, "pending")
        pipe.hset(ORDERS, delivery_id, order_summary(doc, accepted_at))
        pipe.zadd(PENDING, {delivery_id: doc["created_at"].timestamp()}, nx=True)
        pipe.publish(WAKE, delivery_id)
        pipe.execute()

    def requeue(self, doc: Document) -> bool:
        """Queue a delivery MongoDB holds as pending unless Redis has moved it on (see
        ``_REQUEUE``); True if queued (the dispatchers are woken)."""
        delivery_id = str(doc["_id"])
        created = doc["created_at"].timestamp()
        keys = [STATUS_HASH, ORDERS, PENDING]
        if self._requeue(keys=keys, args=[delivery_id, order_summary(doc, created), created]):
            self._r.publish(WAKE, delivery_id)
            return True
        return False

    def status(self, delivery_id: str) -> str | None:
        value = self._r.hget(STATUS_HASH, delivery_id)
        return str(value) if value is not None else None

    def pending(self, limit: int) -> list[str]:
        return [str(x) for x in self._r.zrange(PENDING, 0, limit - 1)]

    def active(self) -> list[str]:
        return sorted(str(x) for x in self._r.smembers(ACTIVE))

    def pending_orders(self, delivery_ids: list[str]) -> tuple[dict[str, PendingOrder], list[str]]:
        """The summaries of those of ``delivery_ids`` still pending, in one round trip, and
        the pending ones without a summary (queued before summaries existed, or after a
        partial write: the record rebuilds them). Ids no longer pending leave the queue."""
        if not delivery_ids:
            return {}, []
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(STATUS_HASH, delivery_ids)
        pipe.hmget(ORDERS, delivery_ids)
        statuses, raw = pipe.execute()
        out: dict[str, PendingOrder] = {}
        unsummarized = []
        for delivery_id, status, summary in zip(delivery_ids, statuses, raw, strict=True):
            if status != "pending":
                self._r.zrem(PENDING, delivery_id)
            elif summary is None:
                unsummarized.append(delivery_id)
            else:
                out[delivery_id] = pending_order(summary)
        return out, unsummarized

    def put_summary(self, delivery_id: str, summary: bytes) -> None:
        self._r.hset(ORDERS, delivery_id, summary)

    def fleet_view(
        self, drone_ids: Sequence[str]
    ) -> tuple[dict[str, tuple[float, str]], dict[str, str]]:
        """Each registered candidate's (battery %, flight status) and the claims on them, in
        one round trip; drones outside the registry (its Redis mirror) have no state here, so
        they never cost a registry read."""
        ids = list(drone_ids)
        if not ids:
            return {}, {}
        pipe = self._r.pipeline(transaction=False)
        self._live.queue_read_with(pipe, ids, VIEW_FIELDS, [claim_key(d) for d in ids])
        pipe.smismember(REGISTERED, ids)
        flat, member = pipe.execute()
        rows = LiveState.rows_read(flat, VIEW_FIELDS)
        states, claimed = {}, {}
        for drone_id, ((battery, status), claim), registered in zip(ids, rows, member, strict=True):
            if status is not None and registered:
                states[drone_id] = (float(battery or 0), status)
            if claim is not None:
                claimed[drone_id] = claim
        return states, claimed

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

    def settle_journal(self, recorded: list[str], lost: dict[str, tuple[str, str | None]]) -> None:
        """Drop journal entries once the record has them (the delivery is active), or once
        they lost to a change of the record (delivery id → (drone, status now, None if the
        record is gone)): those follow the record and their claims are released."""
        pipe = self._r.pipeline(transaction=False)
        for delivery_id in recorded:
            pipe.sadd(ACTIVE, delivery_id)
            pipe.hdel(JOURNAL, delivery_id)
        for delivery_id, (_, status) in lost.items():
            pipe.hdel(JOURNAL, delivery_id)
            if status is None:
                pipe.hdel(STATUS_HASH, delivery_id)
            else:
                self._sync(delivery_id, status, pipe)
        pipe.execute()
        for delivery_id, (drone, _) in lost.items():
            self.release(drone, delivery_id)

    def follow(self, delivery_id: str, status: str, drone_id: object) -> None:
        """After the record moved to ``status``: the fast paths say so, and a drone the
        delivery no longer needs is released."""
        self._sync(delivery_id, status)
        if isinstance(drone_id, str) and (status == "pending" or status in TERMINAL):
            self.release(drone_id, delivery_id)

    def reconcile(self, delivery_id: str, status: str | None) -> None:
        """Bring the fast paths in line with the record (after a crash between the two
        writes): a delivery leaves the pending queue and active set unless its status says."""
        if status is None:
            self._r.zrem(PENDING, delivery_id)
            self._r.srem(ACTIVE, delivery_id)
        else:
            self._sync(delivery_id, status)

    def _sync(self, delivery_id: str, status: str, pipe: Any = None) -> None:
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

    def release(self, drone_id: str, delivery_id: str) -> None:
        self._release(keys=[claim_key(drone_id)], args=[delivery_id])

    def claimed(self, drone_ids: list[str]) -> dict[str, str]:
        """Which of these drones are claimed, and by which delivery."""
        if not drone_ids:
            return {}
        values = self._r.mget([claim_key(d) for d in drone_ids])
        return {d: str(v) for d, v in zip(drone_ids, values, strict=True) if v is not None}
