"""One typed, frozen settings object, read from ``SKYHIVE_*`` environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from skyhive.domain.alert_config import AlertConfig, NotifyConfig
from skyhive.domain.conformance import ConformanceConfig
from skyhive.domain.forecast import ForecastConfig
from skyhive.domain.mavlink import MavlinkConfig
from skyhive.domain.pricing import PricingConfig
from skyhive.domain.remote_id import RemoteIdConfig
from skyhive.domain.station_rollups import StationRollupsConfig
from skyhive.models.config import ModelsConfig


class DashboardConfig(BaseModel):
    """What the dashboard page is told: where its map tiles come from (Leaflet's URL template,
    ``{s}``/``{z}``/``{x}``/``{y}``); empty means no tiles, a plain background."""

    model_config = ConfigDict(frozen=True)

    tiles_url: str = Field(default="https://tile.openstreetmap.org/{z}/{x}/{y}.png", max_length=500)
    tiles_attribution: str = Field(default="© OpenStreetMap contributors", max_length=500)


class HttpConfig(BaseModel):
    """How the API serves HTTP (``api/server.py``, waitress). Requests are read whole by the
    I/O loop before a worker thread sees them, so these bound what a slow or oversized client
    can cost: a socket for at most the deadlines below, never a thread."""

    model_config = ConfigDict(frozen=True)

    threads: int = Field(default=8, ge=2, le=256)  # worker threads of the one API process
    connection_limit: int = Field(default=1000, ge=10)  # open sockets; past it, accept waits
    header_timeout_s: float = Field(default=10.0, gt=0)  # first byte → end of the headers
    request_timeout_s: float = Field(default=60.0, gt=0)  # first byte → end of the body
    idle_timeout_s: float = Field(default=30.0, gt=0)  # a socket with no progress, or idle
    graceful_timeout_s: float = Field(default=5.0, ge=0)  # in-flight requests at shutdown
    # Body limits, enforced while reading, chunked bodies included (413): telemetry ingest
    # takes batches; every other route takes one JSON document.
    body_limit_bytes: int = Field(default=64 * 1024, ge=1024)
    ingest_body_limit_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    streams_per_identity: int = Field(default=2, ge=1)  # SSE streams one key/drone/IP holds
    # A reverse proxy whose X-Forwarded-For/-Proto is believed (its address, or "*"); empty:
    # none, and the client is the socket's peer.
    trusted_proxy: str = ""
    trusted_proxy_count: int = Field(default=1, ge=1)


RateLimitStrategy = Literal["moving-window", "fixed-window", "sliding-window-counter"]


class RateLimitConfig(BaseModel):
    """Requests per identity, counted in Redis so every API process shares them
    (``api/ratelimit.py``). Limits are ``limits`` strings: "50/second", "50/second;1000/minute".
    """

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    strategy: RateLimitStrategy = "moving-window"
    per_key: str = "50/second"  # an API key (a person, a script, a dashboard session)
    per_drone: str = "20/second"  # a drone's own credential (HTTP ingest)
    # No identity: anonymous (the dashboard's ~20 static files, the login page) or refused.
    per_ip: str = "30/second"
    timeout_ms: int = Field(default=250, ge=1)  # Redis; past it the request is let through
    breaker_s: float = Field(default=5.0, ge=0)  # after a Redis failure, skip limiting this long

    @field_validator("per_key", "per_drone", "per_ip")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_many(value)  # ValueError on a bad string: a config error at start, not per request
        return value


class KafkaConfig(BaseModel):
    """The Kafka cluster the bus runs on when ``SKYHIVE_BUS=kafka`` (adapters/kafka_bus.py)."""

    model_config = ConfigDict(frozen=True)

    bootstrap: str = Field(default="", max_length=2000)  # host:port[,host:port...]
    replication: int = Field(default=1, ge=1, le=7)  # replicas of a topic made on first use
    timeout_ms: int = Field(default=10_000, ge=100)  # a batch unacknowledged this long fails
    session_timeout_ms: int = Field(default=10_000, ge=1000)  # a dead member's partitions move


class HistoryConfig(BaseModel):
    """How long history is kept, at which level, and where the columnar archive lives
    (``SKYHIVE_HISTORY__RAW_DAYS=7``, ...). Raw readings are removed after ``raw_days``
    (each day is exported to Parquet and checked the night after it closes), minute rollups
    after ``minute_days``; hourly rollups are kept without limit."""

    model_config = ConfigDict(frozen=True)

    # TTL indexes remove what is older (``adapters/retention.py``). A day is exported to the
    # archive the night after it closes, so raw readings are kept two days at least.
    raw_days: int = Field(default=7, ge=2, le=3650)
    minute_days: int = Field(default=90, ge=1, le=36500)
    # False: no TTL indexes, every reading and minute is kept (history grows without bound).
    expire: bool = True
    # The Parquet archive (one folder per table and day); default ``<data_dir>/archive``.
    archive_dir: Path | None = None
    # How often the archivers look for closed days to export (one at a time exports, on a lease).
    archive_check_s: float = Field(default=600.0, gt=0, le=86_400)
    # Queries over the archive (`skyhive query`, the admin API): a time limit and a row cap.
    query_timeout_s: float = Field(default=10.0, gt=0, le=600)
    query_max_rows: int = Field(default=10_000, ge=1, le=1_000_000)


class RebalanceConfig(BaseModel):
    """The dispatcher's rebalancing (``domain/rebalance.py``): every ``every_s`` it moves idle
    drones toward the stations whose forecast demand for the next hour exceeds the drones
    docked there (``SKYHIVE_REBALANCE__ENABLED=false`` to turn it off). Without forecasts
    (the forecaster role) nothing moves."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    every_s: float = Field(default=300.0, ge=5, le=86_400)
    cooldown_s: float = Field(default=3600.0, ge=0)  # a moved drone stays put this long
    max_moves: int = Field(default=10, ge=0, le=1000)  # per pass
    max_km: float = Field(default=8.0, gt=0, le=100)
    min_battery_pct: float = Field(default=50.0, ge=0, le=100)
    keep: int = Field(default=1, ge=0, le=100)  # drones a station keeps whatever its forecast


class Settings(BaseSettings):
    # Nested sections by "__": SKYHIVE_ALERTS__DEFAULTS__ALTITUDE_CEILING_M=150,
    # SKYHIVE_NOTIFY__CHANNELS='[{"name": "ops", "url": "discord://id/token"}]'.
    model_config = SettingsConfigDict(
        env_prefix="SKYHIVE_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    # Servers. Empty means "not configured": `skyhive up` then starts an embedded one.
    mongodb_uri: str = ""
    mongodb_db: str = "skyhive"
    redis_url: str = ""
    # SKYHIVE_REDIS_URL names one node of a Redis Cluster (the client finds the others);
    # cluster mode needs a SKYHIVE_REDIS_URL: `skyhive up` embeds a single Redis only.
    redis_cluster: bool = False
    mqtt_url: str = ""

    data_dir: Path = Path(".skyhive")
    host: str = "127.0.0.1"
    api_port: int = 8080
    mqtt_port: int = 1883

    # Ingest.
    telemetry_topic: str = "skyhive/drones/+/telemetry"
    max_message_bytes: int = Field(default=16 * 1024, ge=256)
    gateway_batch_size: int = Field(default=500, ge=1)
    gateway_linger_ms: int = Field(default=10, ge=0)
    gateway_client_id: str = "skyhive-gateway"
    # Several gateways share the work: each subscribes as a member of this MQTT shared
    # subscription group (``$share/<group>/<topic>``; the broker hands each message to one
    # member) under a client id of its own (SKYHIVE_GATEWAY_CLIENT_ID, stable across its
    # restarts). Mosquitto has shared subscriptions; amqtt does not (it delivers nothing to a
    # ``$share/`` filter), so `skyhive up` refuses the setting on it. Empty: one gateway.
    gateway_share_group: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$", max_length=64)

    # Device access. Drones and SkyHive's own processes authenticate to the broker; with
    # SKYHIVE_INSECURE_DEVICES=true clients without a password are let in to every topic (a
    # quick test with any MQTT client; never in production). Service passwords are in
    # ``mqtt_services_file`` (default ``<data_dir>/mqtt-services.json``, mode 600, written by
    # `skyhive up`). A rotated or revoked credential stops working within
    # ``credentials_refresh_s``.
    insecure_devices: bool = False
    mqtt_services_file: Path | None = None
    credentials_refresh_s: float = Field(default=2.0, gt=0, le=60)

    # The broker `skyhive up` embeds when ``mqtt_url`` is not set (SKYHIVE_BROKER): "auto" runs
    # Mosquitto when its binary is installed (`make mosquitto`, Debian's package) and amqtt,
    # with a warning, when it is not; "mosquitto" insists (installing the package if it can,
    # else an error); "amqtt" the pip-installed broker.
    broker: Literal["auto", "mosquitto", "amqtt"] = "auto"

    # Bus: "redis" (Redis Streams; the embedded stack's) or "kafka" (SKYHIVE_KAFKA__BOOTSTRAP).
    # The commands stream stays on Redis Streams either way: the dispatcher's assignment
    # script appends a drone's command atomically with its claim.
    bus: Literal["redis", "kafka"] = "redis"
    kafka: KafkaConfig = KafkaConfig()
    # Partitions of the telemetry streams: a drone's readings all go to one (by its id), and
    # one member of a consumer group reads a partition at a time, so several processors or
    # archivers never work on one drone at once. On Redis, ``telemetry:{p0}`` ... and
    # ``telemetry:urgent:{p0}`` ..., each read on a lease of ``group_claim_idle_ms`` (a dead
    # member's partitions move within about that); on Kafka, the topics' partition count
    # when they are made. 1: one stream as it always was, read by any member (one processor).
    # Change it only on a drained bus: a drone's older readings stay where they were.
    bus_partitions: int = Field(default=1, ge=1, le=256)
    telemetry_stream: str = "telemetry"
    urgent_stream: str = "telemetry:urgent"  # emergencies, also on the telemetry stream
    alerts_stream: str = "alerts"
    deadletter_stream: str = "deadletters"
    stream_maxlen: int = Field(default=2_000_000, ge=1000)
    # Every consumer group (processor lanes, archiver, notifier): an entry a consumer
    # read and left unacknowledged this long is taken over by another (its consumer died).
    # A live consumer re-claims its batch while working on it, so a slow one is not robbed.
    claim_idle_ms: int = Field(default=5000, ge=100)
    deadletter_maxlen: int = Field(default=100_000, ge=100)
    # stream_maxlen is a safety cap only: streams are trimmed to what every consumer group has
    # acknowledged (services/stream_trimmer.py), and ingest is held back (MQTT not read, HTTP
    # 503) once a gateway batch more would take a stream over ``bus_backlog_limit`` entries,
    # until it is under ``bus_backlog_resume``. The limit is kept under 80% of the cap.
    bus_backlog_limit: int = Field(default=1_000_000, ge=100)
    bus_backlog_resume: int = Field(default=500_000, ge=10)
    bus_trim_s: float = Field(default=0.5, gt=0, le=60)  # trim and backlog check period
    ingest_retry_after_s: int = Field(default=2, ge=1)  # HTTP 503's Retry-After when held back

    # Processor.
    processor_group: str = "processor"
    processor_batch_size: int = Field(default=1000, ge=1)
    processor_block_ms: int = Field(default=200, ge=1)
    processor_linger_ms: int = Field(default=20, ge=0)
    # Older name of claim_idle_ms, for the processor and archiver only; wins when set.
    processor_claim_idle_ms: int | None = Field(default=None, ge=100)
    dedup_window: int = Field(default=2048, ge=16)
    archiver_group: str = "archiver"
    archiver_batch_size: int = Field(default=2000, ge=1)
    # History buckets (domain/history.py): the archiver holds a bucket's readings until its
    # drone has moved on to the next bucket, at most this long, and everything once the
    # stream is idle; 0 writes every batch at once. At most 5 s: history stays within
    # seconds of live state.
    archiver_hold_s: float = Field(default=5.0, ge=0, le=5)
    # How many routine-lane processors and archivers `skyhive up` runs, one process each, all
    # members of their role's group; more than one processor needs ``bus_partitions`` > 1
    # (refused on Redis without; on Kafka, members beyond the partitions stand by).
    processors: int = Field(default=1, ge=1, le=64)
    archivers: int = Field(default=1, ge=1, le=64)
    # The scheduling niceness (Unix, 0-19) of the bulk role, the archiver: when the CPU is
    # short, history (complete within seconds anyway) yields to dispatch, alerts, live state
    # and the API. The routine processor lane stays at 0: niced too, it fell minutes behind
    # live at 7,000 readings/s while the gateway went on filling the bus. 0: no difference.
    bulk_nice: int = Field(default=10, ge=0, le=19)

    # Deliveries and dispatch.
    events_stream: str = "events"
    commands_stream: str = "commands"
    events_topic: str = "skyhive/drones/+/events"
    service_radius_km: float = Field(default=12.0, gt=0)
    max_package_kg: float = Field(default=5.0, gt=0)  # used while no drone is registered
    dispatch_reserve_pct: float = Field(default=20.0, ge=0, lt=100)
    dispatch_radius_km: float = Field(default=15.0, gt=0)
    dispatch_tick_ms: int = Field(default=100, ge=10)
    dispatch_batch: int = Field(default=25, ge=1, le=1000)
    dispatch_silent_assigned_s: float = Field(default=30.0, gt=0)
    dispatch_silent_loaded_s: float = Field(default=120.0, gt=0)

    # Pricing and billing (see domain/pricing.py).
    pricing: PricingConfig = PricingConfig()
    invoice_due_days: int = Field(default=30, ge=0, le=365)
    billing_check_s: float = Field(default=3600.0, gt=0)  # billing run and overdue marking

    # Cache-aside for API reads (its own Redis client: short timeouts, no retries).
    cache_ttl_s: float = Field(default=60.0, gt=0)
    cache_timeout_ms: int = Field(default=100, ge=1)
    cache_breaker_s: float = Field(default=5.0, ge=0)

    # Alerting and notification (see domain/alert_config.py).
    alerts: AlertConfig = AlertConfig()
    notify: NotifyConfig = NotifyConfig()
    notifier_group: str = "notifier"
    alerts_sweep_s: float = Field(default=1.0, gt=0)  # offline checks and reminders

    # The API key client commands (`skyhive simulate-orders`) send; never logged.
    api_key: SecretStr | None = None

    # Dashboard: SKYHIVE_DASHBOARD__TILES_URL='' for a site without internet.
    dashboard: DashboardConfig = DashboardConfig()

    # Serving and limits: SKYHIVE_HTTP__HEADER_TIMEOUT_S=10,
    # SKYHIVE_RATE_LIMIT__PER_KEY="50/second", SKYHIVE_RATE_LIMIT__ENABLED=false.
    http: HttpConfig = HttpConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()

    # History, retention and the archive: SKYHIVE_HISTORY__RAW_DAYS=7.
    history: HistoryConfig = HistoryConfig()
    # Rebalancing idle drones on forecast demand: SKYHIVE_REBALANCE__EVERY_S=300.
    rebalance: RebalanceConfig = RebalanceConfig()
    # Station rollups (SKYHIVE_STATION_ROLLUPS__INTERVAL_S=60) and demand forecasts
    # (SKYHIVE_FORECAST__HORIZON_H=48): domain/station_rollups.py, domain/forecast.py.
    station_rollups: StationRollupsConfig = StationRollupsConfig()
    forecast: ForecastConfig = ForecastConfig()
    # Models on the telemetry stream (the `models` role; plug-ins, models/config.py):
    # SKYHIVE_MODELS__ENABLED='["battery_health"]', SKYHIVE_MODELS__ANOMALY__THRESHOLD=10.
    models: ModelsConfig = ModelsConfig()
    # Network Remote ID (domain/remote_id.py): SKYHIVE_REMOTE_ID__REQUIRED=true makes dispatch
    # refuse drones without a UAS ID and operator ID; SKYHIVE_REMOTE_ID__MAX_AGE_S=60.
    remote_id: RemoteIdConfig = RemoteIdConfig()
    # The MAVLink gateway (the `mavlink` role, domain/mavlink.py), started by `up` when
    # SKYHIVE_MAVLINK__LISTEN=udp:0.0.0.0:14550 (comma separated: several) is set.
    mavlink: MavlinkConfig = MavlinkConfig()
    # Conformance to the declared flight (domain/conformance.py): SKYHIVE_CONFORMANCE__ENABLED,
    # __BUFFER_M, __ALT_MIN_M/__ALT_MAX_M, __TIME_MARGIN_S, __STALE_S, __CONTINGENT_AFTER_S.
    conformance: ConformanceConfig = ConformanceConfig()

    def group_claim_idle_ms(self) -> int:
        """The claim threshold of the processor and archiver groups."""
        return self.processor_claim_idle_ms or self.claim_idle_ms

    def partitioned_streams(self) -> dict[str, int]:
        """The Redis streams split into partitions, and into how many (none with one, and
        none on Kafka, whose topics are partitioned by the brokers)."""
        if self.bus_partitions == 1 or self.bus != "redis":
            return {}
        return {self.telemetry_stream: self.bus_partitions, self.urgent_stream: self.bus_partitions}

    def mongo_uri_or_default(self) -> str:
        return self.mongodb_uri or "mongodb://127.0.0.1:27017"

    def redis_url_or_default(self) -> str:
        return self.redis_url or "redis://127.0.0.1:6379/0"

    def mqtt_url_or_default(self) -> str:
        return self.mqtt_url or f"mqtt://{self.host}:{self.mqtt_port}"

    def mqtt_services_path(self) -> Path:
        return self.mqtt_services_file or self.data_dir / "mqtt-services.json"

    def archive_path(self) -> Path:
        return self.history.archive_dir or self.data_dir / "archive"


URL_FIELDS = ("mongodb_uri", "redis_url", "mqtt_url")


def stack_file(data_dir: Path) -> Path:
    """Where a running `skyhive up` says where its servers are."""
    return data_dir / "run" / "stack.json"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI options) on top.

    A server not configured by URL is taken from the stack file of a `skyhive up` running on
    the same data dir, so `skyhive simulate` or `skyhive drones list` beside it just work.
    """
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    path = stack_file(settings.data_dir)
    missing = [f for f in URL_FIELDS if not getattr(settings, f)]
    if missing and path.is_file():
        try:
            running = json.loads(path.read_text())
        except (OSError, ValueError):
            return settings
        found = {f: str(running[f]) for f in missing if running.get(f)}
        return settings.model_copy(update=found)
    return settings
