"""Notifier: alert changes and reminders → the notification channels (apprise URLs).

It consumes the ``alerts`` stream (consumer group ``settings.notifier_group``; entries a dead
consumer left unacknowledged are claimed after ``settings.claim_idle_ms``, looked for at every
poll, while entries still being sent are re-claimed every third of it, ``Bus.keep_claimed``,
so a live notifier is never robbed), in a process of its own, so alerts never wait behind
history writes.

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
  also goes to the escalation channels. The schedule (the ``ReminderSchedule`` port, in
  Redis) survives a restart; a due reminder is leased, and rescheduled only once every
  channel is done with it. The alert is read back from the alert store first: once
  acknowledged, resolved or no longer critical, it is dropped from the schedule.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

import orjson

from skyhive.domain.alert_config import Channel
from skyhive.ports.alert_store import AlertStore
from skyhive.ports.bus import Bus, BusMessage
from skyhive.ports.clock import Clock
from skyhive.ports.deadletters import DeadLetter, DeadLetterSink
from skyhive.ports.notifications import NotificationLog
from skyhive.ports.reminders import ReminderSchedule
from skyhive.ports.send_marks import SendMarks
from skyhive.ports.sender import Sender
from skyhive.services.channel_worker import ChannelWorker, Job, Task, Throttle, enqueue
from skyhive.services.notify_message import render
from skyhive.services.periodic import start_every
from skyhive.settings import Settings

log = logging.getLogger(__name__)

NOTIFIED_CHANGES = ("opened", "escalated", "deescalated", "resolved")
CLOSING_CHANGES = ("deescalated", "resolved")  # also to channels told of the alert before
MAX_IN_FLIGHT = 1000  # stream entries read but not yet finished; reading pauses beyond
BATCH = 100
REMINDER_LEASE_S = 60.0  # a claimed reminder comes due again if its notifier died


class Notifier:
    def __init__(
        self,
        settings: Settings,
        *,
        bus: Bus,
        alerts: AlertStore,
        reminders: ReminderSchedule,
        records: NotificationLog,
        marks: SendMarks,
        deadletters: DeadLetterSink,
        clock: Clock,
        sender: Callable[[Channel], Sender],
        consumer: str,
        claim_idle_ms: int | None = None,  # default: settings.claim_idle_ms
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        """``sender`` makes a channel's sender."""
        self._s = settings
        self._cfg = settings.notify
        self._bus = bus
        self._alerts = alerts
        self._schedule = reminders
        self._records = records
        self._dead = deadletters
        self._clock = clock
        self.consumer = consumer
        self._claim_idle_ms = claim_idle_ms or settings.claim_idle_ms
        self._max_in_flight = max_in_flight
        self._stop = threading.Event()
        # Built here, started by ``start``: no I/O until then.
        self.workers = [
            ChannelWorker(ch, self._cfg, sender=sender(ch), records=records, marks=marks)
            for ch in self._cfg.channels
        ]
        self._threads: list[threading.Thread] = []
        self._in_flight: dict[str, float] = {}  # entry id → last claimed (monotonic); main thread
        self._done: collections.deque[str] = collections.deque()  # entries to acknowledge
        self._reminding: set[str] = set()
        self._reminding_lock = threading.Lock()
        self._retry_own = False
        self.dispatched = 0
        self.reminders = 0

    def setup(self) -> None:
        self._records.ensure_indexes()
        self._bus.ensure_group(self._s.alerts_stream, self._s.notifier_group)

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
                log.error("channel %s: its URL is not usable; it will never send", w.name)
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
        if self._in_flight:  # wait no longer than lets ``_keep_claimed`` keep them in time
            block_ms = min(block_ms, max(1, self._claim_idle_ms // 6))
        room = min(BATCH, self._max_in_flight - len(self._in_flight))
        if room <= 0:
            self._stop.wait(block_ms / 1000.0)
            return 0
        bus, stream, group = self._bus, s.alerts_stream, s.notifier_group
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
            self._bus.ack(self._s.alerts_stream, self._s.notifier_group, ids)
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
        never takes them for a dead consumer's."""
        if not self._in_flight:
            return
        now = self._clock.monotonic()
        every_s = self._claim_idle_ms / 3000.0
        old = [i for i, t in self._in_flight.items() if now - t > every_s]
        if old:
            s = self._s
            self._bus.keep_claimed(s.alerts_stream, s.notifier_group, self.consumer, old)
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
            self._dead.add([DeadLetter(f"notifier: {exc}", m.value, "notifier")])
            self._done.append(m.id)
            return
        self.dispatched += 1
        self._track_reminders(alert)
        job = Job(0, lambda: self._done.append(m.id))
        tasks = self._event_tasks(alert, m.id, job)
        if not tasks:
            self._done.append(m.id)
            return
        self._in_flight[m.id] = self._clock.monotonic()
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
            now = self._clock.now().timestamp()
            self._schedule.schedule(alert["id"], now + self._cfg.reminder_every_s, int(now * 1000))
        elif alert["change"] in ("deescalated", "resolved", "acknowledged") or (
            alert.get("state", "open") != "open"
        ):
            self.drop_reminders(alert["id"])

    def drop_reminders(self, alert_id: str) -> None:
        self._schedule.drop(alert_id)

    def sweep(self) -> None:
        """Send the due reminders of alerts still open and critical; drop the others."""
        now = self._clock.now().timestamp()
        lease = now + max(REMINDER_LEASE_S, 2 * self._cfg.reminder_every_s)
        claimed = self._schedule.claim_due(now, lease, BATCH)
        with self._reminding_lock:  # still being sent: its lease ran out
            due = [(a, count) for a, count in claimed if a not in self._reminding]
        if not due:
            return
        alerts = {a.id: a for a in self._alerts.get_many([a for a, _ in due])}
        for alert_id, count in due:
            alert = alerts.get(alert_id)
            if alert is None or alert.state != "open" or alert.severity != "critical":
                log.debug("alert %s no longer open and critical: no more reminders", alert_id)
                self.drop_reminders(alert_id)
                continue
            start, _, sent = count.partition(":")
            self._remind(alert.to_json(), start, int(sent or 0))

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
            self._schedule.release(unfinished, self._clock.now().timestamp())

    def _reminded(self, alert_id: str, start: str, sent: int) -> None:
        """Every channel is done with reminder ``sent + 1``: count it, set the next."""
        with self._reminding_lock:
            self._reminding.discard(alert_id)
        try:
            next_due = self._clock.now().timestamp() + self._cfg.reminder_every_s
            self._schedule.reminded(alert_id, f"{start}:{sent}", f"{start}:{sent + 1}", next_due)
        except Exception as exc:  # its lease runs out and the reminder is done again
            log.warning("could not reschedule the reminders of %s: %s", alert_id, exc)
