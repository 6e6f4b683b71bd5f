"""The dispatch queue in Redis, the fast path the dispatcher reads and writes instead of
MongoDB (``DispatchKeys``): the status of each delivery, the pending queue (by creation
time), the orders (what dispatching needs of each), the active set, the claims (drone → the
delivery that holds it) and the journal of assignments made here and not yet recorded in
MongoDB; and ``dispatch:wake`` (channel: an order arrived). The MongoDB record
(``delivery_records.py``) keeps it in step with each write.

An assignment changes the claim, the status, the queue, the journal and the commands stream
in one script, so every dispatch key carries the commands stream's hash tag: on a Redis
Cluster they all live in that stream's slot (``deliveries:{commands}:status``...)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from skyhive.adapters.fleet_repo import REGISTERED
from skyhive.adapters.grounding import GROUNDED, alert_ids
from skyhive.adapters.live_state import LiveState
from skyhive.adapters.mongo import Document
from skyhive.adapters.redis_client import LuaScript, RedisClient, hash_tag
from skyhive.domain.deliveries import ACTIVE, TERMINAL
from skyhive.domain.dispatch import PendingOrder

WAKE = "dispatch:wake"
# What judging a candidate needs of its live state.
VIEW_FIELDS = ("battery_pct", "status")

# Delete the claim only if it is still ours: a stale release must not free a drone that a
# later delivery has claimed since.
# KEYS: the claims hash; ARGV: drone id, delivery id.
_RELEASE = LuaScript(
    """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""
)


# Assign each (delivery, drone) pair whose delivery is still pending and whose drone nobody
# holds: the claim, the status, the queue, the journal and the drone's command (an entry of
# the commands stream, which the dispatchers relay) change together or not at all, so two
# dispatchers never double-book, and a crash never loses an assignment nor leaves it without
# its command.
# KEYS: status hash, pending zset, journal, commands stream, claims hash;
# ARGV: the stream's approximate cap, then (delivery id, record, drone id, command) per pair.
# Returns the delivery ids assigned.
_CLAIM_ASSIGN = LuaScript(
    """
local won = {}
for i = 1, (#ARGV - 1) / 4 do
  local id, rec, drone, cmd = ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i], ARGV[4 * i + 1]
  if redis.call('HGET', KEYS[1], id) == 'pending'
     and redis.call('HSETNX', KEYS[5], drone, id) == 1 then
    redis.call('HSET', KEYS[1], id, 'assigned')
    redis.call('ZREM', KEYS[2], id)
    redis.call('HSET', KEYS[3], id, rec)
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[1], '*', 'k', drone, 'v', cmd)
    won[#won + 1] = id
  end
end
return won
"""
)


# Queue a delivery MongoDB holds as pending, unless Redis knows better: a status other than
# ``pending`` there is newer than the record (an assignment journaled and commanded, its record
# not written yet), and queueing it again would give it a second drone.
# KEYS: status hash, orders hash, pending zset; ARGV: delivery id, summary, score.
_REQUEUE = LuaScript(
    """
local status = redis.call('HGET', KEYS[1], ARGV[1])
if status and status ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], 'pending')
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[1])
return 1
"""
)


@dataclass(frozen=True)
class DispatchKeys:
    """The dispatch keys, in the slot of the commands stream (``commands``: its hash tag)."""

    status: str  # hash: delivery id → status
    pending: str  # zset: pending delivery ids by creation time
    orders: str  # hash: delivery id → order summary
    active: str  # set: deliveries under way
    journal: str  # hash: delivery id → assignment not yet recorded in MongoDB
    claims: str  # hash: drone id → the delivery that holds it

    @classmethod
    def beside(cls, commands_stream: str) -> DispatchKeys:
        tag = hash_tag(commands_stream)
        return cls(
            status=f"deliveries:{{{tag}}}:status",
            pending=f"deliveries:{{{tag}}}:pending",
            orders=f"deliveries:{{{tag}}}:orders",
            active=f"deliveries:{{{tag}}}:active",
            journal=f"deliveries:{{{tag}}}:assigning",
            claims=f"deliveries:{{{tag}}}:claims",
        )


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
    def __init__(self, redis_text: RedisClient, live: LiveState, commands_stream: str) -> None:
        """``commands_stream``: where assignments queue the drones' commands."""
        self._r: Any = redis_text
        self._live = live  # the candidates' state is read with their claims, in one round trip
        self.keys = DispatchKeys.beside(commands_stream)

    def enqueue(self, doc: Document, accepted_at: float) -> None:
        """Make a pending delivery visible to the dispatchers and wake them."""
        delivery_id = str(doc["_id"])
        pipe = self._r.pipeline(transaction=False)
        pipe.hset(self.keys.status, delivery_id, "pending")
        pipe.hset(self.keys.orders, delivery_id, order_summary(doc, accepted_at))
        pipe.zadd(self.keys.pending, {delivery_id: doc["created_at"].timestamp()}, nx=True)
        pipe.execute_command("PUBLISH", WAKE, delivery_id)  # a cluster pipeline refuses publish()
        pipe.execute()

    def requeue(self, doc: Document) -> bool:
        """Queue a delivery MongoDB holds as pending unless Redis has moved it on (see
        ``_REQUEUE``); True if queued (the dispatchers are woken)."""
        delivery_id = str(doc["_id"])
        created = doc["created_at"].timestamp()
        keys = [self.keys.status, self.keys.orders, self.keys.pending]
        if _REQUEUE(self._r, keys, [delivery_id, order_summary(doc, created), created]):
            self._r.publish(WAKE, delivery_id)
            return True
        return False

    def status(self, delivery_id: str) -> str | None:
        value = self._r.hget(self.keys.status, delivery_id)
        return str(value) if value is not None else None

    def pending(self, limit: int) -> list[str]:
        return [str(x) for x in self._r.zrange(self.keys.pending, 0, limit - 1)]

    def active(self) -> list[str]:
        return sorted(str(x) for x in self._r.smembers(self.keys.active))

    def pending_orders(self, delivery_ids: list[str]) -> tuple[dict[str, PendingOrder], list[str]]:
        """The summaries of those of ``delivery_ids`` still pending, in one round trip, and
        the pending ones without a summary (queued before summaries existed, or after a
        partial write: the record rebuilds them). Ids no longer pending leave the queue."""
        if not delivery_ids:
            return {}, []
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(self.keys.status, delivery_ids)
        pipe.hmget(self.keys.orders, delivery_ids)
        statuses, raw = pipe.execute()
        out: dict[str, PendingOrder] = {}
        unsummarized = []
        for delivery_id, status, summary in zip(delivery_ids, statuses, raw, strict=True):
            if status != "pending":
                self._r.zrem(self.keys.pending, delivery_id)
            elif summary is None:
                unsummarized.append(delivery_id)
            else:
                out[delivery_id] = pending_order(summary)
        return out, unsummarized

    def put_summary(self, delivery_id: str, summary: bytes) -> None:
        self._r.hset(self.keys.orders, delivery_id, summary)

    def fleet_view(
        self, drone_ids: Sequence[str]
    ) -> tuple[dict[str, tuple[float, str]], dict[str, str], dict[str, str]]:
        """Each registered candidate's (battery %, flight status), the claims on them and
        the alert grounding each grounded one, in one round trip; drones outside the
        registry (its Redis mirror) have no state here, so they never cost a registry read."""
        ids = list(drone_ids)
        if not ids:
            return {}, {}, {}
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(self.keys.claims, ids)
        pipe.smismember(REGISTERED, ids)
        pipe.hmget(GROUNDED, ids)
        read = self._live.queue_read_fields(pipe, ids, VIEW_FIELDS)
        claims, member, grounds, *rest = pipe.execute()
        states, claimed, grounded = {}, {}, {}
        rows = zip(ids, read(rest), claims, member, grounds, strict=True)
        for drone_id, (battery, status), claim, registered, by in rows:
            if status is not None and registered:
                states[drone_id] = (float(battery or 0), status)
            if claim is not None:
                claimed[drone_id] = claim
            if by:
                grounded[drone_id] = alert_ids(by)[0]
        return states, claimed, grounded

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
        keys = [
            self.keys.status,
            self.keys.pending,
            self.keys.journal,
            commands_stream,
            self.keys.claims,
        ]
        args: list[Any] = [maxlen]
        for delivery_id, drone, record, command in pairs:
            args += [delivery_id, orjson.dumps(record), drone, command]
        return {str(x) for x in _CLAIM_ASSIGN(self._r, keys, args)}

    def journal(self, limit: int = 500) -> dict[str, dict[str, Any]]:
        """Assignments made in Redis and not yet recorded in MongoDB."""
        _, items = self._r.hscan(self.keys.journal, 0, count=limit)
        return {str(k): orjson.loads(v) for k, v in items.items()}

    def settle_journal(self, recorded: list[str], lost: dict[str, tuple[str, str | None]]) -> None:
        """Drop journal entries once the record has them (the delivery is active), or once
        they lost to a change of the record (delivery id → (drone, status now, None if the
        record is gone)): those follow the record and their claims are released."""
        pipe = self._r.pipeline(transaction=False)
        for delivery_id in recorded:
            pipe.sadd(self.keys.active, delivery_id)
            pipe.hdel(self.keys.journal, delivery_id)
        for delivery_id, (_, status) in lost.items():
            pipe.hdel(self.keys.journal, delivery_id)
            if status is None:
                pipe.hdel(self.keys.status, delivery_id)
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
            self._r.zrem(self.keys.pending, delivery_id)
            self._r.srem(self.keys.active, delivery_id)
        else:
            self._sync(delivery_id, status)

    def _sync(self, delivery_id: str, status: str, pipe: Any = None) -> None:
        own = pipe is None
        pipe = self._r.pipeline(transaction=False) if own else pipe
        pipe.hset(self.keys.status, delivery_id, status)
        if status == "pending":
            pipe.zadd(self.keys.pending, {delivery_id: 0}, nx=True)
            pipe.srem(self.keys.active, delivery_id)
            pipe.execute_command("PUBLISH", WAKE, delivery_id)
        else:
            pipe.zrem(self.keys.pending, delivery_id)
        if status in ACTIVE:
            pipe.sadd(self.keys.active, delivery_id)
        if status in TERMINAL:
            pipe.srem(self.keys.active, delivery_id)
            pipe.hdel(self.keys.orders, delivery_id)
        if own:
            pipe.execute()

    def release(self, drone_id: str, delivery_id: str) -> None:
        _RELEASE(self._r, [self.keys.claims], [drone_id, delivery_id])

    def claimed(self, drone_ids: list[str]) -> dict[str, str]:
        """Which of these drones are claimed, and by which delivery."""
        if not drone_ids:
            return {}
        values = self._r.hmget(self.keys.claims, drone_ids)
        return {d: str(v) for d, v in zip(drone_ids, values, strict=True) if v is not None}
