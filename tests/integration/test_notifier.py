"""The notifier against the real embedded Redis and MongoDB, sending with apprise's real
plugins to real local servers: a JSON webhook (http.server), Discord and Slack through a local
HTTPS-intercepting proxy (a trustme CA the requests library is told to trust), and email to a
local SMTP server (aiosmtpd). Alert events are published on the real ``alerts`` stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_string
from email.message import Message as EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from skyhive.adapters.alerts_repo import serialize
from skyhive.adapters.apprise_sender import url_secrets
from skyhive.adapters.notifications_repo import COLLECTION
from skyhive.adapters.reminder_schedule import REMINDER_COUNTS, REMINDERS
from skyhive.domain.alert_config import Channel, NotifyConfig
from skyhive.embedded import free_port
from skyhive.services.notifier import Notifier
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers.notifier import build_notifier, run_notifier

HOST = "127.0.0.1"
WHERE = {"battery_pct": 8.5, "lat": 37.80446, "lon": -122.2711, "status": "in_flight"}


# --- local endpoints ---------------------------------------------------------------------------


class Endpoint:
    """A local HTTP server recording every POST (path, JSON body); answers ``status`` after
    ``delay`` seconds."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.received: list[tuple[str, dict[str, Any]]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                endpoint.received.append((self.path, json.loads(body)))
                if endpoint.delay:
                    time.sleep(endpoint.delay)
                with contextlib.suppress(OSError):  # the client may have timed out
                    self.send_response(endpoint.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"json://{HOST}:{self.port}{path}"

    def titles(self, path: str | None = None) -> list[str]:
        return [str(b.get("title")) for p, b in self.received if path is None or p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoints() -> Iterator[Callable[..., Endpoint]]:
    made: list[Endpoint] = []

    def make(status: int = 200, delay: float = 0.0) -> Endpoint:
        made.append(Endpoint(status, delay))
        return made[-1]

    yield make
    for e in made:
        e.close()


class InterceptingProxy(socketserver.ThreadingTCPServer):
    """An HTTPS proxy that is the destination: accepts ``CONNECT host:443``, speaks TLS with a
    certificate for that host issued by a test CA, records (host, path, JSON body) and answers
    like the service does (Discord: 204, Slack: 200 "ok")."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.seen: list[tuple[str, str, dict[str, Any]]] = []
        super().__init__((HOST, 0), _ProxyHandler)


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: InterceptingProxy

    def handle(self) -> None:
        method, target, _ = self.rfile.readline().decode().split()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        if method != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host = target.rsplit(":", 1)[0]
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        with self.server.ctx.wrap_socket(self.connection, server_side=True) as tls:
            f = tls.makefile("rb")
            _, path, _ = f.readline().decode().split()
            headers = {}
            while (line := f.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = f.read(int(headers.get("content-length", "0")))
            self.server.seen.append((host, path, json.loads(body)))
            status, payload = (204, b"") if host == "discord.com" else (200, b"ok")
            head = f"HTTP/1.1 {status} OK\r\nContent-Length: {len(payload)}\r\n"
            tls.sendall(head.encode() + b"Connection: close\r\n\r\n" + payload)


@pytest.fixture
def https_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InterceptingProxy]:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("discord.com", "hooks.slack.com").configure_cert(ctx)
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    proxy = InterceptingProxy(ctx)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    # requests reads both at request time (Session.merge_environment_settings).
    monkeypatch.setenv("HTTPS_PROXY", f"http://{HOST}:{proxy.server_address[1]}")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_pem))
    yield proxy
    proxy.shutdown()
    proxy.server_close()


@pytest.fixture(autouse=True)
def _no_outside_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("NO_PROXY", f"{HOST},localhost")


class Mailbox:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content.decode()
        self.mails.append((envelope.mail_from, envelope.rcpt_tos, message_from_string(content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    def auth(_server: Any, _session: Any, _env: Any, _mech: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"ops", b"pw")
        return AuthResult(success=ok)

    box = Mailbox()
    port = free_port(HOST)
    controller = Controller(
        box, hostname=HOST, port=port, authenticator=auth, auth_require_tls=False
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


# --- notifier, events ------------------------------------------------------------------------


@pytest.fixture
def stack(
    make_settings: Callable[..., Settings],
) -> Iterator[Callable[..., tuple[Settings, Clients]]]:
    """(settings, clients) with these channels and notify options."""
    made: list[Clients] = []

    def make(channels: list[Channel], **notify: Any) -> tuple[Settings, Clients]:
        config = NotifyConfig(channels=channels, **{"backoff_s": 0.1, **notify})
        settings = make_settings(notify=config, alerts_sweep_s=0.05)
        made.append(Clients(settings))
        made[-1].bus.ensure_group(settings.alerts_stream, settings.notifier_group)
        return settings, made[-1]

    yield make
    for c in made:
        c.close()


@contextlib.contextmanager
def running(settings: Settings, consumer: str = "n1", **kw: Any) -> Iterator[Notifier]:
    clients = Clients(settings)
    notifier = build_notifier(clients, consumer, **kw)
    notifier.setup()
    stop = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stop,), kwargs={"block_ms": 50})
    thread.start()
    try:
        yield notifier
    finally:
        stop.set()
        thread.join(10)
        clients.close()
    assert not thread.is_alive()


def iso(dt: datetime | None = None) -> str:
    return (dt or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


def event(
    alert_id: str,
    change: str,
    *,
    drone: str = "drone-7",
    kind: str = "low_battery",
    severity: str = "warning",
    state: str = "open",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": alert_id,
        "drone_id": drone,
        "type": kind,
        "severity": severity,
        "state": state,
        "count": 3,
        "opened_at": iso(datetime.now(UTC) - timedelta(minutes=1)),
        "last_seen": iso(),
        "details": WHERE,
        "change": change,
        **extra,
    }


def publish(clients: Clients, *events: dict[str, Any]) -> None:
    items = [(e["drone_id"], orjson.dumps(e)) for e in events]
    clients.bus.publish(clients.settings.alerts_stream, items)


def wait_for(check: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.02)


def pending(clients: Clients) -> int:
    s = clients.settings
    return clients.bus.pending_count(s.alerts_stream, s.notifier_group)


def outcomes(clients: Clients, alert_id: str, channel: str) -> list[tuple[str, str, int]]:
    return [
        (r["change"], r["outcome"], r["attempt"])
        for r in clients.notifications.for_alert(alert_id)
        if r["channel"] == channel
    ]


def records(clients: Clients) -> int:
    return clients.db[COLLECTION].count_documents({})


# --- tests -----------------------------------------------------------------------------------


def test_json_webhook_gets_the_alert_and_everything_is_recorded(
    stack: Callable[..., tuple[Settings, Clients]], endpoints: Callable[..., Endpoint]
) -> None:
    hook = endpoints()
    settings, clients = stack([Channel(name="ops", url=hook.url("/alerts"))])
    stop = threading.Event()
    thread = threading.Thread(target=run_notifier, args=(settings, stop))  # `skyhive notifier`
    thread.start()
    try:
        publish(clients, event("a-1", "opened", severity="critical"))
        wait_for(lambda: hook.received, what="the webhook")
        wait_for(lambda: pending(clients) == 0, what="the acknowledgement")
        # No message for an acknowledgement; a bad entry goes to the dead letters, acknowledged.
        publish(clients, event("a-1", "acknowledged", severity="critical", state="acknowledged"))
        clients.bus.publish(settings.alerts_stream, [("x", b"not json")])
        # Acknowledged only once every channel is done with it: nothing is left to send.
        wait_for(lambda: pending(clients) == 0 and clients.deadletters.list(), what="acks")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert len(hook.received) == 1
    path, body = hook.received[0]
    assert path == "/alerts"
    assert body["title"] == "[CRITICAL] low_battery on drone-7 opened"
    assert body["type"] == "failure"
    message = body["message"]
    for text in ("Drone: drone-7", "low_battery, critical", "Count: 3", "37.80446, -122.27110"):
        assert text in message
    assert "battery_pct=8.5" in message and "Alert id: a-1" in message
    [record] = clients.notifications.for_alert("a-1")
    assert record["channel"] == "ops" and record["change"] == "opened"
    assert record["outcome"] == "sent" and record["attempt"] == 1 and record["error"] is None
    assert isinstance(record["at"], datetime) and record["at"].tzinfo is not None
    assert serialize(record)["at"].endswith("Z")  # as the alerts API shows it
    assert clients.deadletters.list()[0]["source"] == "notifier"
    # Acknowledged: the reminder schedule the opening started is gone.
    assert clients.redis_text.zscore(REMINDERS, "a-1") is None


def test_discord_and_slack_get_their_own_webhook_formats(
    stack: Callable[..., tuple[Settings, Clients]], https_proxy: InterceptingProxy
) -> None:
    discord = "discord://417429632418316298/JHZ7lQml277CDHmQKMHI8qBe7bk2ZwO5UKjCiOAF7711o33MyqU"
    slack = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
    settings, clients = stack(
        [Channel(name="discord", url=discord), Channel(name="slack", url=slack)]
    )
    with running(settings):
        publish(clients, event("a-2", "opened", kind="geofence", severity="critical"))
        wait_for(lambda: len(https_proxy.seen) == 2, what="both webhooks")
        wait_for(lambda: pending(clients) == 0, what="the acknowledgement")
    seen = {host: (path, body) for host, path, body in https_proxy.seen}
    path, body = seen["discord.com"]
    assert path == "/api/webhooks/417429632418316298/" + discord.rsplit("/", 1)[1]
    assert "content" in body or "embeds" in body
    assert "geofence on drone-7" in json.dumps(body)
    path, body = seen["hooks.slack.com"]
    assert path == "/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
    assert {"attachments", "blocks", "text"} & set(body)
    assert "geofence on drone-7" in json.dumps(body)
    assert {r["channel"]: r["outcome"] for r in clients.notifications.for_alert("a-2")} == {
        "discord": "sent",
        "slack": "sent",
    }


def test_email_reaches_a_local_smtp_server(
    stack: Callable[..., tuple[Settings, Clients]], smtp: tuple[Mailbox, int]
) -> None:
    box, port = smtp
    url = (
        f"mailto://ops:pw@{HOST}:{port}/?to=oncall@example.com&from=skyhive@example.com"
        f"&smtp={HOST}&mode=insecure"
    )
    settings, clients = stack([Channel(name="mail", url=url)])
    with running(settings):
        publish(clients, event("a-3", "opened", kind="offline", severity="critical"))
        wait_for(lambda: box.mails, what="the mail")
        wait_for(lambda: pending(clients) == 0, what="the acknowledgement")
    sender, rcpts, mail = box.mails[0]
    assert (sender, rcpts) == ("skyhive@example.com", ["oncall@example.com"])
    assert mail["Subject"] == "[CRITICAL] offline on drone-7 opened"
    text = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    body = text.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert b"Drone: drone-7" in body and b"37.80446, -122.27110" in body
    assert outcomes(clients, "a-3", "mail") == [("opened", "sent", 1)]


def test_failing_and_slow_channels_do_not_hold_back_a_working_one(
    stack: Callable[..., tuple[Settings, Clients]],
    endpoints: Callable[..., Endpoint],
    caplog: pytest.LogCaptureFixture,
) -> None:
    good, broken, slow = endpoints(), endpoints(status=500), endpoints(delay=3.0)
    secret = "S3cr3tT0kenValue"
    channels = [
        Channel(name="broken", url=broken.url(f"/hook/{secret}")),
        Channel(name="slow", url=slow.url("/slow")),
        Channel(name="good", url=good.url("/good")),
    ]
    settings, clients = stack(channels, retries=2, backoff_s=0.2, timeout_s=0.3)
    caplog.set_level(logging.INFO)
    with running(settings) as notifier:
        started = time.monotonic()
        publish(clients, event("a-4", "opened"))
        wait_for(lambda: good.received, timeout=1.0, what="the working channel")
        took = time.monotonic() - started
        # The entry waits for the others, still retrying.
        assert pending(clients) == 1
        assert ("opened", "sent", 1) in outcomes(clients, "a-4", "good")
        wait_for(lambda: pending(clients) == 0, what="every channel to finish")
        # A channel that just gave up gets one attempt per message until it works again.
        publish(clients, event("a-5", "opened", drone="drone-8"))
        wait_for(lambda: len(good.received) == 2, timeout=1.0, what="the second message")
        wait_for(lambda: pending(clients) == 0, what="the second message to finish")
        assert notifier.in_flight() == 0
    assert took < 1.0  # the others take 1.5 s and more
    assert len(broken.received) == 4  # three attempts, then one
    for name in ("broken", "slow"):
        assert outcomes(clients, "a-4", name) == [
            ("opened", "failed", 1),
            ("opened", "failed", 2),
            ("opened", "gave_up", 3),
        ]
        assert outcomes(clients, "a-5", name) == [("opened", "gave_up", 1)]
    errors = [r["error"] for r in clients.notifications.for_alert("a-4") if r["error"]]
    assert errors and all(secret not in e for e in errors)
    assert any("500" in e for e in errors)
    assert "gave up" in caplog.text and "broken" in caplog.text
    assert secret not in caplog.text


def test_a_flapping_alert_is_throttled_but_escalations_go_through(
    stack: Callable[..., tuple[Settings, Clients]], endpoints: Callable[..., Endpoint]
) -> None:
    hook = endpoints()
    settings, clients = stack([Channel(name="ops", url=hook.url("/ops"))], throttle_s=60)
    with running(settings):
        publish(
            clients,
            event("f-1", "opened"),
            event("f-1", "resolved", state="resolved", resolved_at=iso()),
            event("f-2", "opened"),
            event("f-2", "escalated", severity="critical"),
            event("f-2", "deescalated"),
            event("g-1", "opened", drone="drone-9"),  # another drone: its own window
        )
        wait_for(lambda: records(clients) == 6, what="six records")
        wait_for(lambda: pending(clients) == 0, what="the acknowledgements")
    assert hook.titles() == [
        "[WARNING] low_battery on drone-7 opened",
        "[CRITICAL] low_battery on drone-7 escalated to critical",
        "[WARNING] low_battery on drone-9 opened",
    ]
    assert outcomes(clients, "f-1", "ops") == [
        ("opened", "sent", 1),
        ("resolved", "throttled", 0),
    ]
    assert outcomes(clients, "f-2", "ops") == [
        ("opened", "throttled", 0),
        ("escalated", "sent", 1),
        ("deescalated", "throttled", 0),
    ]


def test_a_critical_only_channel_hears_how_its_alert_ends(
    stack: Callable[..., tuple[Settings, Clients]], endpoints: Callable[..., Endpoint]
) -> None:
    hook = endpoints()
    channels = [Channel(name="crit", url=hook.url("/crit"), min_severity="critical")]
    settings, clients = stack(channels, throttle_s=0)
    with running(settings):
        publish(
            clients,
            event("c-1", "opened", severity="critical"),
            event("c-1", "deescalated", severity="warning"),
            event("w-1", "opened", drone="drone-3"),  # warning: not for this channel
            event("w-1", "resolved", drone="drone-3", state="resolved"),  # nor its end
            event("c-1", "resolved", state="resolved", resolved_by="auto"),
        )
        wait_for(lambda: len(hook.received) == 3, what="three messages")
        wait_for(lambda: pending(clients) == 0, what="the acknowledgements")
    assert hook.titles() == [
        "[CRITICAL] low_battery on drone-7 opened",
        "[WARNING] low_battery on drone-7 de-escalated to warning",
        "[RESOLVED] low_battery on drone-7",
    ]
    assert "resolved at" in hook.received[2][1]["message"]
    assert [c for c, _, _ in outcomes(clients, "c-1", "crit")] == [
        "opened",
        "deescalated",
        "resolved",
    ]
    assert clients.notifications.for_alert("w-1") == []


def test_a_redelivered_entry_is_not_sent_again(
    stack: Callable[..., tuple[Settings, Clients]], endpoints: Callable[..., Endpoint]
) -> None:
    hook = endpoints()
    settings, clients = stack([Channel(name="ops", url=hook.url("/ops"))])
    sent = event("d-1", "opened", severity="critical")
    with running(settings, consumer="n1"):
        publish(clients, sent)
        wait_for(lambda: pending(clients) == 0 and hook.received, what="the first send")
    # A notifier dies holding the same entry again (sent, recorded, never acknowledged), and
    # an entry it had not sent yet.
    publish(clients, sent, event("d-2", "opened", drone="drone-2"))
    s = settings
    held = clients.bus.consume(s.alerts_stream, s.notifier_group, "dead", 10, 100)
    assert len(held) == 2 and pending(clients) == 2
    with running(settings, consumer="n2", claim_idle_ms=100):  # takes them once idle 100 ms
        wait_for(lambda: pending(clients) == 0, what="the dead consumer's entries")
    assert hook.titles() == [
        "[CRITICAL] low_battery on drone-7 opened",
        "[WARNING] low_battery on drone-2 opened",
    ]
    assert outcomes(clients, "d-1", "ops") == [("opened", "sent", 1)]
    assert outcomes(clients, "d-2", "ops") == [("opened", "sent", 1)]


def test_an_entry_still_being_sent_is_not_taken_by_another_notifier(
    stack: Callable[..., tuple[Settings, Clients]], endpoints: Callable[..., Endpoint]
) -> None:
    slow = endpoints(delay=1.0)
    settings, clients = stack([Channel(name="slow", url=slow.url("/slow"))], timeout_s=3)
    with running(settings, consumer="n1", claim_idle_ms=300):
        publish(clients, event("s-1", "opened"))
        wait_for(lambda: slow.received, what="the slow send to start")
        # A second notifier would take an entry idle for 300 ms for a dead consumer's.
        with running(settings, consumer="n2", claim_idle_ms=300):
            wait_for(lambda: pending(clients) == 0, what="the acknowledgement")
    assert len(slow.received) == 1
    assert outcomes(clients, "s-1", "slow") == [("opened", "sent", 1)]


def test_reminders_escalate_survive_a_restart_and_stop_after_an_ack(
    stack: Callable[..., tuple[Settings, Clients]], endpoints: Callable[..., Endpoint]
) -> None:
    hook = endpoints()
    channels = [
        Channel(name="ops", url=hook.url("/ops")),
        Channel(name="oncall", url=hook.url("/oncall"), escalation=True),
    ]
    settings, clients = stack(channels, reminder_every_s=0.2, escalate_after_reminders=2)
    opened = datetime.now(UTC) - timedelta(minutes=5)
    doc = {
        "_id": "r-1",
        "drone_id": "drone-5",
        "type": "low_battery",
        "severity": "critical",
        "state": "open",
        "count": 4,
        "opened_at": opened,
        "last_seen": opened,
        "details": WHERE,
    }
    clients.db.alerts.insert_one(doc)

    def reminders(channel: str) -> list[int]:
        return [
            r["reminder"]
            for r in clients.notifications.for_alert("r-1")
            if r["channel"] == channel and "reminder" in r
        ]

    with running(settings, consumer="n1"):
        publish(clients, event("r-1", "opened", drone="drone-5", severity="critical"))
        wait_for(lambda: reminders("ops"), what="the first reminder")
    before = reminders("ops")
    with running(settings, consumer="n2") as notifier:  # a restart: the schedule is in Redis
        wait_for(lambda: len(reminders("ops")) >= len(before) + 2, what="more reminders")
        wait_for(lambda: reminders("oncall"), what="the escalation")
        clients.db.alerts.update_one(
            {"_id": "r-1"}, {"$set": {"state": "acknowledged", "acknowledged_by": "ann"}}
        )
        wait_for(lambda: clients.redis_text.zscore(REMINDERS, "r-1") is None, what="the schedule")
        reminded = notifier.reminders
        for _ in range(3):  # what would be three reminder periods: nothing is due any more
            notifier.sweep()
        assert notifier.reminders == reminded
    ops, oncall = reminders("ops"), reminders("oncall")
    assert ops == list(range(1, len(ops) + 1))  # numbered on across the restart, none twice
    assert oncall and oncall == list(range(2, len(oncall) + 2))
    assert hook.titles("/ops")[0] == "[CRITICAL] low_battery on drone-5 opened"
    assert "still unacknowledged (reminder 1)" in hook.titles("/ops")[1]
    assert hook.titles("/oncall")[0] == (
        "[ESCALATION] low_battery on drone-5 ESCALATED: unacknowledged after 2 reminders"
    )
    assert not any("opened" in t for t in hook.titles("/oncall"))  # only escalations there
    assert clients.redis_text.hget(REMINDER_COUNTS, "r-1") is None
    escalations = [r for r in clients.notifications.for_alert("r-1") if r["channel"] == "oncall"]
    assert {(r["change"], r["outcome"]) for r in escalations} == {("escalation", "sent")}


def test_url_secrets_are_the_tokens_not_the_hosts() -> None:
    assert set(url_secrets("discord://417429632418316298/tok3nValue")) == {
        "417429632418316298",
        "tok3nValue",
    }
    found = url_secrets("mailto://user:pw1@smtp.example.com/?to=ops@example.com&pass=hunter22")
    assert {"user", "pw1", "hunter22"} <= set(found)
    assert "smtp.example.com" not in found
