"""MQTT gateway: subscribes to drone telemetry, batches it onto the bus.

A message is acknowledged to the broker (PUBACK) only after its batch is on the durable log;
if the gateway dies first, the broker redelivers it to the persistent session.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from skyhive.adapters.mqtt_url import parse_mqtt_url
from skyhive.domain.telemetry import drone_id_from_topic
from skyhive.services.ingest import Ingest, RawMessage
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
        self._queue: deque[_Pending] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.accepted = 0
        self.rejected = 0
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or settings.gateway_client_id,
            clean_session=False,  # the broker keeps our subscription and queued QoS 1 messages
            manual_ack=True,
        )
        # A named (non-anonymous) session, so brokers queue messages while we restart.
        self._client.username_pw_set(settings.gateway_client_id)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: object, _p: object = None
    ) -> None:
        log.info("gateway connected to MQTT (%s); subscribing %s", rc, self._s.telemetry_topic)
        client.subscribe(self._s.telemetry_topic, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        topic = m.topic
        raw = RawMessage(bytes(m.payload), f"mqtt:{topic}", drone_id_from_topic(topic))
        self._queue.append(_Pending(m.mid, m.qos, raw))
        # Natural batching: the flusher writes whatever arrived while it was busy, so the
        # broker's in-flight window (and our PUBACKs) never waits on a timer.
        self._wake.set()

    def _flush_loop(self) -> None:
        interval = self._s.gateway_flush_ms / 1000.0
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        """Write what is queued now; later arrivals wait for the next round (or, at shutdown,
        stay unacknowledged and are redelivered to the persistent session)."""
        remaining = len(self._queue)
        while remaining > 0:
            n = min(remaining, self._s.gateway_batch_size)
            batch = [self._queue[i] for i in range(n)]
            if not self._submit(batch):
                if self._stop.is_set():
                    return
                continue
            for _ in range(n):
                self._queue.popleft()
            remaining -= n
            for p in batch:
                if p.qos > 0:
                    self._client.ack(p.mid, p.qos)

    def _submit(self, batch: list[_Pending]) -> bool:
        try:
            res = self._ingest.submit([p.msg for p in batch])
        except Exception:  # bus unreachable: keep the batch unacknowledged and retry
            log.exception("gateway could not write %d messages to the bus; retrying", len(batch))
            time.sleep(0.5)
            return False
        self.accepted += res.accepted
        self.rejected += res.rejected
        return True

    def run(self, stop: threading.Event) -> None:
        host, port = parse_mqtt_url(self._s.mqtt_url_or_default())
        flusher = threading.Thread(target=self._flush_loop, name="gateway-flush", daemon=True)
        flusher.start()
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()
        log.info("gateway consuming %s from mqtt://%s:%d", self._s.telemetry_topic, host, port)
        stop.wait()
        # Write what we hold, then leave. The subscription stays in the broker's session, so
        # messages published while we are away wait for us.
        self._stop.set()
        self._wake.set()
        flusher.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()


def run_gateway(settings: Settings, stop: threading.Event) -> None:
    clients = Clients(settings)
    ingest = Ingest(
        clients.bus, clients.deadletters, settings.telemetry_stream, settings.max_message_bytes
    )
    try:
        MqttGateway(settings, ingest).run(stop)
    finally:
        clients.close()
