"""Gateway: telemetry and events from the device inbox (MQTT), batched onto the bus.

A message is acknowledged to the broker (PUBACK) only after its batch is on the durable log;
if the gateway dies first, the broker redelivers it to the persistent session. While the bus
is over its backlog limit the gateway reads nothing (``services/stream_trimmer.py``).

One thread does everything: read what the inbox has, write it to the bus as one batch,
acknowledge, repeat. Batches form naturally from whatever arrived during the previous write,
and no lock is shared between a network thread and a writer.
"""

from __future__ import annotations

import logging
import threading
import time

from skyhive.ports.inbox import Inbox, InboxLost, Received
from skyhive.services.ingest import Ingest, RawMessage
from skyhive.settings import Settings

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, settings: Settings, ingest: Ingest, inbox: Inbox) -> None:
        self._s = settings
        self._ingest = ingest
        self._inbox = inbox
        self._queue: list[tuple[Received, RawMessage]] = []
        self.accepted = 0
        self.rejected = 0
        self.held_back = False  # not reading from the broker: the bus is over its limit
        self._started = False

    @property
    def connected(self) -> bool:
        return self._inbox.connected

    def connect(self) -> None:
        """Connect to the broker; raises OSError while it is unreachable."""
        self._inbox.connect()
        self._started = True

    def _take(self, received: list[Received]) -> None:
        for r in received:
            drone_id, channel = topic_identity(r.topic)
            kind = "event" if channel == "events" else "telemetry"
            self._queue.append((r, RawMessage(r.payload, f"mqtt:{r.topic}", drone_id, kind)))

    def _flush(self, stop: threading.Event) -> None:
        """Write everything queued, in batches; acknowledge each batch once it is written.

        If the bus is unreachable the batch stays queued and unacknowledged, and is retried.
        """
        size = self._s.gateway_batch_size
        while self._queue:
            batch = self._queue[:size]
            try:
                # Already taken from the broker: written even while ingest is held back.
                res = self._ingest.submit([raw for _, raw in batch], hold_back=False)
            except Exception:
                log.exception(
                    "gateway could not write %d messages to the bus; retrying", len(batch)
                )
                stop.wait(0.5)
                return
            del self._queue[: len(batch)]
            self.accepted += res.accepted
            self.rejected += res.rejected
            for received, _ in batch:
                self._inbox.ack(received)

    def _hold_back(self, stop: threading.Event) -> None:
        """While the bus is over its backlog limit, read nothing from the broker: the
        messages wait in its queue for this session, unacknowledged, instead of piling up
        on a bus that would have to trim them. Everything already read was written (and
        acknowledged) by the last flush. A pause longer than the keepalive costs the
        connection; the session, and its queue, stay with the broker."""
        ahead = self._s.gateway_batch_size  # what the next read may bring
        state = self._ingest.held_back(ahead)
        if state is None:
            return
        # Info: the pass that decides logs (warning) and counts each episode.
        log.info(
            "gateway holds back: %s has %d entries not yet processed (limit %d); "
            "not reading from the broker",
            state.stream, state.backlog, state.limit,
        )  # fmt: skip
        self.held_back = True
        while state is not None and not stop.wait(self._s.bus_trim_s):
            state = self._ingest.held_back(ahead)
        self.held_back = False
        if state is None:
            log.info("gateway resumes reading from the broker")

    def run(self, stop: threading.Event) -> None:
        """Read, write, acknowledge until ``stop``; connects first unless ``connect`` did."""
        if not self._started:
            self.connect()
        log.info("gateway consuming %s", self._s.telemetry_topic)
        room = self._s.gateway_batch_size
        linger_s = self._s.gateway_linger_ms / 1000.0
        while not stop.is_set():
            if self._inbox.connected:  # subscribed first: the broker then queues for us
                self._hold_back(stop)
            try:
                self._take(self._inbox.read(room - len(self._queue), linger_s))
                lost = None
            except InboxLost as exc:
                self._take(exc.received)
                lost = exc
            self._flush(stop)
            if lost is not None:
                log.warning("gateway lost the MQTT connection (%s); reconnecting", lost)
                # Unacknowledged messages are redelivered to the persistent session.
                self._queue.clear()
                stop.wait(1.0)
                try:
                    self._inbox.reconnect()
                except OSError:
                    continue
        # Write what we hold, then leave. The subscription stays in the broker's session, so
        # messages published while we are away wait for us.
        self._flush(stop)
        self._inbox.close()

    def retire(self, stop: threading.Event, idle_s: float = 2.0) -> int:
        """Take this gateway (its client id) out of service for good. A gateway that only
        stops keeps its persistent session, and a shared subscription goes on handing that
        session its share, which waits there for it. So: reconnect under its id, unsubscribe
        (the broker hands it nothing more), write everything its session had queued to the
        bus until none has come for ``idle_s``, then end the session. Returns the messages
        written."""
        if not self._started:
            self.connect()
        room = self._s.gateway_batch_size
        before = self.accepted + self.rejected
        deadline = time.monotonic() + 10
        while not self._inbox.connected:  # connected and subscribed: the session is ours
            if time.monotonic() > deadline or stop.is_set():
                raise OSError("the broker did not take the gateway's session back in 10 s")
            self._take(self._inbox.read(room - len(self._queue), 0.05))
            self._flush(stop)
        self._inbox.leave()
        quiet_since = time.monotonic()
        while not stop.is_set():
            got = self._inbox.read(room - len(self._queue), 0.05)  # raises InboxLost
            self._take(got)
            self._flush(stop)
            now = time.monotonic()
            if got or self._queue:
                quiet_since = now
            elif now - quiet_since >= idle_s:
                break
        self._flush(stop)
        self._inbox.close()
        if stop.is_set() or self._queue:
            raise RuntimeError("stopped before the gateway's session was drained; run it again")
        self._inbox.end_session()
        return self.accepted + self.rejected - before


def topic_identity(topic: str) -> tuple[str, str]:
    """``skyhive/drones/{id}/{channel}`` → (id, channel). The id is the identity the broker
    authenticated (a drone may publish only under its own id), so the reading must carry it:
    it is returned even when it is not a valid drone id, and such a reading is then
    rejected, never attributed to the ``drone_id`` its body claims. A topic of another shape
    (only a misconfigured subscription delivers one) yields an id no reading can match."""
    levels = topic.split("/")
    if len(levels) == 4 and levels[0] == "skyhive" and levels[1] == "drones":
        return levels[2], levels[3]
    return f"(not a drone topic: {topic})", levels[-1]
