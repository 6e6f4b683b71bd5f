"""Hostile input at volume, through the running pipeline.

More than 10,000 hostile MQTT payloads and a set of malformed topics are published to the
shared test broker (insecure devices: any topic may be published) while valid readings flow,
through a real gateway, processor and archiver on the embedded servers. Every hostile one
must be dead-lettered with a reason, every valid one stored in history exactly once, no role
may fail, and a valid-looking body on a malformed topic is never stored under its own id.

The corpus comes from hypothesis strategies, collected by a ``@given`` function run with
``max_examples`` of the corpus size, ``derandomize=True`` and no database: hypothesis
explores the strategies (edge cases included) deterministically, and the pipeline then runs
once over the whole corpus. (Running the pipeline per hypothesis example would take hours;
``.example()`` is neither seeded nor meant for volume.) The handful of ~1 MB bodies are
added explicitly, so the corpus carries a few of them rather than thousands.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from skyhive.bootstrap import bootstrap
from skyhive.domain.telemetry import InvalidTelemetry, parse_telemetry
from skyhive.services.gateway import topic_identity
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers.archiver import run_archiver
from skyhive.workers.gateway import mqtt_gateway
from skyhive.workers.processor import run_processor

HOSTILE = 10_200
BIG_BODIES = 4
BASE_MS = 1795428000000  # 2026-11-23; a fixed instant, not today
PAST_MS = 946684800000  # 2000-01-01, the earliest accepted
FUTURE_MS = 4102444800000  # 2100-01-01, the first refused
DRONES = [f"hx-{i}" for i in range(20)]

Hostile = tuple[str, str, bytes]  # (category, topic drone id, payload)


def _reading(**fields: object) -> dict[str, object]:
    return {"seq": 1, "ts": BASE_MS, "battery_pct": 50.0, "lat": 37.8, "lon": -122.27, **fields}


def _json(d: dict[str, object]) -> bytes:
    return orjson.dumps(d)


_drone = st.sampled_from(DRONES)
_fields = st.sampled_from(["seq", "ts", "battery_pct", "lat", "lon", "alt_m", "speed_mps"])


def _cat(name: str, payload: st.SearchStrategy[bytes]) -> st.SearchStrategy[Hostile]:
    return st.tuples(st.just(name), _drone, payload)


_int64 = st.integers(-(2**63), 2**63 - 1)  # what orjson writes; beyond it, see below
_json_scalar = st.one_of(st.none(), st.booleans(), _int64, st.text(max_size=20))

NON_JSON = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.sampled_from([b"", b"{", b"}", b"[]", b"null", b'"x"', b"1", b"{'a': 1}", b"\x00"]),
    st.lists(_json_scalar, max_size=5).map(orjson.dumps),  # JSON, but not an object
)


@st.composite
def _deep(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(9, 3000))
    opener, closer = draw(st.sampled_from([(b'{"a":', b"}"), (b"[", b"]"), (b'[{"a":', b"}]")]))
    inner = opener * depth + b"1" + closer * depth
    return _json(_reading())[:-1] + b',"x":' + inner + b"}"


_NAN_LITERALS = [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"1e999", b"-1e999"]


@st.composite
def _nan(draw: st.DrawFn) -> bytes:
    field = draw(st.sampled_from(["battery_pct", "lat", "lon", "alt_m", "speed_mps", "seq"]))
    literal = draw(st.sampled_from(_NAN_LITERALS))
    body = _json(_reading(**{field: 0.5}))
    return body.replace(f'"{field}":0.5'.encode(), f'"{field}":'.encode() + literal)


_wrong_value = st.one_of(
    st.text(max_size=10),
    st.lists(_int64, max_size=3),
    st.dictionaries(st.text(max_size=3), _int64, max_size=2),
    st.just(True),
)
WRONG_TYPES = st.builds(
    lambda f, v: _json(_reading(**{f: v})),
    st.sampled_from(["seq", "ts", "battery_pct", "lat", "lon", "emergency", "status"]),
    _wrong_value,
).filter(lambda b: not _valid(b, DRONES[0]))

HUGE_OR_NEGATIVE = st.one_of(
    st.builds(
        lambda f, v: _json(_reading(**{f: v})),
        st.sampled_from(["battery_pct", "lat", "lon", "alt_m", "speed_mps", "heading_deg"]),
        st.one_of(st.floats(1e5, 1e308), st.floats(-1e308, -1e3)),
    ),
    st.builds(lambda v: _json(_reading(battery_pct=v)), st.floats(-1e308, -1e-9)),
    st.builds(lambda v: _json(_reading(seq=v)), st.integers(-(2**63), -1)),
    st.builds(lambda v: _json(_reading(seq=v)), st.integers(2**63, 2**64 - 1)),
    # Beyond 64 bits: orjson cannot write it, so it is spliced in.
    st.integers(2**64, 2**200).map(
        lambda v: _json(_reading(seq=7)).replace(b'"seq":7', b'"seq":' + str(v).encode())
    ),
)

TIMESTAMPS = st.one_of(
    st.builds(lambda v: _json(_reading(ts=v)), st.integers(-(2**53), PAST_MS - 1)),
    st.builds(lambda v: _json(_reading(ts=v)), st.integers(FUTURE_MS, 2**53)),
    st.builds(
        lambda y: _json(_reading(ts=f"{y:04d}-06-01T00:00:00Z")),
        st.one_of(st.integers(1, 1999), st.integers(2100, 9999)),
    ),
    st.sampled_from(["yesterday", "2026-13-45T99:00:00Z", "2026-11-23T00:00:00"]).map(
        lambda t: _json(_reading(ts=t))
    ),
)


@st.composite
def _mismatch(draw: st.DrawFn) -> Hostile:
    topic_id = draw(_drone)
    body_id = draw(st.sampled_from([d for d in DRONES if d != topic_id] + ["victim", "hx-0 "]))
    return ("id_mismatch", topic_id, _json(_reading(drone_id=body_id)))


@st.composite
def _bad_utf8(draw: st.DrawFn) -> bytes:
    bad = draw(st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88"]))
    where = draw(st.sampled_from(["value", "key"]))
    if where == "value":
        return _json(_reading(status="idle"))[:-1] + b',"note":"a' + bad + b'b"}'
    return _json(_reading())[:-1] + b',"k' + bad + b'":1}'


HOSTILE_STRATEGY: st.SearchStrategy[Hostile] = st.one_of(
    _cat("non_json", NON_JSON),
    _cat("deep", _deep()),
    _cat("nan", _nan()),
    _cat("wrong_type", WRONG_TYPES),
    _cat("huge_negative", HUGE_OR_NEGATIVE),
    _cat("timestamp", TIMESTAMPS),
    _mismatch(),
    _cat("bad_utf8", _bad_utf8()),
)


def _valid(payload: bytes, topic_id: str, max_bytes: int = 16 * 1024) -> bool:
    try:
        parse_telemetry(payload, topic_id, max_bytes)
    except InvalidTelemetry:
        return False
    return True


@functools.cache
def hostile_corpus(n: int = HOSTILE) -> list[Hostile]:
    corpus: list[Hostile] = []

    @hsettings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(HOSTILE_STRATEGY)
    def collect(item: Hostile) -> None:
        corpus.append(item)

    collect()
    big = b'{"seq":1,"ts":1795428000000,"battery_pct":50,"pad":"' + b"x" * 1_000_000 + b'"}'
    corpus += [("big", DRONES[i], big) for i in range(BIG_BODIES)]
    return corpus


MALFORMED_TOPIC_IDS = ["a b", "", "..", "x" * 200, "$x", "a\x00b", "a.b", "é"]


def test_the_corpus_is_large_and_all_of_it_invalid() -> None:
    corpus = hostile_corpus()
    assert len(corpus) >= 10_000
    kinds = Counter(c for c, _, _ in corpus)
    assert set(kinds) >= {"non_json", "deep", "nan", "wrong_type", "huge_negative"}
    assert set(kinds) >= {"timestamp", "id_mismatch", "bad_utf8", "big"}
    assert min(kinds.values()) >= BIG_BODIES
    assert not [c for c in corpus if _valid(c[2], c[1])]


# -- the pipeline ----------------------------------------------------------------------------


def _valid_traffic(drones: int, per_drone: int) -> list[tuple[str, bytes]]:
    out = []
    for seq in range(1, per_drone + 1):
        for d in range(drones):
            body = _reading(seq=seq, ts=BASE_MS + seq * 1000, battery_pct=float(50 + d % 40))
            out.append((f"skyhive/drones/ok-{d}/telemetry", _json(body)))
    return out


def _publisher(host: str, port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    c.max_inflight_messages_set(200)
    c.connect(host, port)
    c.loop_start()
    return c


def _publish_all(host: str, port: int, items: list[tuple[str, bytes]]) -> int:
    """Publish at QoS 1; the number the broker acknowledged."""
    c = _publisher(host, port)
    try:
        infos = [c.publish(topic, payload, qos=1) for topic, payload in items]
        acked = 0
        for info in infos:
            info.wait_for_publish(60)
            acked += info.is_published()
        return acked
    finally:
        c.disconnect()
        c.loop_stop()


def _wait_for(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    assert cond(), "condition not met in time"


class Roles:
    """Gateway, processor and archiver, each in a thread as `skyhive up` runs them apart."""

    def __init__(self, settings: Settings, clients: Clients) -> None:
        self.stop = threading.Event()
        self.failures: list[BaseException] = []
        self.gateway = mqtt_gateway(settings, clients.ingest, client_id=f"gw-{uuid.uuid4()}")
        self.threads = [
            threading.Thread(target=self._guard(self.gateway.run), args=(self.stop,)),
            threading.Thread(target=self._guard(run_processor), args=(settings, self.stop)),
            threading.Thread(target=self._guard(run_archiver), args=(settings, self.stop)),
        ]

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        def run(*args: object) -> None:
            try:
                fn(*args)
            except BaseException as exc:
                self.failures.append(exc)
                raise

        return run

    def __enter__(self) -> Roles:
        for t in self.threads:
            t.daemon = True
            t.start()
        _wait_for(lambda: self.gateway.connected, 15)
        return self

    def alive(self) -> bool:
        return all(t.is_alive() for t in self.threads)

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


@pytest.fixture
def pipeline(settings: Settings, clients: Clients) -> Iterator[Roles]:
    bootstrap(clients)
    with Roles(settings, clients) as roles:
        yield roles


@pytest.mark.mqtt
def test_hostile_input_at_volume_through_the_running_pipeline(
    settings: Settings,
    clients: Clients,
    pipeline: Roles,
    broker_kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    corpus = hostile_corpus()
    hostile = [(f"skyhive/drones/{d}/telemetry", p) for _, d, p in corpus]
    # Mosquitto refuses a topic with a NUL (MQTT forbids it) and drops the publisher: that
    # one never reaches SkyHive. amqtt delivers it, and SkyHive must refuse it.
    delivered_bad = [b for b in MALFORMED_TOPIC_IDS if broker_kind == "amqtt" or "\x00" not in b]
    malformed = [
        (f"skyhive/drones/{bad}/telemetry", _json(_reading(drone_id="victim", seq=i + 1)))
        for i, bad in enumerate(delivered_bad)
    ]
    valid = _valid_traffic(drones=40, per_drone=50)
    # Interleave: valid readings flow while the hostile ones arrive.
    step = max(1, len(hostile) // len(valid))
    mixed: list[tuple[str, bytes]] = []
    for i, item in enumerate(valid):
        mixed.append(item)
        mixed.extend(hostile[i * step : (i + 1) * step])
    mixed.extend(hostile[len(valid) * step :])
    host, port = settings.mqtt_url.removeprefix("mqtt://").split(":")
    assert _publish_all(host, int(port), mixed) == len(mixed)
    # Malformed topics on connections of their own: a broker may drop a connection over a
    # topic MQTT forbids (a NUL) without spoiling the rest.
    for item in malformed:
        with contextlib.suppress(OSError):
            _publish_all(host, int(port), [item])

    s = settings
    expected_dead = len(hostile) + len(malformed)

    def dead() -> int:
        return int(clients.redis_bytes.xlen(s.deadletter_stream))

    def stored() -> int:
        return len(clients.telemetry.reading_ids())

    _wait_for(lambda: stored() >= len(valid) and dead() >= len(hostile), 120)
    time.sleep(1.0)  # let stragglers (malformed topics, duplicates) show

    # Every valid reading in history, exactly once; nothing else there.
    assert stored() == len(valid)
    ids = clients.telemetry.reading_ids()
    assert len(set(ids)) == len(ids) == len(valid)
    drones = {i.rsplit(":", 1)[0] for i in ids}
    assert all(d.startswith("ok-") for d in drones), drones - {f"ok-{i}" for i in range(40)}
    assert clients.telemetry.count_for("victim") == 0
    assert clients.live.get("victim") is None

    # Every hostile message dead-lettered, with its reason; malformed topics too.
    letters: list[Any] = clients.redis_bytes.xrange(s.deadletter_stream)  # type: ignore[assignment]
    reasons = [f[b"reason"].decode() for _, f in letters]
    sources = [f[b"source"].decode("utf-8", "replace") for _, f in letters]
    assert all(reasons)
    n_dead = len(letters)
    on_bad_topic = {
        src: r
        for r, src in zip(reasons, sources, strict=True)
        if "/hx-" not in src and "/ok-" not in src
    }
    print(f"\nhostile={len(hostile)} valid={len(valid)} dead={n_dead} of {expected_dead}")
    print(f"corpus={dict(Counter(c for c, _, _ in corpus))}")
    print(f"malformed topics dead-lettered={len(on_bad_topic)}: {sorted(on_bad_topic)}")
    assert n_dead == expected_dead
    assert pipeline.gateway.rejected == n_dead
    assert pipeline.gateway.accepted == len(valid)
    joined = Counter(r.split(":")[0] for r in reasons)
    assert joined["not JSON"] > 0 and joined["oversize"] >= BIG_BODIES
    assert sum(r.startswith(f"oversize: {len(corpus[-1][2])} bytes") for r in reasons) == BIG_BODIES
    mismatch = sum(1 for c, _, _ in corpus if c == "id_mismatch")
    assert sum("does not match topic" in r for r in reasons) >= mismatch
    assert len(on_bad_topic) == len(delivered_bad)
    assert all("topic drone id" in r for r in on_bad_topic.values()), on_bad_topic

    # No role failed or restarted; nothing went wrong enough to log an error.
    assert pipeline.alive() and not pipeline.failures
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors[:5]]
    assert time.monotonic() - started < 120


def test_topic_identity_keeps_a_malformed_id_to_be_refused() -> None:
    for bad in MALFORMED_TOPIC_IDS:
        drone_id, channel = topic_identity(f"skyhive/drones/{bad}/telemetry")
        assert drone_id == bad and channel == "telemetry"
        assert not _valid(_json(_reading(drone_id="victim")), drone_id)
