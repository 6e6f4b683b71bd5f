"""Notifier: alert changes and reminders → the notification channels (apprise URLs).

It consumes the ``alerts`` stream (consumer group ``settings.notifier_group``; entries a dead
consumer left unacknowledged are claimed after ``claim_idle_ms``), in a process of its own, so
alerts never wait behind history writes.

- ``opened``, ``escalated``, ``deescalated`` and ``resolved`` go to every non-escalation
  channel that wants the alert's type and severity; ``deescalated`` and ``resolved`` also go
  to a channel that was told of the alert before, though it no longer wants the new severity
  (a critical-only channel hears that its critical alert is over). ``acknowledged``: nothing.
- Each channel has its own worker thread and queue: a channel that is down or slow holds back
  no other. A send is bounded by ``notify.timeout_s``: apprise's connect and read timeouts
  (``cto``/``rto``, unless the URL sets them; per socket operation, so a server trickling
  bytes can take longer; SMTP uses the connect one throughout), and retried ``notify.retries`` times, ``backoff_s``
  doubling. A channel that just gave up on a message gets one attempt per message until a
  send succeeds again, so a dead channel cannot build a backlog that stalls the consumer.
- Throttling: at most one message per (drone, type, channel) per ``notify.throttle_s``
  (shared by every notifier through Redis); escalations and reminders are never throttled.
- Every attempt is recorded in ``alert_notifications`` (``adapters/notifications_repo.py``);
  the final one under a deterministic id, checked before sending, so a message redelivered
  after a crash is not sent again once recorded.
- A stream entry is acknowledged when every channel is done with it (sent, throttled or gave
  up); entries finish out of order.
- Reminders: an open (unacknowledged) critical alert is reminded every
  ``notify.reminder_every_s``; from the ``escalate_after_reminders``-th reminder on, each one
  also goes to the escalation channels. The schedule lives in Redis (``alerts:reminders``,
  alert id → due epoch; ``alerts:reminder_counts``, alert id → ``start:count``), so a restart
  forgets nothing; a due reminder is leased, and rescheduled only once every channel is done
  with it. The alert is read back from MongoDB first: once acknowledged, resolved or no longer
  critical, it is dropped from the schedule.

Channel URLs carry secrets: logs and recorded errors show them masked.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import apprise
import orjson

from skyhive.adapters.alerts_repo import serialize
from skyhive.adapters.bus import BusMessage
from skyhive.adapters.deadletters import DeadLetter
from skyhive.adapters.mongo import restore_datetimes
from skyhive.adapters.notifications_repo import NotificationsRepo, Outcome, record_id
from skyhive.domain.alert_config import Channel, NotifyConfig
from skyhive.services.periodic import start_every
from skyhive.settings import Settings
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

NOTIFIED_CHANGES = ("opened", "escalated", "deescalated", "resolved")
CLOSING_CHANGES = ("deescalated", "resolved")  # also to channels told of the alert before
REMINDERS = "alerts:reminders"  # ZSET alert id → due epoch seconds
REMINDER_COUNTS = "alerts:reminder_counts"  # HASH alert id → "<start ms>:<reminders sent>"
THROTTLE_PREFIX = "notify:throttle"
CLAIM_IDLE_MS = 30_000  # an entry unacknowledged this long belongs to a dead notifier
MAX_IN_FLIGHT = 1000  # stream entries read but not yet finished; reading pauses beyond
BATCH = 100
REMINDER_LEASE_S = 60.0  # a claimed reminder comes due again if its notifier died
DATE_FIELDS = ("opened_at", "last_seen", "acknowledged_at", "resolved_at")

# Take the due reminders (at most ARGV[3]) and lease them until ARGV[2]; returns
# [id, "start:count", ...]. A missing count starts at ARGV[4] (ms) with none sent.
_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], m)
  local v = redis.call('HGET', KEYS[2], m)
  if not v then
    v = ARGV[4] .. ':0'
    redis.call('HSET', KEYS[2], m, v)
  end
  table.insert(out, m)
  table.insert(out, v)
end
return out
"""
# Schedule ARGV[1]'s first reminder at ARGV[2] unless it is scheduled already.
_SCHEDULE = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. ':0')
return 1
"""
# A reminder is done: count it and set the next one, unless the schedule changed meanwhile
# (dropped, or dropped and started again).
_REMINDED = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], 'XX', ARGV[4], ARGV[1])
return 1
"""


# --- messages --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    notify_type: apprise.NotifyType


def _where(details: dict[str, Any]) -> str | None:
    lat, lon = details.get("lat"), details.get("lon")
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        return f"{lat:.5f}, {lon:.5f}"
    return None


def _details_line(details: dict[str, Any]) -> str:
    shown = []
    for k, v in details.items():
        if k in ("lat", "lon"):
            continue
        text = orjson.dumps(v).decode() if isinstance(v, dict | list) else str(v)
        shown.append(f"{k}={text[:80]}")
    return ", ".join(shown)[:500]


def render(alert: dict[str, Any], change: str, reminder: int = 0) -> Message:
    """Title and plain-text body of a notification. ``change`` is a stream change or
    ``reminder`` / ``escalation`` (``reminder`` is then the reminder's number)."""
    drone, kind = alert.get("drone_id", "?"), alert.get("type", "?")
    severity = str(alert.get("severity", "warning"))
    raw_details = alert.get("details")
    details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
    where = _where(details)
    alert_id = alert.get("id", "?")
    if change == "resolved":
        by = alert.get("resolved_by")
        at = alert.get("resolved_at") or alert.get("last_seen") or "now"
        lines = [
            f"Drone {drone}: {kind} resolved at {at}" + (f" by {by}." if by else "."),
            f"Alert id: {alert_id}",
        ]
        return Message(
            f"[RESOLVED] {kind} on {drone}", "\n".join(lines), apprise.NotifyType.SUCCESS
        )
    label = {
        "opened": "opened",
        "escalated": "escalated to critical" if severity == "critical" else "escalated",
        "deescalated": f"de-escalated to {severity}",
        "reminder": f"still unacknowledged (reminder {reminder})",
        "escalation": f"ESCALATED: unacknowledged after {reminder} reminders",
    }.get(change, change)
    prefix = "ESCALATION" if change == "escalation" else severity.upper()
    lines = [
        f"Drone: {drone}",
        f"Alert: {kind}, {severity} — {label}",
        f"Count: {alert.get('count', 1)} reading(s)",
    ]
    if where:
        lines.append(f"Where: {where}")
    lines.append(f"Time: {alert.get('last_seen') or 'now'} (opened {alert.get('opened_at', '?')})")
    if extra := _details_line(details):
        lines.append(f"Details: {extra}")
    if alert.get("acknowledged_by"):
        lines.append(f"Acknowledged by: {alert['acknowledged_by']}")
    lines.append(f"Alert id: {alert_id}")
    kind_of = (
        apprise.NotifyType.FAILURE
        if severity == "critical" or change == "escalation"
        else apprise.NotifyType.WARNING
    )
    return Message(f"[{prefix}] {kind} on {drone} {label}", "\n".join(lines), kind_of)


# --- apprise ---------------------------------------------------------------------------------


class _ThreadCapture(logging.Handler):
    """Collects apprise's warnings of the current thread only (its senders log the reason of
    a failure; ``notify`` returns only False)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        lines: list[str] | None = getattr(self._local, "lines", None)
        if lines is not None:
            lines.append(record.getMessage())

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[str]]:
        lines: list[str] = []
        self._local.lines = lines
        try:
            yield lines
        finally:
            self._local.lines = None


_CAPTURE = _ThreadCapture()
_capture_lock = threading.Lock()


def _install_capture() -> None:
    apprise_log = logging.getLogger("apprise")
    with _capture_lock:
        if _CAPTURE not in apprise_log.handlers:
            apprise_log.addHandler(_CAPTURE)
        # Apprise's debug lines carry the full request URLs, with their tokens.
        if apprise_log.getEffectiveLevel() < logging.INFO:
            apprise_log.setLevel(logging.INFO)


def url_secrets(url: str) -> list[str]:
    """The parts of an apprise URL that may be secret: credentials, tokens in the host or the
    path (``discord://ID/TOKEN``, ``slack://A/B/C``), query values. Longest first."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        found = [parts.username or "", parts.password or ""]
    except ValueError:
        return [url]
    if "." not in host:  # a token, not a host name or an address
        found.append(host)
    found += [p for p in parts.path.split("/") if len(p) >= 6]
    found += [v for _, v in parse_qsl(parts.query) if len(v) >= 6]
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


class AppriseSender:
    """One channel's apprise object, with the per-send timeout and masked diagnostics."""

    def __init__(self, url: str, timeout_s: float) -> None:
        asset = apprise.AppriseAsset(async_mode=False)  # send on the caller's thread
        self._apprise = apprise.Apprise(asset=asset)
        self._secrets = url_secrets(url)
        plugin = apprise.Apprise.instantiate(url, asset=asset)
        self.valid = plugin is not None
        if plugin is None:
            self.display = url.split("://", 1)[0] + "://(invalid URL)"
            return
        query = {k for k, _ in parse_qsl(urlsplit(url).query)}
        if "cto" not in query:
            plugin.socket_connect_timeout = timeout_s
        if "rto" not in query:
            plugin.socket_read_timeout = timeout_s
        self._apprise.add(plugin)
        self.display = self.scrub(str(plugin.url(privacy=True)))  # type: ignore[no-untyped-call]

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def send(self, msg: Message) -> str | None:
        """None once sent, else why not (secrets masked)."""
        if not self.valid:
            return "invalid apprise URL"
        with _CAPTURE.capture() as lines:
            try:
                ok = self._apprise.notify(
                    body=msg.body,
                    title=msg.title,
                    notify_type=msg.notify_type,
                    body_format=apprise.NotifyFormat.TEXT,
                )
            except Exception as exc:  # a plugin bug must not kill the worker
                ok = False
                lines.append(f"{type(exc).__name__}: {exc}")
        if ok:
            return None
        return self.scrub("; ".join(lines[-3:]) or "the notification service refused it")[:1000]


# --- channel workers -------------------------------------------------------------------------


class _Stopped(Exception):
    pass


@dataclass(slots=True)
class _Job:
    """One message (a stream entry or a reminder) fanned out to its channels."""

    pending: int
    on_done: Callable[[], None]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finish(self) -> None:
        with self.lock:
            self.pending -= 1
            done = self.pending == 0
        if done:
            self.on_done()


Throttle = Literal["check", "take", "none"]


@dataclass(frozen=True, slots=True)
class _Task:
    job: _Job
    alert_id: str
    drone_id: str
    alert_type: str
    change: str  # the recorded change: a stream change, "reminder" or "escalation"
    occurrence: str  # which message of the alert's (see ``record_id``)
    message: Message
    throttle: Throttle
    only_if_told: bool = False  # send only if this channel was sent this alert before
    extra: dict[str, Any] = field(default_factory=dict)  # recorded with the attempts


class ChannelWorker:
    """A channel's queue and thread: sends, retries, throttles and records its messages."""

    def __init__(
        self,
        channel: Channel,
        config: NotifyConfig,
        clients: Clients,
    ) -> None:
        self.channel = channel
        self.name = channel.name
        self.sender = AppriseSender(channel.url, config.timeout_s)
        self._cfg = config
        self._repo: NotificationsRepo = clients.notifications
        self._redis: Any = clients.redis_text
        self._stop = threading.Event()
        self._queue: queue.Queue[_Task] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.down = False  # gave up on the last message: one attempt each until a success
        self.sent = self.failed = self.gave_up = self.throttled = 0

    def start(self, stop: threading.Event) -> None:
        self._stop = stop
        self._thread = threading.Thread(target=self._run, name=f"notify-{self.name}", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def put(self, task: _Task) -> None:
        self._queue.put(task)

    def backlog(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                task = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            backoff = 0.5
            while not self._stop.is_set():
                try:
                    self._handle(task)
                    break
                except _Stopped:
                    return
                except Exception as exc:  # MongoDB or Redis away: keep the task, try again
                    log.warning(
                        "channel %s: alert %s %s not handled (%s); retrying in %.1fs",
                        self.name,
                        task.alert_id,
                        task.change,
                        self.sender.scrub(str(exc)),
                        backoff,
                    )
                    if self._stop.wait(backoff):
                        return
                    backoff = min(backoff * 2, 30.0)
        # Tasks left in the queue are not finished: their entries stay unacknowledged and are
        # delivered again, their reminders come due again.

    def _handle(self, task: _Task) -> None:
        rid = record_id(task.alert_id, task.occurrence, self.name)
        if self._repo.final(rid) is not None:
            log.debug("channel %s: %s done before (redelivered)", self.name, rid)
            task.job.finish()
            return
        if task.only_if_told and not self._repo.was_sent(task.alert_id, self.name):
            task.job.finish()
            return

        def record(outcome: Outcome, attempt: int, error: str | None = None) -> None:
            final = None if outcome == "failed" else rid
            self._repo.record(
                task.alert_id,
                self.name,
                task.change,
                outcome,
                attempt,
                error,
                final_id=final,
                extra=task.extra,
            )

        if not self._may_send(task, rid):
            record("throttled", 0)
            self.throttled += 1
            task.job.finish()
            return
        attempts = 1 if self.down or not self.sender.valid else self._cfg.retries + 1
        for n in range(1, attempts + 1):
            error = self.sender.send(task.message)
            if error is None:
                record("sent", n)
                self.sent += 1
                if self.down:
                    log.info("channel %s: sending again", self.name)
                self.down = False
                task.job.finish()
                return
            if n == attempts:
                record("gave_up", n, error)
                self.gave_up += 1
                self.down = True
                log.error(
                    "channel %s (%s): gave up on alert %s %s after %d attempt(s): %s",
                    self.name,
                    self.sender.display,
                    task.alert_id,
                    task.change,
                    n,
                    error,
                )
                task.job.finish()
                return
            record("failed", n, error)
            self.failed += 1
            delay = self._cfg.backoff_s * 2 ** (n - 1)
            log.warning(
                "channel %s: alert %s %s, attempt %d of %d failed: %s; retrying in %.1fs",
                self.name,
                task.alert_id,
                task.change,
                n,
                attempts,
                error,
                delay,
            )
            if self._stop.wait(delay):
                raise _Stopped

    def _may_send(self, task: _Task, rid: str) -> bool:
        """The throttle: one message per (drone, type, channel) per ``throttle_s``, shared by
        every notifier through Redis. The slot remembers which message took it, so that
        message, delivered again after a crash, is not throttled by itself."""
        if task.throttle == "none" or self._cfg.throttle_s <= 0:
            return True
        key = f"{THROTTLE_PREFIX}:{self.name}:{task.drone_id}:{task.alert_type}"
        ttl_ms = max(1, int(self._cfg.throttle_s * 1000))
        if task.throttle == "take":  # an escalation: always sent, and restarts the window
            self._redis.set(key, rid, px=ttl_ms)
            return True
        for _ in range(3):
            if self._redis.set(key, rid, px=ttl_ms, nx=True):
                return True
            holder = self._redis.get(key)
            if holder is not None:
                return bool(holder == rid)
        return True


# --- the notifier ----------------------------------------------------------------------------


class Notifier:
    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        consumer: str | None = None,
        *,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        _install_capture()
        self._s = settings
        self._cfg = settings.notify
        self._c = clients
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._claim_idle_ms = claim_idle_ms
        self._max_in_flight = max_in_flight
        self._stop = threading.Event()
        # Built here, started by ``start``: no I/O until then.
        self.workers = [ChannelWorker(ch, self._cfg, clients) for ch in self._cfg.channels]
        self._threads: list[threading.Thread] = []
        self._in_flight: dict[str, float] = {}  # entry id → last claimed (monotonic); main thread
        self._done: collections.deque[str] = collections.deque()  # entries to acknowledge
        self._reminding: set[str] = set()
        self._reminding_lock = threading.Lock()
        self._scripts: dict[str, Any] = {}
        self._retry_own = False
        self.dispatched = 0
        self.reminders = 0

    def setup(self) -> None:
        # Build the lazy clients here, before the worker threads could race to build them.
        _ = (self._c.db, self._c.redis_text, self._c.redis_bytes, self._c.bus, self._c.alerts)
        self._c.notifications.ensure_indexes()
        self._c.bus.ensure_group(self._s.alerts_stream, self._s.notifier_group)
        r: Any = self._c.redis_text
        self._scripts = {
            "claim": r.register_script(_CLAIM_DUE),
            "schedule": r.register_script(_SCHEDULE),
            "reminded": r.register_script(_REMINDED),
        }

    def start(self, stop: threading.Event) -> None:
        """Start the channel workers and the reminder sweep; they run until ``stop``."""
        self._stop = stop
        for w in self.workers:
            w.start(stop)
            log.info(
                "channel %s: %s%s",
                w.name,
                w.sender.display,
                " (escalation)" if w.channel.escalation else "",
            )
            if not w.sender.valid:
                log.error("channel %s: apprise cannot use its URL; it will never send", w.name)
        self._threads = [start_every(self._s.alerts_sweep_s, self.sweep, stop, "reminders")]

    def join(self, timeout: float = 30.0) -> None:
        for t in self._threads:
            t.join(timeout)
        for w in self.workers:
            w.join(timeout)

    def run(self, stop: threading.Event, block_ms: int = 200) -> None:
        """Start, then consume until ``stop``; acknowledges what finished before returning."""
        self.start(stop)
        backoff = 0.5
        try:
            while not stop.is_set():
                try:
                    self.poll(block_ms)
                    backoff = 0.5
                except Exception:
                    # Unacknowledged entries stay pending and are claimed again later.
                    log.exception("notifier poll failed; retrying in %.1fs", backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
        finally:
            stop.set()
            self.join()
            try:
                self.flush_acks()
                self._release_reminders()
            except Exception as exc:
                log.warning("could not acknowledge the last finished alerts: %s", exc)

    # --- the stream ---------------------------------------------------------------------------

    def poll(self, block_ms: int = 200) -> int:
        """Read and dispatch a batch (stale entries of dead consumers first); returns its
        size. Finished entries are acknowledged on the way."""
        s = self._s
        self.flush_acks()
        self._keep_claimed()
        room = min(BATCH, self._max_in_flight - len(self._in_flight))
        if room <= 0:
            self._stop.wait(block_ms / 1000.0)
            return 0
        bus, stream, group = self._c.bus, s.alerts_stream, s.notifier_group
        msgs: list[BusMessage] = []
        if self._retry_own:  # a batch failed half-dispatched: its entries are still ours
            count = len(self._in_flight) + room
            own = bus.consume(stream, group, self.consumer, count, 0, own_pending=True)
            msgs = [m for m in own if m.id not in self._in_flight]
            self._retry_own = False
        if not msgs:
            stale = bus.claim_stale(stream, group, self.consumer, self._claim_idle_ms, room)
            msgs = [m for m in stale if m.id not in self._in_flight]
        if not msgs:
            msgs = bus.consume(stream, group, self.consumer, room, block_ms)
        try:
            for m in msgs:
                if m.id not in self._in_flight:
                    self.dispatch(m)
        except Exception:
            self._retry_own = True
            raise
        self.flush_acks()
        return len(msgs)

    def flush_acks(self) -> int:
        ids: list[str] = []
        while self._done:
            ids.append(self._done.popleft())
        if not ids:
            return 0
        try:
            self._c.bus.ack(self._s.alerts_stream, self._s.notifier_group, ids)
        except Exception:
            self._done.extendleft(reversed(ids))
            raise
        for i in ids:
            self._in_flight.pop(i, None)
        return len(ids)

    def in_flight(self) -> int:
        return len(self._in_flight)

    def _keep_claimed(self) -> None:
        """Entries still being sent are claimed again now and then, so another notifier
        never takes them for a dead consumer's (Redis Streams specific)."""
        if not self._in_flight:
            return
        now = time.monotonic()
        every_s = self._claim_idle_ms / 3000.0
        old = [i for i, t in self._in_flight.items() if now - t > every_s]
        if old:
            r: Any = self._c.redis_bytes
            s = self._s
            r.xclaim(s.alerts_stream, s.notifier_group, self.consumer, 0, old, justid=True)
            for i in old:
                self._in_flight[i] = now

    def dispatch(self, m: BusMessage) -> None:
        """One stream entry: reminders scheduled or dropped, then a task per channel."""
        try:
            alert = orjson.loads(m.value)
            if not isinstance(alert, dict) or not all(
                isinstance(alert.get(k), str) and alert[k]
                for k in ("id", "drone_id", "type", "change")
            ):
                raise ValueError("not an alert event (id, drone_id, type, change)")
        except ValueError as exc:
            log.warning("alerts entry %s is not an alert event: %s", m.id, exc)
            self._c.deadletters.add([DeadLetter(f"notifier: {exc}", m.value, "notifier")])
            self._done.append(m.id)
            return
        self.dispatched += 1
        self._track_reminders(alert)
        job = _Job(0, lambda: self._done.append(m.id))
        tasks = self._event_tasks(alert, m.id, job)
        if not tasks:
            self._done.append(m.id)
            return
        self._in_flight[m.id] = time.monotonic()
        _enqueue(job, tasks)

    def _event_tasks(
        self, alert: dict[str, Any], entry_id: str, job: _Job
    ) -> list[tuple[ChannelWorker, _Task]]:
        change = alert["change"]
        if change not in NOTIFIED_CHANGES:
            return []
        severity = str(alert.get("severity", "warning"))
        kind = alert["type"]
        stamp = alert.get("last_seen") or alert.get("resolved_at")
        occurrence = f"{change}@{stamp}" if stamp else f"{change}@{entry_id}"
        message = render(alert, change)
        throttle: Throttle = "take" if change == "escalated" else "check"
        out = []
        for w in self.workers:
            ch = w.channel
            if ch.escalation:
                continue
            wants = ch.wants(kind, severity)
            # A channel told of the alert hears when it calms down or ends, whatever it wants.
            closing = change in CLOSING_CHANGES and (ch.types is None or kind in ch.types)
            if not wants and not closing:
                continue
            task = _Task(
                job,
                alert["id"],
                alert["drone_id"],
                kind,
                change,
                occurrence,
                message,
                throttle,
                only_if_told=not wants,
            )
            out.append((w, task))
        return out

    # --- reminders ----------------------------------------------------------------------------

    def _track_reminders(self, alert: dict[str, Any]) -> None:
        remind = (
            alert["change"] in ("opened", "escalated")
            and alert.get("severity") == "critical"
            and alert.get("state", "open") == "open"
        )
        if remind and self.workers:
            now = time.time()
            self._scripts["schedule"](
                keys=[REMINDERS, REMINDER_COUNTS],
                args=[alert["id"], now + self._cfg.reminder_every_s, int(now * 1000)],
            )
        elif alert["change"] in ("deescalated", "resolved", "acknowledged") or (
            alert.get("state", "open") != "open"
        ):
            self.drop_reminders(alert["id"])

    def drop_reminders(self, alert_id: str) -> None:
        pipe = self._c.redis_text.pipeline(transaction=True)
        pipe.zrem(REMINDERS, alert_id)
        pipe.hdel(REMINDER_COUNTS, alert_id)
        pipe.execute()

    def sweep(self) -> None:
        """Send the due reminders of alerts still open and critical; drop the others."""
        now = time.time()
        raw = self._scripts["claim"](
            keys=[REMINDERS, REMINDER_COUNTS],
            args=[
                now,
                now + max(REMINDER_LEASE_S, 2 * self._cfg.reminder_every_s),
                BATCH,
                int(now * 1000),
            ],
        )
        due: list[tuple[str, str]] = []
        with self._reminding_lock:
            for i in range(0, len(raw), 2):
                if raw[i] not in self._reminding:  # still being sent: its lease ran out
                    due.append((raw[i], raw[i + 1]))
        if not due:
            return
        docs = {str(d["_id"]): d for d in self._c.alerts.get_many([a for a, _ in due])}
        for alert_id, count in due:
            doc = docs.get(alert_id)
            if doc is None or doc.get("state") != "open" or doc.get("severity") != "critical":
                log.debug("alert %s no longer open and critical: no more reminders", alert_id)
                self.drop_reminders(alert_id)
                continue
            start, _, sent = count.partition(":")
            self._remind(serialize(restore_datetimes(doc, DATE_FIELDS)), start, int(sent or 0))

    def _remind(self, alert: dict[str, Any], start: str, sent: int) -> None:
        n = sent + 1
        alert_id, kind = alert["id"], str(alert.get("type", "?"))
        escalate = n >= self._cfg.escalate_after_reminders
        job = _Job(0, lambda: self._reminded(alert_id, start, sent))
        tasks: list[tuple[ChannelWorker, _Task]] = []
        for w in self.workers:
            if not w.channel.wants(kind, "critical") or (w.channel.escalation and not escalate):
                continue
            change = "escalation" if w.channel.escalation else "reminder"
            task = _Task(
                job,
                alert_id,
                str(alert.get("drone_id", "?")),
                kind,
                change,
                f"{change}-{start}-{n}",
                render(alert, change, n),
                "none",
                extra={"reminder": n},
            )
            tasks.append((w, task))
        self.reminders += 1
        if not tasks:
            self._reminded(alert_id, start, sent)
            return
        with self._reminding_lock:
            self._reminding.add(alert_id)
        _enqueue(job, tasks)

    def _release_reminders(self) -> None:
        """Reminders taken but not finished are due again at once, for the next notifier
        (rather than when their lease runs out)."""
        with self._reminding_lock:
            unfinished = list(self._reminding)
        if unfinished:
            now = time.time()
            self._c.redis_text.zadd(REMINDERS, dict.fromkeys(unfinished, now), xx=True)

    def _reminded(self, alert_id: str, start: str, sent: int) -> None:
        """Every channel is done with reminder ``sent + 1``: count it, set the next."""
        with self._reminding_lock:
            self._reminding.discard(alert_id)
        try:
            self._scripts["reminded"](
                keys=[REMINDERS, REMINDER_COUNTS],
                args=[
                    alert_id,
                    f"{start}:{sent}",
                    f"{start}:{sent + 1}",
                    time.time() + self._cfg.reminder_every_s,
                ],
            )
        except Exception as exc:  # its lease runs out and the reminder is done again
            log.warning("could not reschedule the reminders of %s: %s", alert_id, exc)


def _enqueue(job: _Job, tasks: list[tuple[ChannelWorker, _Task]]) -> None:
    job.pending = len(tasks)  # before the first task can finish
    for worker, task in tasks:
        worker.put(task)


def run_notifier(settings: Settings, stop: threading.Event) -> None:
    clients = Clients(settings)
    notifier = Notifier(settings, clients)
    try:
        while not stop.is_set():
            try:
                notifier.setup()
                break
            except Exception as exc:
                log.warning("notifier waiting for MongoDB/Redis: %s", exc)
                stop.wait(1.0)
        if stop.is_set():
            return
        if not settings.notify.channels:
            log.warning("no notification channels configured (SKYHIVE_NOTIFY__CHANNELS)")
        log.info(
            "notifier %s consuming %s with %d channel(s)",
            notifier.consumer,
            settings.alerts_stream,
            len(settings.notify.channels),
        )
        notifier.run(stop)
    finally:
        stop.set()
        notifier.join()
        clients.close()
