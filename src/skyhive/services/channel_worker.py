"""One thread and queue per notification channel, so a channel that is down or slow holds
back no other.

- A send is retried ``notify.retries`` times, ``backoff_s`` doubling. A channel that just gave
  up on a message gets one attempt per message until a send succeeds again, so a dead channel
  cannot build a backlog that stalls the consumer.
- Throttling: at most one message per (drone, type, channel) per ``notify.throttle_s``
  (shared by every notifier through the ``SendMarks`` port, in Redis); escalations and
  reminders are never throttled.
- Every attempt is recorded (the ``NotificationLog`` port: MongoDB ``alert_notifications``),
  the final one under a deterministic id. That id is also marked done (``SendMarks``), and
  the mark is checked before sending, so a message redelivered after a crash (or published
  again by a replayed batch) is not sent twice. The mark, not the MongoDB record, is checked: MongoDB
  busy with history could add a few hundred ms to every alert, and the mark lives in the
  same Redis as the stream entries that could be replayed.
- A message fanned out to several channels (a :class:`Job`) is done when every channel is
  done with it (sent, throttled or gave up).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from skyhive.domain.alert_config import Channel, NotifyConfig
from skyhive.ports.notifications import NotificationLog, Outcome, record_id
from skyhive.ports.send_marks import SendMarks
from skyhive.ports.sender import Message, Sender

log = logging.getLogger(__name__)


class _Stopped(Exception):
    pass


@dataclass(slots=True)
class Job:
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
class Task:
    job: Job
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
        *,
        sender: Sender,
        records: NotificationLog,
        marks: SendMarks,
    ) -> None:
        self.channel = channel
        self.name = channel.name
        self.sender = sender
        self._cfg = config
        self._records = records
        self._marks = marks
        self._stop = threading.Event()
        self._queue: queue.Queue[Task] = queue.Queue()
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

    def put(self, task: Task) -> None:
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

    def _handle(self, task: Task) -> None:
        rid = record_id(task.alert_id, task.occurrence, self.name)
        if self._marks.is_done(rid):
            log.debug("channel %s: %s done before (redelivered)", self.name, rid)
            task.job.finish()
            return
        if task.only_if_told and not self._records.was_sent(task.alert_id, self.name):
            task.job.finish()
            return

        def record(outcome: Outcome, attempt: int, error: str | None = None) -> None:
            final = None if outcome == "failed" else rid
            if final is not None:
                self._marks.mark_done(rid)
            self._records.record(
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

    def _may_send(self, task: Task, rid: str) -> bool:
        """The throttle: one message per (drone, type, channel) per ``throttle_s``, shared by
        every notifier. The slot remembers which message took it, so that message, delivered
        again after a crash, is not throttled by itself."""
        if task.throttle == "none" or self._cfg.throttle_s <= 0:
            return True
        slot = f"{self.name}:{task.drone_id}:{task.alert_type}"
        ttl_ms = max(1, int(self._cfg.throttle_s * 1000))
        # An escalation is always sent, and restarts the window.
        return self._marks.take_slot(slot, rid, ttl_ms, force=task.throttle == "take")


def enqueue(job: Job, tasks: list[tuple[ChannelWorker, Task]]) -> None:
    job.pending = len(tasks)  # before the first task can finish
    for worker, task in tasks:
        worker.put(task)
