"""What the workflow fault cases (tests/faults/test_kill_workflows.py) drive and watch:

- :func:`alert_reading` and :func:`expected_alert_events`: the notifier case's schedule, and
  the alert changes it must cause (ids are deterministic: ``drone:type:first-reading-ms``);
- :class:`Webhook`: a local HTTP server standing in for a ``json://`` channel;
- :class:`CommandWatch`: an MQTT subscriber to every drone's commands topic.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from faults.load import BASE_MS

# --- the notifier case's schedule ------------------------------------------------------------

CYCLE = 50  # readings of a drone between two repeats of its pattern
PHASE = 7  # drone d's pattern is shifted by d * PHASE readings: alerts spread over the run


def _offset(d: int, seq: int) -> int:
    return (seq + d * PHASE) % CYCLE


def alert_reading(d: int, seq: int) -> dict[str, Any]:
    """A drone in flight whose pattern, every ``CYCLE`` readings, holds: battery 20 %
    (low_battery warning), then 8 % (escalated to critical), then 30 % (resolved: above the
    25 % threshold plus its 2-point hysteresis); 130 m (altitude, over the 120 m ceiling),
    then 60 m (resolved); 35 m/s (overspeed, over 30 m/s), then 12 m/s (resolved). The
    position moves about a metre a reading (no GPS jump). Needs the battery_drop limit
    raised (30 → 8 is a 22-point drop) and the offline limit long (the load stops)."""
    o = _offset(d, seq)
    battery = 20.0 if 5 <= o < 8 else 8.0 if 8 <= o < 11 else 30.0
    return {
        "battery_pct": battery,
        "alt_m": 130.0 if 20 <= o < 24 else 60.0,
        "speed_mps": 35.0 if 32 <= o < 35 else 12.0,
        "lat": 37.80 + d * 1e-3,
        "lon": -122.27 + seq * 1e-5,
        "status": "in_flight",
    }


SEVERITY_RANK = {None: 0, "warning": 1, "critical": 2}


def _severities(reading: dict[str, Any]) -> dict[str, str | None]:
    battery = reading["battery_pct"]
    return {
        "low_battery": "critical" if battery < 10 else "warning" if battery < 25 else None,
        "altitude": "warning" if reading["alt_m"] > 120 else None,
        "overspeed": "warning" if reading["speed_mps"] > 30 else None,
    }


ALERT_TYPES = ("low_battery", "altitude", "overspeed")


def expected_alert_events(
    drone_of: Callable[[int], str], last_seq: dict[int, int]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The alert changes the schedule causes for drone index → last reading processed
    (readings 1..last): alert id → its changes in order (opened, escalated, resolved), and
    alert id → its final state (``open``, ``resolved``, or ``resolved_unacknowledged``)."""
    events: dict[str, list[str]] = {}
    final: dict[str, str] = {}
    for d, last in last_seq.items():
        drone = drone_of(d)
        active: dict[str, tuple[str, str]] = {}  # type → (alert id, severity)
        for seq in range(1, last + 1):
            for kind, severity in _severities(alert_reading(d, seq)).items():
                cur = active.get(kind)
                if severity is None:
                    if cur is not None:
                        events[cur[0]].append("resolved")
                        # Critical and nobody acknowledged it: it waits for a person.
                        unacked = cur[1] == "critical"
                        final[cur[0]] = "resolved_unacknowledged" if unacked else "resolved"
                        del active[kind]
                    continue
                if cur is None:
                    alert_id = f"{drone}:{kind}:{BASE_MS + seq * 1000}"
                    events[alert_id] = ["opened"]
                    final[alert_id] = "open"
                    active[kind] = (alert_id, severity)
                    continue
                rise = SEVERITY_RANK[severity] - SEVERITY_RANK[cur[1]]
                if rise:
                    events[cur[0]].append("escalated" if rise > 0 else "deescalated")
                    active[kind] = (cur[0], severity)
    return events, final


# --- the webhook ------------------------------------------------------------------------------

_ALERT_ID = re.compile(r"^Alert id: (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Heard:
    at: float  # time.monotonic() on arrival
    alert_id: str
    change: str  # opened, escalated, deescalated, resolved, reminder, escalation, ?
    title: str


def change_of(title: str) -> str:
    """The change a notification's title tells (``services/notify_message.render``)."""
    if title.startswith("[RESOLVED]"):
        return "resolved"
    if title.startswith("[ESCALATION]"):
        return "escalation"
    for marker, change in (
        ("de-escalated to", "deescalated"),
        ("escalated", "escalated"),
        ("still unacknowledged", "reminder"),
        (" opened", "opened"),
    ):
        if marker in title:
            return change
    return "?"


class Webhook:
    """A local HTTP server standing in for a ``json://`` channel: every notification, with
    the time it arrived."""

    def __init__(self) -> None:
        self.heard: list[Heard] = []
        lock = threading.Lock()
        heard = self.heard

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.monotonic()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                title = str(body.get("title", ""))
                found = _ALERT_ID.search(str(body.get("message", "")))
                with lock:
                    heard.append(
                        Heard(at, found.group(1) if found else "?", change_of(title), title)
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"

    def snapshot(self) -> list[Heard]:
        return list(self.heard)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- commands to the drones -------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    at: float  # time.monotonic() on arrival
    drone: str
    body: dict[str, Any]


class CommandWatch:
    """Subscribes (QoS 1) to every drone's commands topic and keeps what arrives."""

    TOPIC = "skyhive/drones/+/commands"

    def __init__(self, port: int) -> None:
        self.port = port
        self.commands: list[Command] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fault-command-watch")
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(self.TOPIC, qos=1)

    def _on_subscribe(self, *_: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        drone = msg.topic.split("/")[2]
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = {"unparsed": msg.payload.decode(errors="replace")}
        self.commands.append(Command(time.monotonic(), drone, body))

    def start(self) -> None:
        self._client.connect("127.0.0.1", self.port)
        self._client.loop_start()
        if not self._subscribed.wait(15):
            raise AssertionError("the command watch could not subscribe")

    def delivers(self) -> list[Command]:
        return [c for c in list(self.commands) if c.body.get("type") == "deliver"]

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
