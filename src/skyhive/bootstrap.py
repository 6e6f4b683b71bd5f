"""First-start setup, idempotent: the Redis mode checked and keys of earlier releases renamed,
indexes and retention (TTL), stations, bus consumer groups."""

from __future__ import annotations

import logging

from skyhive.adapters.mongo_indexes import ensure_indexes
from skyhive.adapters.redis_client import check_mode
from skyhive.adapters.redis_key_upgrade import rename_legacy_keys
from skyhive.adapters.retention import ensure_retention
from skyhive.adapters.stations_repo import RESOURCE as STATIONS
from skyhive.adapters.stations_repo import seed_stations
from skyhive.domain.stations import bart_stations
from skyhive.wiring import Clients

log = logging.getLogger(__name__)


def bootstrap(clients: Clients) -> None:
    s = clients.settings
    check_mode(clients.redis_text)
    rename_legacy_keys(clients.redis_text, s.commands_stream)
    ensure_indexes(clients.db)
    ensure_retention(clients.db, s.history)
    new = seed_stations(clients.db, clients.live, bart_stations())
    if new:
        log.info("loaded %d BART stations", new)
        clients.read_cache.invalidate(STATIONS)
    clients.bus.ensure_group(s.telemetry_stream, s.processor_group)
