"""Notifier: alert changes and reminders → the notification channels (apprise URLs).

It consumes the ``alerts`` stream (consumer group ``settings.notifier_group``; entries a dead
consumer left unacknowledged are claimed after ``settings.claim_idle_ms``, looked for at every
poll, while entries still being sent are re-claimed every third of it so a live notifier is
never robbed), in a process of its own, so alerts never wait behind history writes.

- ``opened``, ``escalated``, ``deescalated`` and ``resolved`` go to every non-escalation
  channel that wants the alert's type and severity; ``deescalated`` and ``resolved`` also go
  to a channel that was told of the alert before, though it no longer wants the new severity
  (a critical-only channel hears that its critical alert is over). ``acknowledged``: nothing.
- Each channel sends, retries, throttles and records on its own worker
  (``services/channel_worker.py``).
- A stream entry is acknowledged when every channel is done with it (sent, throttled or gave
  up); entries finish out of order.
- Reminders: an open (unacknowledged) critical alert is reminded every
  ``notify.reminder_every_s``; from the ``escalate_after_reminders``-th reminder on, each one
  also goes to the escalation channels. The schedule lives in Redis (``alerts:reminders``,
  alert id → due epoch; ``alerts:reminder_counts``, alert id → ``start:count``), so a restart
  forgets nothing; a due reminder is leased, and rescheduled only once every channel is done
  with it. The alert is read back from MongoDB first: once acknowledged, resolved or no longer
  critical, it is dropped from the schedule.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from typing import Any

import orjson

from skyhive.adapters.alerts_repo import serialize
from skyhive.adapters.apprise_sender import install_capture
from skyhive.adapters.deadletters import DeadLetter
from skyhive.adapters.mongo import restore_datetimes
from skyhive.ports.bus import BusMessage
from skyhive.services.channel_worker import ChannelWorker, Job, Task, Throttle, enqueue
from skyhive.services.notify_message import render
from skyhive.services.periodic import retry_until_ready, start_every
from skyhive.settings import Settings
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

NOTIFIED_CHANGES = ("opened", "escalated", "deescalated", "resolved")
CLOSING_CHANGES = ("deescalated", "resolved")  # also to channels told of the alert before
REMINDERS = "alerts:reminders"  # ZSET alert id → due epoch seconds
REMINDER_COUNTS = "alerts:reminder_counts"  # HASH alert id → "<start ms>:<reminders sent>"
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


class Notifier:
    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        consumer: str | None = None,
        *,
        claim_idle_ms: int | None = None,  # default: settings.claim_idle_ms
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        install_capture()
        self._s = settings
        self._cfg = settings.notify
        self._c = clients
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._claim_idle_ms = claim_idle_ms or settings.claim_idle_ms
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
        job = Job(0, lambda: self._done.append(m.id))
        tasks = self._event_tasks(alert, m.id, job)
        if not tasks:
            self._done.append(m.id)
            return
        self._in_flight[m.id] = time.monotonic()
        enqueue(job, tasks)

    def _event_tasks(
        self, alert: dict[str, Any], entry_id: str, job: Job
    ) -> list[tuple[ChannelWorker, Task]]:
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
            task = Task(
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
        job = Job(0, lambda: self._reminded(alert_id, start, sent))
        tasks: list[tuple[ChannelWorker, Task]] = []
        for w in self.workers:
            if not w.channel.wants(kind, "critical") or (w.channel.escalation and not escalate):
                continue
            change = "escalation" if w.channel.escalation else "reminder"
            task = Task(
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
        enqueue(job, tasks)

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


def run_notifier(settings: Settings, stop: threading.Event) -> None:
    clients = Clients(settings)
    notifier = Notifier(settings, clients)
    try:
        if not retry_until_ready("notifier", notifier.setup, stop):
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
