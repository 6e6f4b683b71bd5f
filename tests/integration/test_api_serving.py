"""The API behind its real server (``run_api``: waitress and this project's deadlines and body
limits), over real sockets: slow clients cost no thread and are dropped at their deadline,
event streams are flushed event by event, bodies over a route's limit are a JSON 413 whether
they are declared or chunked (never a silent truncation), and SIGTERM stops it gracefully."""

from __future__ import annotations

import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from api_server import HOST, NO_RATE_LIMIT, Api
from auth_helpers import make_key
from redis_access import subscribers
from skyhive.adapters.live_state import ALERTS_LIVE
from skyhive.api.server import run_api
from skyhive.embedded import free_port
from skyhive.settings import Settings
from skyhive.wiring import Clients

MiB = 1024 * 1024


def get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length (every JSON answer here) off a raw socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {buf!r}"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of a response"
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]


def chunked_post(
    port: int, path: str, body: bytes, key: str, content_type: str, chunk: int = 64 * 1024
) -> tuple[int, dict[str, str], bytes, int]:
    """POST ``body`` chunked (no Content-Length), as a streaming client does, stopping early
    if the server answers before it has all of it. Returns the response and the body bytes
    sent."""
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sent = 0
        for start in range(0, len(body), chunk):
            if select.select([sock], [], [], 0)[0]:
                break  # answered already
            part = body[start : start + chunk]
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(part)
        else:
            sock.sendall(b"0\r\n\r\n")
        status, headers, resp_body = read_response(sock)
        return status, headers, resp_body, sent


def error_of(headers: dict[str, str], body: bytes, status: int) -> dict[str, Any]:
    assert headers["content-type"].startswith("application/json"), body[:200]
    err: dict[str, Any] = orjson.loads(body)["error"]
    assert err["code"] == status and err["message"], err
    return err


def is_open(sock: socket.socket) -> bool:
    """Not closed by the server (nothing to read, no EOF), without blocking."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)


def wait_closed(sock: socket.socket, timeout: float) -> float:
    """Seconds until the server closed ``sock`` (EOF); fails after ``timeout``."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except ConnectionResetError:
        data = b""
    assert data == b"", f"got data instead of a close: {data[:100]!r}"
    return time.monotonic() - started


# --- slow clients ---------------------------------------------------------------------------


def test_slow_clients_hold_no_thread_and_are_dropped_at_their_deadline(
    serve: Callable[..., Api],
) -> None:
    """20 clients stalled in their headers (5 of them silent from the start) and 5 in their
    bodies, against 8 worker threads: /healthz still answers at once, and each stalled socket
    is closed at its deadline."""
    api = serve(http={"threads": 8, "header_timeout_s": 1.5, "request_timeout_s": 3.0})
    stalled_headers, stalled_bodies = [], []
    started = time.monotonic()
    for _ in range(5):
        stalled_headers.append(socket.create_connection((HOST, api.port), timeout=10))
    for _ in range(15):
        sock = socket.create_connection((HOST, api.port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        stalled_headers.append(sock)
    for _ in range(5):
        sock = socket.create_connection((HOST, api.port), timeout=10)
        sock.sendall(
            b"POST /api/v1/customers HTTP/1.1\r\nHost: test\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"name": '
        )
        stalled_bodies.append(sock)
    try:
        slowest = 0.0
        for _ in range(10):
            t0 = time.monotonic()
            status, _, body = get(api.port, "/healthz")
            slowest = max(slowest, time.monotonic() - t0)
            assert status == 200, body
        assert slowest < 1.0, f"/healthz took {slowest:.2f}s behind 25 slow clients"
        assert all(is_open(s) for s in stalled_headers + stalled_bodies)  # not before time

        for sock in stalled_headers:
            wait_closed(sock, timeout=10)
        headers_closed_at = time.monotonic() - started
        for sock in stalled_bodies:
            wait_closed(sock, timeout=10)
        bodies_closed_at = time.monotonic() - started
        # Checked every second by the I/O loop: closed within about a second of the deadline.
        assert 1.5 <= headers_closed_at < 4.5, headers_closed_at
        assert 3.0 <= bodies_closed_at < 6.0, bodies_closed_at
        assert get(api.port, "/healthz")[0] == 200
    finally:
        for sock in stalled_headers + stalled_bodies:
            sock.close()


def test_an_idle_keepalive_connection_is_closed(serve: Callable[..., Api]) -> None:
    api = serve(http={"idle_timeout_s": 1.0})
    with socket.create_connection((HOST, api.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        assert read_response(sock)[0] == 200
        assert 0.5 <= wait_closed(sock, timeout=10) < 4.0


def test_malformed_requests_are_answered_in_the_json_error_format(
    serve: Callable[..., Api],
) -> None:
    api = serve()
    with socket.create_connection((HOST, api.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nBad Header\r\n\r\n")
        status, headers, body = read_response(sock)
    assert status == 400
    error_of(headers, body, 400)


# --- event streams ---------------------------------------------------------------------------


def open_stream(api: Api, key: str) -> socket.socket:
    sock = socket.create_connection((HOST, api.port), timeout=10)
    sock.sendall(
        f"GET /api/v1/stream/alerts HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {key}\r\n\r\n".encode()
    )
    received = b""
    while b"retry: 3000" not in received:
        chunk = sock.recv(4096)
        assert chunk, received
        received += chunk
    assert b" 200 " in received.split(b"\r\n", 1)[0], received
    return sock


def wait_subscribed(clients: Clients, count: int) -> None:
    deadline = time.monotonic() + 5
    while subscribers(clients.redis_text, ALERTS_LIVE) != count:
        assert time.monotonic() < deadline, "stream never subscribed"
        time.sleep(0.01)


def test_each_event_reaches_the_client_at_once(serve: Callable[..., Api]) -> None:
    """No buffering between the view and the socket: an event published now is read now."""
    api = serve()
    with open_stream(api, api.key("viewer")) as sock:
        wait_subscribed(api.clients, 1)
        for i in range(3):
            published = time.monotonic()
            api.clients.redis_text.publish(ALERTS_LIVE, orjson.dumps([{"id": f"a{i}"}]))
            received = b""
            while f'"id":"a{i}"'.encode() not in received:
                chunk = sock.recv(4096)
                assert chunk, received
                received += chunk
            took = time.monotonic() - published
            assert took < 1.0, f"event {i} took {took:.2f}s to arrive"
            assert b"event: alert" in received


def test_stop_ends_open_streams_and_returns(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(api_port=free_port(HOST), rate_limit=NO_RATE_LIMIT)
    stop = threading.Event()
    thread = threading.Thread(target=run_api, args=(settings, stop), daemon=True)
    thread.start()
    clients = Clients(settings)
    try:
        api = Api(settings, clients, settings.api_port)
        deadline = time.monotonic() + 15
        while True:
            try:
                assert get(api.port, "/healthz")[0] == 200
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        with open_stream(api, api.key("viewer")) as sock:
            stopped_at = time.monotonic()
            stop.set()
            thread.join(10)
            assert not thread.is_alive()
            assert time.monotonic() - stopped_at < 4.0  # the stream ended; no 5 s grace wait
            sock.settimeout(5)
            rest = b""
            while chunk := sock.recv(4096):
                rest += chunk
            assert rest.endswith(b"0\r\n\r\n"), rest  # a complete response, then the close
        with pytest.raises(OSError):
            get(settings.api_port, "/healthz")
    finally:
        stop.set()
        clients.close()


def test_skyhive_api_stops_gracefully_on_sigterm(make_settings: Callable[..., Settings]) -> None:
    """The real command, as `skyhive up` runs it: SIGTERM ends it cleanly (exit 0)."""
    settings = make_settings(api_port=free_port(HOST))
    env = {
        **os.environ,
        "SKYHIVE_MONGODB_URI": settings.mongodb_uri,
        "SKYHIVE_MONGODB_DB": settings.mongodb_db,
        "SKYHIVE_REDIS_URL": settings.redis_url,
        "SKYHIVE_REDIS_CLUSTER": str(settings.redis_cluster).lower(),
        "SKYHIVE_MQTT_URL": settings.mqtt_url,
        "SKYHIVE_HOST": HOST,
        "SKYHIVE_API_PORT": str(settings.api_port),
        "SKYHIVE_DATA_DIR": str(settings.data_dir),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyhive", "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    clients = Clients(settings)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(settings.api_port, "/healthz")[0] == 200:
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "skyhive api did not start"
                time.sleep(0.1)
        api = Api(settings, clients, settings.api_port)
        with open_stream(api, api.key("viewer")):
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            assert time.monotonic() - sent < 5.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        clients.close()


# --- body limits -------------------------------------------------------------------------


def ndjson(total: int, line_bytes: int = 1100) -> tuple[bytes, int]:
    """NDJSON telemetry of exactly ``total`` bytes: valid readings of about ``line_bytes``,
    the last one padded to make up the size."""

    def line(seq: int, pad: int) -> bytes:
        reading = {
            "drone_id": "big-1",
            "seq": seq,
            "ts": 1_700_000_000_000 + seq * 1000,
            "lat": 37.8,
            "lon": -122.27,
            "battery_pct": 80.0,
            "status": "in_flight",
            "note": "x" * pad,
        }
        return orjson.dumps(reading) + b"\n"

    base = len(line(0, 0))
    lines: list[bytes] = []
    size = 0
    while total - size >= 2 * line_bytes:
        lines.append(line(len(lines), line_bytes - base))
        size += len(lines[-1])
    last = line(len(lines), 0)
    lines.append(line(len(lines), total - size - len(last)))
    body = b"".join(lines)
    assert len(body) == total
    return body, len(lines)


def test_chunked_ingest_at_the_limit_is_taken_whole(serve: Callable[..., Api]) -> None:
    """The outsider's case: a chunked NDJSON upload of 10 MiB (the default limit), every
    reading of it accepted and on the bus."""
    api = serve()
    limit = api.settings.http.ingest_body_limit_bytes
    assert limit == 10 * MiB
    body, count = ndjson(limit)
    status, _, resp, sent = chunked_post(
        api.port, "/api/v1/telemetry", body, api.key(), "application/x-ndjson"
    )
    assert status == 202, resp[:300]
    assert sent == len(body)
    result = orjson.loads(resp)
    assert (result["accepted"], result["rejected"]) == (count, 0)
    assert api.clients.redis_bytes.xlen(api.settings.telemetry_stream) == count


@pytest.mark.parametrize("over", [1, 20 * MiB], ids=["one-byte-over", "triple"])
def test_chunked_ingest_over_the_limit_is_413_and_nothing_is_taken(
    serve: Callable[..., Api], over: int
) -> None:
    """One byte over: the server has read it all, the app refuses the exact length. Three
    times the limit: the server refuses while reading, without taking the rest."""
    api = serve()
    limit = api.settings.http.ingest_body_limit_bytes
    body, _ = ndjson(limit + over)
    status, headers, resp, sent = chunked_post(
        api.port, "/api/v1/telemetry", body, api.key(), "application/x-ndjson"
    )
    assert status == 413, resp[:300]
    assert str(limit) in error_of(headers, resp, 413)["message"]
    if over > MiB:
        assert sent < len(body)  # refused before the end
    assert api.clients.redis_bytes.xlen(api.settings.telemetry_stream) == 0
    assert get(api.port, "/healthz")[0] == 200


def test_json_routes_take_64_kib(serve: Callable[..., Api]) -> None:
    api = serve()
    key = api.key()
    limit = api.settings.http.body_limit_bytes
    assert limit == 64 * 1024

    # Declared too large: refused as soon as the headers are in, the body never sent.
    with socket.create_connection((HOST, api.port), timeout=10) as sock:
        sock.sendall(
            f"POST /api/v1/customers HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {limit + 1}\r\n\r\n".encode()
        )
        status, headers, body = read_response(sock)
    assert status == 413
    assert str(limit) in error_of(headers, body, 413)["message"]

    # Chunked, one byte over: refused; at the limit: read and judged on its content.
    def padded(size: int) -> bytes:
        doc = orjson.dumps({"name": "Big", "email": "big@example.com"})
        return doc[:-1] + b" " * (size - len(doc)) + b"}"

    status, headers, body, _ = chunked_post(
        api.port, "/api/v1/customers", padded(limit + 1), key, "application/json"
    )
    assert status == 413, body[:300]
    error_of(headers, body, 413)
    status, _, body, sent = chunked_post(
        api.port, "/api/v1/customers", padded(limit), key, "application/json"
    )
    assert status != 413 and sent == limit, body[:300]


def test_the_app_refuses_a_long_chunked_body_under_any_server(
    make_settings: Callable[..., Settings],
) -> None:
    """Werkzeug's server passes a chunked body on with no length, where its own limit would
    just stop reading: the app's input wrapper refuses one byte over, and takes all of one at
    the limit."""
    from werkzeug.serving import make_server

    from skyhive.api import create_app

    limit = 64 * 1024
    settings = make_settings(http={"ingest_body_limit_bytes": limit}, rate_limit=NO_RATE_LIMIT)
    clients = Clients(settings)
    server = make_server(HOST, 0, create_app(settings, clients), threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        key = make_key(clients)
        body, _ = ndjson(limit + 1, line_bytes=500)
        status, headers, resp, _ = chunked_post(
            server.server_port, "/api/v1/telemetry", body, key, "application/x-ndjson", 4096
        )
        assert status == 413, resp[:300]
        assert str(limit) in error_of(headers, resp, 413)["message"]
        assert clients.redis_bytes.xlen(settings.telemetry_stream) == 0

        body, count = ndjson(limit, line_bytes=500)
        status, _, resp, _ = chunked_post(
            server.server_port, "/api/v1/telemetry", body, key, "application/x-ndjson", 4096
        )
        assert status == 202, resp[:300]
        assert orjson.loads(resp)["accepted"] == count
        assert clients.redis_bytes.xlen(settings.telemetry_stream) == count
    finally:
        server.shutdown()
        serving.join(timeout=5)
        clients.close()
