"""How a Redis bus write becomes durable before the gateway acknowledges it.

Redis answers a write once it is in memory; whether it survives a machine crash depends on
the server. Three cases, detected once per bus from ``INFO``:

- ``waitaof``: Redis >= 7.2 with its AOF on. Each publish ends with ``WAITAOF 1 0 <ms>`` in
  the same pipeline, so it returns only once the local AOF holds the batch on disk, whatever
  ``appendfsync`` says (no extra round trip; the at-scale case).
- ``server``: an older Redis with its AOF on (the embedded 6.2). Durability is the server's
  ``appendfsync``: ``always`` (what `skyhive up` runs) makes every answered write durable;
  with ``everysec`` up to a second of acknowledged readings can be lost, which is logged.
- ``none``: no AOF. Acknowledged readings are only in memory; logged as a warning.

On a Redis Cluster every master is asked, and the weakest answer holds for all; ``WAITAOF``
then goes to each master that took part of the batch.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Literal

from skyhive.adapters.redis_client import masters

log = logging.getLogger(__name__)

Mode = Literal["waitaof", "server", "none"]


class NotDurable(RuntimeError):
    """WAITAOF timed out: the batch is written but not yet on disk, so it must not be
    acknowledged (the gateway retries it; the bus's readers are idempotent)."""


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(".")[:2])
    except ValueError:
        return (0,)


_STRENGTH: tuple[Mode, ...] = ("none", "server", "waitaof")


def durability_mode(client: Any) -> Mode:
    """What makes a write on ``client``'s servers durable (see the module docstring)."""
    return min((_mode_of(m) for m in masters(client)), key=_STRENGTH.index)


def _mode_of(client: Any) -> Mode:
    server = client.info("server")
    persistence = client.info("persistence")
    if not int(persistence.get("aof_enabled", 0)):
        log.warning(
            "Redis has no append-only file: acknowledged readings on the bus survive no "
            "Redis crash (turn on appendonly; see docs/architecture.md, Durability)"
        )
        return "none"
    if _version(str(server.get("redis_version", "0"))) >= (7, 2):
        return "waitaof"
    fsync = ""
    with contextlib.suppress(Exception):  # managed Redis may refuse CONFIG: reported below
        fsync = str(client.config_get("appendfsync").get("appendfsync", ""))
    if fsync != "always":
        log.warning(
            "Redis %s fsyncs its AOF with appendfsync=%s and has no WAITAOF: up to a second "
            "of acknowledged readings can be lost in a machine crash (set appendfsync always)",
            server.get("redis_version"),
            fsync or "unknown",
        )
    return "server"


def check_waitaof(reply: Any) -> None:
    """``WAITAOF`` answers ``[local, replicas]``; ``local`` 0 means not yet fsynced."""
    if not reply or int(reply[0]) < 1:
        raise NotDurable("Redis did not fsync the batch to its AOF in time (WAITAOF)")
