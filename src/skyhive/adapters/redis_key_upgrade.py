"""Renames the Redis keys of releases before Redis Cluster support to their hash-tagged names
(``adapters/redis_client.py``), at bootstrap, so an upgrade keeps the live picture, the active
alerts, the reminders and the dispatch state.

Only on a single Redis: a cluster never held the old names (they could not run there). Each
old key is renamed unless its new name exists already, which a newer process wrote: then the
old one is stale and dropped. The per-drone claims become fields of the claims hash. Nothing
to do costs one ``SCAN`` of the keyspace.
"""

from __future__ import annotations

import logging
from typing import Any

from skyhive.adapters.active_alerts import alert_state_key
from skyhive.adapters.dispatch_queue import DispatchKeys
from skyhive.adapters.drone_memory import memory_key, seen_key
from skyhive.adapters.live_state import drone_key
from skyhive.adapters.redis_client import is_cluster
from skyhive.adapters.reminder_schedule import REMINDER_COUNTS, REMINDERS

log = logging.getLogger(__name__)

_PER_DRONE = {
    "drone:": drone_key,
    "seenslots:": seen_key,
    "alertmem:": memory_key,
    "alertstate:": alert_state_key,
}
_CLAIM = "drone:assignment:"


def _renames(keys: DispatchKeys) -> dict[str, str]:
    return {
        "delivery_status": keys.status,
        "deliveries:pending": keys.pending,
        "deliveries:orders": keys.orders,
        "deliveries:active": keys.active,
        "deliveries:assigning": keys.journal,
        "alerts:reminders": REMINDERS,
        "alerts:reminder_counts": REMINDER_COUNTS,
    }


def _new_name(old: str, renames: dict[str, str]) -> str | None:
    if old in renames:
        return renames[old]
    if "{" in old or old.startswith(_CLAIM):
        return None
    for prefix, key_of in _PER_DRONE.items():
        if old.startswith(prefix) and len(old) > len(prefix):
            return key_of(old[len(prefix) :])
    return None


def rename_legacy_keys(client: Any, commands_stream: str) -> int:
    """Rename the old keys in ``client``'s Redis (decoding responses); how many it moved."""
    if is_cluster(client):
        return 0
    keys = DispatchKeys.beside(commands_stream)
    renames = _renames(keys)
    moves: list[tuple[str, str]] = []
    claims: list[str] = []
    for name in client.scan_iter(count=1000):
        if name.startswith(_CLAIM):
            claims.append(name)
        elif (new := _new_name(name, renames)) is not None:
            moves.append((name, new))
    if not moves and not claims:
        return 0
    pipe = client.pipeline(transaction=False)
    for old, new in moves:
        pipe.renamenx(old, new)
    done = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for (old, _), renamed in zip(moves, done, strict=True):
        if not renamed:
            pipe.delete(old)  # the new name was written by a newer process
    holders = client.mget(claims) if claims else []
    for old, delivery in zip(claims, holders, strict=True):
        if delivery is not None:
            pipe.hsetnx(keys.claims, old[len(_CLAIM) :], delivery)
        pipe.delete(old)
    pipe.execute()
    log.warning(
        "renamed %d Redis keys of an earlier release to their hash-tagged names (%d stale "
        "ones dropped) and moved %d drone claims into %s",
        sum(map(bool, done)), len(done) - sum(map(bool, done)), len(claims), keys.claims,
    )  # fmt: skip
    return len(moves) + len(claims)
