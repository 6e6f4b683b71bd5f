"""MQTT gateway: subscribes to drone telemetry, batches it onto the bus.

A message is acknowledged to the broker (PUBACK) only after its batch is on the durable log;
if the gateway dies first, the broker redelivers it to the persistent session. While the bus
is over its backlog limit the gateway reads nothing (``services/stream_trimmer.py``).

One thread does everything: read what the socket has (paho's ``loop``), write it to the bus
as one batch, acknowledge, repeat. Batches form naturally from whatever arrived during the
previous write, and no lock is shared between a network thread and a writer.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from skyhive.adapters.mqtt_url import parse_mqtt_url
from skyhive.domain.device_access import Service
from skyhive.services.device_credentials import service_login
from skyhive.services.ingest import Ingest, RawMessage, ingest_for
from skyhive.settings import Settings
from skyhive.wiring import Clients

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    mid: int
    qos: int
    msg: RawMessage


class MqttGateway:
    def __init__(self, settings: Settings, ingest: Ingest, client_id: str | None = None) -> None:
        self._s = settings
        self._ingest = ingest
        self._queue: list[_Pending] = []
        self.accepted = 0
        self.rejected = 0
        self.connected = False
        self.held_back = False  # not reading from the broker: the bus is over its limit
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or settings.gateway_client_id,
            clean_session=False,  # the broker keeps our subscription and queued QoS 1 messages
            manual_ack=True,
        )
        # A named (non-anonymous) session, so brokers queue messages while we restart: the
        # gateway service's login (written by `skyhive up`), or, without one, just a name
        # (admitted only by a broker with insecure devices).
        login = service_login(settings, Service.gateway)
        if login is not None:
            self._client.username_pw_set(login.username, login.password)
        else:
            self._client.username_pw_set(settings.gateway_client_id)
        self._client.max_inflight_messages_set(1000)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: object, _p: object = None
    ) -> None:
        if getattr(rc, "is_failure", False):
            log.error("the MQTT broker refused the gateway: %s", rc)
            return
        topics = [self._s.telemetry_topic, self._s.events_topic]
        log.info("gateway connected to MQTT (%s); subscribing %s", rc, ", ".join(topics))
        client.subscribe([(t, 1) for t in topics])
        self.connected = True

    def _on_disconnect(self, *_args: object) -> None:
        self.connected = False

    def _on_message(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        topic = m.topic
        drone_id, channel = topic_identity(topic)
        kind = "event" if channel == "events" else "telemetry"
        raw = RawMessage(bytes(m.payload), f"mqtt:{topic}", drone_id, kind)
        self._queue.append(_Pending(m.mid, m.qos, raw))

    def _flush(self) -> None:
        """Write everything queued, in batches; acknowledge each batch once it is written.

        If the bus is unreachable the batch stays queued and unacknowledged, and is retried.
        """
        size = self._s.gateway_batch_size
        while self._queue:
            batch = self._queue[:size]
            try:
                # Already taken from the broker: written even while ingest is held back.
                res = self._ingest.submit([p.msg for p in batch], hold_back=False)
            except Exception:
                log.exception(
                    "gateway could not write %d messages to the bus; retrying", len(batch)
                )
                time.sleep(0.5)
                return
            del self._queue[: len(batch)]
            self.accepted += res.accepted
            self.rejected += res.rejected
            for p in batch:
                if p.qos > 0:
                    self._client.ack(p.mid, p.qos)

    def _read(self) -> MQTTErrorCode:
        """Wait for input, then take everything readable (paho reads one packet per call),
        lingering up to ``gateway_linger_ms`` for a fuller batch: fewer, larger bus writes
        cost far less CPU per message than many small ones."""
        rc = self._client.loop(timeout=0.05)
        size = self._s.gateway_batch_size
        deadline = time.monotonic() + self._s.gateway_linger_ms / 1000.0
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and 0 < len(self._queue) < size:
            before = len(self._queue)
            rc = self._client.loop_read()
            if len(self._queue) == before:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                rc = self._client.loop(timeout=remaining)
        return rc

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

    def _connect(self, host: str, port: int, stop: threading.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                self._client.connect(host, port, keepalive=30)
                return
            except OSError as exc:
                log.warning("gateway cannot reach mqtt://%s:%d (%s); retrying", host, port, exc)
                stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def run(self, stop: threading.Event) -> None:
        host, port = parse_mqtt_url(self._s.mqtt_url_or_default())
        log.info("gateway consuming %s from mqtt://%s:%d", self._s.telemetry_topic, host, port)
        self._connect(host, port, stop)
        while not stop.is_set():
            if self.connected:  # subscribed first: the broker then queues for this session
                self._hold_back(stop)
            rc = self._read()
            self._flush()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                log.warning("gateway lost the MQTT connection (%s); reconnecting", rc)
                # Unacknowledged messages are redelivered to the persistent session.
                self._queue.clear()
                stop.wait(1.0)
                try:
                    self._client.reconnect()
                except OSError:
                    continue
        # Write what we hold, then leave. The subscription stays in the broker's session, so
        # messages published while we are away wait for us.
        self._flush()
        self._client.loop(timeout=0.1)  # send the last acknowledgements
        self._client.disconnect()


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


def run_gateway(settings: Settings, stop: threading.Event) -> None:
    clients = Clients(settings)
    ingest = ingest_for(clients)
    try:
        MqttGateway(settings, ingest).run(stop)
    finally:
        clients.close()
