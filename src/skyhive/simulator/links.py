"""The simulator's MQTT connections, driven by the publishing thread itself.

With credentials, every drone has its own connection, authenticated as itself, so each
simulated drone meets exactly the broker rules a real one does (its own topics only).
Without (a broker with insecure devices, e.g. the benchmarks), one anonymous connection
carries the whole fleet, as cheap as it gets.

There is no network thread per connection: paho's external-loop API (``loop_read``,
``loop_write``, ``loop_misc``) is called from :meth:`Links.pump` over a selector of every
socket. A publish is written at once; ``pump`` reads acknowledgements and commands, writes
what a full socket held back, keeps connections alive and reconnects lost ones with backoff.
Callbacks therefore run on the publishing thread too: nothing is shared across threads.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import selectors
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from skyhive.domain.commands import commands_topic

log = logging.getLogger(__name__)

QOS = 1
MAX_INFLIGHT = 1000  # paho's default of 20 caps QoS 1 throughput at 20 round trips
MAX_QUEUED = 50_000  # buffer during a broker outage; below paho's 65,535 message ids
KEEPALIVE_S = 30
MISC_EVERY_S = 1.0  # keepalive pings and reconnect attempts
WARN_EVERY_S = 5.0  # connection trouble on many links: one warning per interval
COMMANDS_FILTER = commands_topic("+")  # the shared connection: the fleet's commands
CONNECT_TIMEOUT_S = 5.0  # one TCP connect


class _Link:
    """One connection: its client, what it subscribes to, whether it is ready."""

    def __init__(self, name: str, client: mqtt.Client, commands: str) -> None:
        self.name = name
        self.client = client
        self.commands = commands
        self.ready = False  # connected and subscribed to its commands
        self.retry_at = 0.0
        self.backoff = 1.0


class Links:
    def __init__(
        self, host: str, port: int, stats: Any, commands: deque[tuple[str, bytes]]
    ) -> None:
        """``stats`` gets ``acked`` incremented per PUBACK; ``commands`` gets every command
        received, as (topic, payload)."""
        self._host, self._port = host, port
        self._stats = stats
        self._commands = commands
        self._sel = selectors.DefaultSelector()
        self._links: list[_Link] = []
        self._route: dict[str, _Link] = {}  # topic → the link it is published on
        self._shared: _Link | None = None
        self._pending_write: set[_Link] = set()  # output a full socket held back
        self._next_misc = 0.0
        self._closing = False
        self._last_warning = 0.0
        self.last_error = "no connection yet"

    # -- setting up ------------------------------------------------------------------------------

    def open(self, drone_ids: Sequence[str], passwords: Mapping[str, str] | None) -> None:
        """Start connecting: one link per drone (``passwords``: drone id → its password), or
        one shared anonymous link (``passwords`` None). Then :meth:`pump` until
        :attr:`all_ready`."""
        if passwords is None:
            client_id = f"skyhive-sim-{uuid.uuid4().hex[:12]}"
            self._shared = self._new_link("simulator", client_id, None, COMMANDS_FILTER)
        else:
            _raise_fd_limit(len(drone_ids) + 64)
            for drone_id in drone_ids:
                link = self._new_link(
                    drone_id, drone_id, (drone_id, passwords[drone_id]), commands_topic(drone_id)
                )
                base = f"skyhive/drones/{drone_id}"
                self._route[f"{base}/telemetry"] = self._route[f"{base}/events"] = link
        for link in self._links:
            self._connect(link, time.monotonic())

    def _new_link(
        self, name: str, client_id: str, login: tuple[str, str] | None, commands: str
    ) -> _Link:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        link = _Link(name, client, commands)
        client.user_data_set(link)
        if login is not None:
            client.username_pw_set(*login)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(MAX_QUEUED)
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.connect_async(self._host, self._port, keepalive=KEEPALIVE_S)
        self._links.append(link)
        return link

    def _connect(self, link: _Link, now: float) -> None:
        try:
            link.client.reconnect()  # TCP connect and CONNECT; the CONNACK comes in pump()
        except OSError as exc:
            self.last_error = f"cannot connect to mqtt://{self._host}:{self._port}: {exc}"
            link.retry_at = now + link.backoff
            link.backoff = min(link.backoff * 2, 10.0)

    @property
    def all_ready(self) -> bool:
        return all(link.ready for link in self._links)

    # -- publishing and the network ----------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = QOS) -> mqtt.MQTTMessageInfo:
        """Publish on the connection of the drone the topic belongs to (written at once)."""
        link = self._shared or self._route[topic]
        info = link.client.publish(topic, payload, qos=qos)
        if link.client.want_write():
            self._pending_write.add(link)
        return info

    def pump(self, timeout: float) -> None:
        """One round of network I/O, waiting up to ``timeout`` seconds for input."""
        self._flush_pending()
        for key, events in self._sel.select(timeout):
            link: _Link = key.data
            client = link.client
            if events & selectors.EVENT_READ:
                client.loop_read()
            if events & selectors.EVENT_WRITE and client.socket() is not None:
                client.loop_write()
            if events & selectors.EVENT_WRITE or client.want_write():
                # Output a callback queued (a SUBSCRIBE, a PUBACK), or the write interest to
                # drop once all is written: settled by the next pump's flush.
                self._pending_write.add(link)
        now = time.monotonic()
        if now >= self._next_misc:
            self._next_misc = now + MISC_EVERY_S
            self._misc(now)

    def _flush_pending(self) -> None:
        if not self._pending_write:
            return
        held = self._pending_write
        self._pending_write = set()
        for link in held:
            sock = link.client.socket()
            if sock is None:
                continue  # resent after reconnecting
            link.client.loop_write()
            wants = link.client.want_write()
            if wants:
                self._pending_write.add(link)
            with contextlib.suppress(KeyError, ValueError):
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if wants else 0)
                self._sel.modify(sock, events, link)

    def _misc(self, now: float) -> None:
        """Keepalive pings (and lost-ping detection); reconnect links that are down."""
        for link in self._links:
            client = link.client
            if client.socket() is not None:
                client.loop_misc()
            elif not self._closing and now >= link.retry_at:
                self._connect(link, now)

    def drain(self, timeout: float) -> None:
        """Give in-flight QoS 1 publishes up to ``timeout`` to be acknowledged."""
        deadline = time.monotonic() + timeout
        while self._stats.acked < self._stats.published and time.monotonic() < deadline:
            self.pump(0.05)

    def close(self) -> None:
        self._closing = True
        for link in self._links:
            if link.client.socket() is not None:
                link.client.disconnect()  # written at once; paho then closes the socket
        self._sel.close()

    # -- paho callbacks (all on this thread, from pump) -----------------------------------------

    def _warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            log.warning(message, *args)

    def _on_socket_open(self, _c: mqtt.Client, link: _Link, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._sel.register(sock, selectors.EVENT_READ, link)

    def _on_socket_close(self, _c: mqtt.Client, _link: _Link, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(sock)

    def _on_connect(
        self,
        client: mqtt.Client,
        link: _Link,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection of {link.name}: {reason}"
            self._warn("MQTT broker refused %s: %s", link.name, reason)
            return
        client.subscribe(link.commands, qos=QOS)  # on every connection: sessions are clean
        self._pending_write.add(link)  # queued inside a callback: written by the next pump

    def _on_subscribe(
        self,
        _c: mqtt.Client,
        link: _Link,
        _mid: int,
        reasons: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        if any(r.is_failure for r in reasons):
            self._warn("broker refused the commands subscription of %s: %s", link.name, reasons)
        link.ready = True
        link.backoff = 1.0

    def _on_message(self, _c: mqtt.Client, _link: _Link, msg: mqtt.MQTTMessage) -> None:
        self._commands.append((msg.topic, bytes(msg.payload)))

    def _on_disconnect(
        self,
        _c: mqtt.Client,
        link: _Link,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if link.ready and not self._closing:
            self._warn("simulator lost the MQTT broker (%s on %s); reconnecting", reason, link.name)
        link.ready = False
        link.retry_at = time.monotonic() + link.backoff
        link.backoff = min(link.backoff * 2, 10.0)

    def _on_publish(
        self, _c: mqtt.Client, _link: _Link, _mid: int, _r: ReasonCode, _p: Properties
    ) -> None:
        self._stats.acked += 1


def queue_full(info: mqtt.MQTTMessageInfo) -> bool:
    return info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE


def _raise_fd_limit(needed: int) -> None:
    """One socket per drone: lift the soft limit on open files towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
