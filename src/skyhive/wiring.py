"""Composition root: builds every client from one Settings object, lazily, on first use."""

from __future__ import annotations

import os
import socket
import uuid
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pymongo import MongoClient
from pymongo.database import Database
from redis.backoff import NoBackoff
from redis.retry import Retry

from skyhive.adapters import mongo
from skyhive.adapters.active_alerts import RedisActiveAlerts
from skyhive.adapters.alerts_repo import AlertsRepo
from skyhive.adapters.api_keys_repo import ApiKeysRepo
from skyhive.adapters.audit_repo import AuditRepo
from skyhive.adapters.conformance_store import RedisDeclarations
from skyhive.adapters.credentials_repo import CredentialsRepo, DeviceVerifier
from skyhive.adapters.customers_repo import CustomersRepo
from skyhive.adapters.deadletters import DeadLetters
from skyhive.adapters.delivery_billing import MongoDeliveryBilling
from skyhive.adapters.delivery_records import MongoDeliveryRecords
from skyhive.adapters.delivery_traces import MongoDeliveryTraces
from skyhive.adapters.dispatch_queue import RedisDispatchQueue
from skyhive.adapters.drone_memory import DroneMemory
from skyhive.adapters.fleet_repo import FleetRepo
from skyhive.adapters.forecasts_repo import ForecastsRepo
from skyhive.adapters.geofences_repo import GeofencesRepo
from skyhive.adapters.grounding import RedisGrounding
from skyhive.adapters.invoices_repo import InvoicesRepo
from skyhive.adapters.kafka_bus import KafkaBus
from skyhive.adapters.kafka_lag import KafkaLag
from skyhive.adapters.live_state import LiveState
from skyhive.adapters.model_state_repo import ModelStateRepo
from skyhive.adapters.model_stats import RedisModelStats
from skyhive.adapters.money import MoneyCodec
from skyhive.adapters.notifications_repo import NotificationsRepo
from skyhive.adapters.prophet_model import ProphetModel
from skyhive.adapters.read_cache import ReadCache
from skyhive.adapters.rebalance_moves_repo import RebalanceMovesRepo
from skyhive.adapters.redis_client import RedisClient, connect
from skyhive.adapters.redis_streams import RedisStreamsBus
from skyhive.adapters.reminder_schedule import RedisReminderSchedule
from skyhive.adapters.rollups_repo import RollupsRepo
from skyhive.adapters.routed_bus import RoutedBus
from skyhive.adapters.send_marks import RedisSendMarks
from skyhive.adapters.sessions_store import SessionStore
from skyhive.adapters.station_hours_repo import StationHoursRepo
from skyhive.adapters.stations_repo import StationCache
from skyhive.adapters.stream_trimmer import StreamTrimmer
from skyhive.adapters.system_clock import SystemClock
from skyhive.adapters.telemetry_repo import TelemetryRepo
from skyhive.ports.bus import Bus
from skyhive.ports.clock import Clock
from skyhive.services.alert_actions import AlertActions
from skyhive.services.alerting import AlertEngine
from skyhive.services.analytics import Analytics
from skyhive.services.billing import BillingService
from skyhive.services.conformance import ConformanceWatch
from skyhive.services.declarations import FlightDeclarer
from skyhive.services.deliveries import DeliveryService
from skyhive.services.forecaster import Forecaster
from skyhive.services.ingest import Ingest
from skyhive.services.overview import OverviewReader
from skyhive.services.rollups import DroneRollups
from skyhive.services.station_rollups import StationRollups
from skyhive.services.stream_trimmer import IngestGate, trim_policy
from skyhive.settings import Settings

if TYPE_CHECKING:  # pyarrow and DuckDB are imported by the processes that use the archive
    from skyhive.adapters.archive_sql import ArchiveSQL
    from skyhive.adapters.parquet_archive import ParquetArchive
    from skyhive.services.archive_export import ArchiveExporter
    from skyhive.services.history_seed import HistorySeeder


class Clients:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._kafka: KafkaBus | None = None  # made with the bus when SKYHIVE_BUS=kafka

    @cached_property
    def clock(self) -> Clock:
        return SystemClock()

    @cached_property
    def mongo_client(self) -> MongoClient[mongo.Document]:
        return mongo.connect(self.settings.mongo_uri_or_default())

    @cached_property
    def db(self) -> Database[mongo.Document]:
        return self.mongo_client[self.settings.mongodb_db]

    def _redis(self, decode: bool) -> RedisClient:
        return connect(
            self.settings.redis_url_or_default(),
            cluster=self.settings.redis_cluster,
            decode_responses=decode,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
        )

    @cached_property
    def redis_bytes(self) -> RedisClient:
        return self._redis(decode=False)

    @cached_property
    def redis_text(self) -> RedisClient:
        return self._redis(decode=True)

    @cached_property
    def redis_cache(self) -> RedisClient:
        """The read cache's own client: a slow or dead Redis must cost a read tens of
        milliseconds once, not seconds each time, so short timeouts and no retries."""
        timeout = self.settings.cache_timeout_ms / 1000
        return connect(
            self.settings.redis_url_or_default(),
            cluster=self.settings.redis_cluster,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    @cached_property
    def read_cache(self) -> ReadCache:
        s = self.settings
        return ReadCache(self.redis_cache, s.cache_ttl_s, s.cache_breaker_s, self.clock)

    @cached_property
    def money(self) -> MoneyCodec:
        return MoneyCodec(self.db)

    @cached_property
    def customers(self) -> CustomersRepo:
        return CustomersRepo(self.db, self.read_cache)

    @cached_property
    def invoices(self) -> InvoicesRepo:
        return InvoicesRepo(self.db, self.money, self.read_cache)

    @cached_property
    def redis_bus(self) -> RedisStreamsBus:
        """Redis Streams: the whole bus by default; the commands stream always."""
        s = self.settings
        return RedisStreamsBus(
            self.redis_bytes,
            maxlen=s.stream_maxlen,
            deadletters=self.deadletters,
            partitions=s.partitioned_streams(),
            lease_ms=s.group_claim_idle_ms(),
        )

    @cached_property
    def bus(self) -> Bus:
        """The bus every role uses (``SKYHIVE_BUS``); on Kafka, commands stay on Redis."""
        s = self.settings
        if s.bus != "kafka":
            return self.redis_bus
        k = s.kafka
        self._kafka = KafkaBus(
            k.bootstrap,
            partitions=s.bus_partitions,
            replication=k.replication,
            timeout_ms=k.timeout_ms,
            session_timeout_ms=k.session_timeout_ms,
        )
        return RoutedBus(self._kafka, {s.commands_stream: self.redis_bus})

    @cached_property
    def stream_trimmer(self) -> StreamTrimmer:
        s = self.settings
        elsewhere = KafkaLag(s.kafka.bootstrap) if s.bus == "kafka" else None
        return StreamTrimmer(
            self.redis_bytes, trim_policy(s), s.deadletter_stream, s.deadletter_maxlen, elsewhere
        )

    @cached_property
    def ingest(self) -> Ingest:
        """One per set of clients (a process's API app, a gateway), so the ingest gate's
        cached verdict is shared by every request."""
        s = self.settings
        return Ingest(
            self.bus,
            self.deadletters,
            s.telemetry_stream,
            s.max_message_bytes,
            s.events_stream,
            s.urgent_stream,
            IngestGate(self.stream_trimmer, self.clock, s.ingest_retry_after_s),
        )

    @cached_property
    def overview(self) -> OverviewReader:
        return OverviewReader(
            live=self.live,
            deliveries=self.delivery_billing,
            alerts=self.alerts,
            invoices=self.invoices,
            money=self.money,
            clock=self.clock,
            currency=self.settings.pricing.currency,
        )

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
    def active_alerts(self) -> RedisActiveAlerts:
        return RedisActiveAlerts(self.redis_text)

    @cached_property
    def grounding(self) -> RedisGrounding:
        return RedisGrounding(self.redis_text)

    @cached_property
    def model_states(self) -> ModelStateRepo:
        return ModelStateRepo(self.db)

    @cached_property
    def model_stats(self) -> RedisModelStats:
        return RedisModelStats(self.redis_text)

    @cached_property
    def fleet_state(self) -> DroneMemory:
        return DroneMemory(self.redis_text, self.active_alerts, self.settings.dedup_window)

    @cached_property
    def alert_engine(self) -> AlertEngine:
        return AlertEngine(
            self.settings,
            active=self.active_alerts,
            store=self.alerts,
            feed=self.live,
            bus=self.bus,
            stations=self.stations,
            grounding=self.grounding,
            clock=self.clock,
        )

    @cached_property
    def delivery_service(self) -> DeliveryService:
        return DeliveryService(
            self.settings,
            records=self.deliveries,
            stations=self.stations,
            fleet=self.fleet,
            customers=self.customers,
            live=self.live,
            bus=self.bus,
            clock=self.clock,
        )

    @cached_property
    def billing(self) -> BillingService:
        return BillingService(
            self.settings,
            deliveries=self.delivery_billing,
            invoices=self.invoices,
            money=self.money,
            clock=self.clock,
        )

    @cached_property
    def history_seeder(self) -> HistorySeeder:
        """Simulated history (`skyhive simulate --history`, the demo): imported on use."""
        from skyhive.services.history_seed import HistorySeeder

        return HistorySeeder(
            self.settings,
            fleet=self.fleet,
            customers=self.customers,
            telemetry=self.telemetry,
            readings=self.telemetry,
            deliveries=self.deliveries,
            alerts=self.alerts,
            active_alerts=self.active_alerts,
            billing=self.billing,
            rollups=self.rollups,
            clock=self.clock,
        )

    @cached_property
    def alert_actions(self) -> AlertActions:
        return AlertActions(
            store=self.alerts,
            active=self.active_alerts,
            fleet=self.fleet_state,
            engine=self.alert_engine,
            clock=self.clock,
        )

    @cached_property
    def reminders(self) -> RedisReminderSchedule:
        return RedisReminderSchedule(self.redis_text)

    @cached_property
    def send_marks(self) -> RedisSendMarks:
        return RedisSendMarks(self.redis_text)

    @cached_property
    def notifications(self) -> NotificationsRepo:
        return NotificationsRepo(self.db)

    @cached_property
    def telemetry(self) -> TelemetryRepo:
        return TelemetryRepo(self.db)

    @cached_property
    def rebalance_moves(self) -> RebalanceMovesRepo:
        return RebalanceMovesRepo(self.db)

    @cached_property
    def archive(self) -> ParquetArchive:
        from skyhive.adapters.parquet_archive import ParquetArchive

        return ParquetArchive(self.settings.archive_path())

    @cached_property
    def archive_exporter(self) -> ArchiveExporter:
        """The Parquet archive's export (and ``exported_and_verified``, retention's check)."""
        from skyhive.adapters.archive_manifest import MongoArchiveManifest
        from skyhive.adapters.archive_source import MongoArchiveSource
        from skyhive.services.archive_export import ArchiveExporter

        h = self.settings.history
        return ArchiveExporter(
            MongoArchiveSource(self.db),
            self.archive,
            MongoArchiveManifest(self.db),
            self.clock,
            raw_days=h.raw_days,
            expires=h.expire,
            holder=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        )

    @cached_property
    def archive_sql(self) -> ArchiveSQL:
        from skyhive.adapters.archive_sql import ArchiveSQL

        h = self.settings.history
        return ArchiveSQL(self.archive, h.query_timeout_s, h.query_max_rows)

    @cached_property
    def analytics(self) -> Analytics:
        """The analytics API's answers: the KPI SQL on DuckDB over the window's records."""
        from skyhive.adapters.analytics_source import MongoAnalyticsSource
        from skyhive.adapters.analytics_sql import LiveKpis

        engine = LiveKpis(self.settings.history.query_timeout_s)
        return Analytics(MongoAnalyticsSource(self.db), engine, self.stations, self.clock)

    @cached_property
    def rollup_store(self) -> RollupsRepo:
        return RollupsRepo(self.db)

    @cached_property
    def rollups(self) -> DroneRollups:
        return DroneRollups(
            self.telemetry,
            self.rollup_store,
            self.fleet,
            self.clock,
            self.settings.archiver_hold_s,
        )

    @cached_property
    def fleet(self) -> FleetRepo:
        return FleetRepo(self.db, self.redis_text)

    @cached_property
    def credentials(self) -> CredentialsRepo:
        return CredentialsRepo(self.db)

    @cached_property
    def device_verifier(self) -> DeviceVerifier:
        return DeviceVerifier(self.credentials, self.settings.credentials_refresh_s, self.clock)

    @cached_property
    def deliveries(self) -> MongoDeliveryRecords:
        return MongoDeliveryRecords(self.db, self.dispatch_queue, self.money, self.read_cache)

    @cached_property
    def dispatch_queue(self) -> RedisDispatchQueue:
        return RedisDispatchQueue(self.redis_text, self.live, self.settings.commands_stream)

    @cached_property
    def declarations(self) -> RedisDeclarations:
        return RedisDeclarations(self.redis_text, self.dispatch_queue.keys.status)

    @cached_property
    def conformance(self) -> ConformanceWatch | None:
        """The processor's check of readings against declared flights (None: switched off)."""
        cfg = self.settings.conformance
        if not cfg.enabled:
            return None
        return ConformanceWatch(
            cfg,
            declarations=self.declarations,
            records=self.deliveries,
            engine=self.alert_engine,
            stations=self.stations,
            clock=self.clock,
        )

    @cached_property
    def flight_declarer(self) -> FlightDeclarer | None:
        """The tracker's declaring of assigned flights (None: conformance switched off)."""
        cfg = self.settings.conformance
        if not cfg.enabled:
            return None
        return FlightDeclarer(
            cfg, records=self.deliveries, declarations=self.declarations, stations=self.stations
        )

    @cached_property
    def delivery_billing(self) -> MongoDeliveryBilling:
        return MongoDeliveryBilling(self.db, self.read_cache)

    @cached_property
    def stations(self) -> StationCache:
        return StationCache(self.db)

    @cached_property
    def station_hours(self) -> StationHoursRepo:
        return StationHoursRepo(self.db)

    @cached_property
    def station_rollups(self) -> StationRollups:
        return StationRollups(
            self.settings.station_rollups,
            MongoDeliveryTraces(self.db),
            self.station_hours,
            self.clock,
        )

    @cached_property
    def forecasts(self) -> ForecastsRepo:
        return ForecastsRepo(self.db)

    @cached_property
    def forecaster(self) -> Forecaster:
        f = self.settings.forecast
        return Forecaster(
            f,
            history=self.station_hours,
            store=self.forecasts,
            stations=self.stations,
            model=ProphetModel(f.interval_width, f.uncertainty_samples),
            clock=self.clock,
        )

    @cached_property
    def geofences(self) -> GeofencesRepo:
        return GeofencesRepo(self.db, self.redis_text)

    @cached_property
    def api_keys(self) -> ApiKeysRepo:
        return ApiKeysRepo(self.db, self.redis_bytes)

    @cached_property
    def sessions(self) -> SessionStore:
        return SessionStore(self.redis_bytes)

    @cached_property
    def audit(self) -> AuditRepo:
        return AuditRepo(self.db)

    def close(self) -> None:
        cached: dict[str, Any] = self.__dict__
        if self._kafka is not None:
            self._kafka.close()  # leaves its groups, committing what was acknowledged
        if "redis_bus" in cached:
            self.redis_bus.close()  # gives back its partitions (and before Redis closes)
        if "mongo_client" in cached:
            self.mongo_client.close()
        for name in ("redis_bytes", "redis_text", "redis_cache"):
            if name in cached:
                cached[name].close()
