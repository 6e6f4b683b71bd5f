"""Composition root: builds every client from one Settings object, lazily, on first use."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import redis
from pymongo import MongoClient
from pymongo.database import Database

from skyhive.adapters import mongo
from skyhive.adapters.alerts_repo import AlertsRepo
from skyhive.adapters.deadletters import DeadLetters
from skyhive.adapters.deliveries_repo import DeliveriesRepo
from skyhive.adapters.fleet_repo import FleetRepo
from skyhive.adapters.geofences_repo import GeofencesRepo
from skyhive.adapters.live_state import LiveState
from skyhive.adapters.notifications_repo import NotificationsRepo
from skyhive.adapters.redis_streams import RedisStreamsBus
from skyhive.adapters.stations_repo import StationCache
from skyhive.adapters.telemetry_repo import TelemetryRepo
from skyhive.settings import Settings


class Clients:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def mongo_client(self) -> MongoClient[mongo.Document]:
        return mongo.connect(self.settings.mongo_uri_or_default())

    @cached_property
    def db(self) -> Database[mongo.Document]:
        return self.mongo_client[self.settings.mongodb_db]

    def _redis(self, decode: bool) -> redis.Redis:
        return redis.Redis.from_url(
            self.settings.redis_url_or_default(),
            decode_responses=decode,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
        )

    @cached_property
    def redis_bytes(self) -> redis.Redis:
        return self._redis(decode=False)

    @cached_property
    def redis_text(self) -> redis.Redis:
        return self._redis(decode=True)

    @cached_property
    def bus(self) -> RedisStreamsBus:
        return RedisStreamsBus(self.redis_bytes, maxlen=self.settings.stream_maxlen)

    @cached_property
    def live(self) -> LiveState:
        return LiveState(self.redis_text)

    @cached_property
    def deadletters(self) -> DeadLetters:
        s = self.settings
        return DeadLetters(self.redis_bytes, s.deadletter_stream, s.deadletter_maxlen)

    @cached_property
    def alerts(self) -> AlertsRepo:
        return AlertsRepo(self.db)

    @cached_property
    def notifications(self) -> NotificationsRepo:
        return NotificationsRepo(self.db)

    @cached_property
    def telemetry(self) -> TelemetryRepo:
        return TelemetryRepo(self.db)

    @cached_property
    def fleet(self) -> FleetRepo:
        return FleetRepo(self.db, self.redis_text)

    @cached_property
    def deliveries(self) -> DeliveriesRepo:
        return DeliveriesRepo(self.db, self.redis_text)

    @cached_property
    def stations(self) -> StationCache:
        return StationCache(self.db)

    @cached_property
    def geofences(self) -> GeofencesRepo:
        return GeofencesRepo(self.db, self.redis_text)

    def close(self) -> None:
        cached: dict[str, Any] = self.__dict__
        if "mongo_client" in cached:
            self.mongo_client.close()
        for name in ("redis_bytes", "redis_text"):
            if name in cached:
                cached[name].close()
