"""What each consumer group of a Kafka-hosted stream has yet to commit, in the shape the
Redis lag reader gives (``adapters/stream_lag.py``), so the backpressure verdict, /metrics and
/readyz read both buses alike.

Per stream (topic): its partitions' low and high watermarks (two ``ListOffsets`` requests for
every topic at once) and each group's committed positions (one ``OffsetFetch`` per group).
A group's backlog is the sum over partitions of high watermark minus committed position (the whole
partition when it has committed nothing). Kafka has no "delivered but not acknowledged": a
record a member holds counts as undelivered until its position is committed, so ``pending``
is always 0. The lag's age (``oldest_unacked``) is the timestamp of the first uncommitted
record of each lagging partition, fetched only when asked (``with_age``: /metrics and /readyz,
not the backpressure pass), by a consumer that is assigned, never joins a group.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec  # not re-exported in its stubs

from skyhive.adapters.kafka_bus import KAFKA_LOG, BusUnavailable, topic_name
from skyhive.adapters.stream_lag import GroupLag, StreamLag

_NO_OFFSET = 0  # keep_from of a Kafka group: Kafka, not SkyHive, removes old records


class KafkaLag:
    def __init__(self, bootstrap: str, timeout_ms: int = 2000) -> None:
        self._bootstrap = bootstrap
        self._timeout_s = timeout_ms / 1000.0
        self._admin: Any = None
        self._probe: Any = None  # the consumer that reads the lag's first record
        self._lock = threading.Lock()  # the probe consumer is not shared between threads

    def _admin_client(self) -> Any:
        if self._admin is None:
            config: dict[str, Any] = {"bootstrap.servers": self._bootstrap, "logger": KAFKA_LOG}
            self._admin = AdminClient(config)
        return self._admin

    def read(
        self, groups: Mapping[str, frozenset[str]], *, with_age: bool = False
    ) -> list[StreamLag]:
        """Every stream of ``groups`` (stream → its consumer groups) that exists as a topic;
        raises :class:`BusUnavailable` when the brokers do not answer in time."""
        try:
            return self._read(groups, with_age)
        except (KafkaException, TimeoutError) as exc:
            raise BusUnavailable(f"reading lag from Kafka at {self._bootstrap}: {exc}") from exc

    def _read(self, groups: Mapping[str, frozenset[str]], with_age: bool) -> list[StreamLag]:
        admin = self._admin_client()
        meta = admin.list_topics(timeout=self._timeout_s).topics
        parts = {
            s: [TopicPartition(topic_name(s), p) for p in sorted(meta[topic_name(s)].partitions)]
            for s in groups
            if topic_name(s) in meta
        }
        every = [tp for tps in parts.values() for tp in tps]
        if not every:
            return []
        low, high = (
            self._offsets(every, spec) for spec in (OffsetSpec.earliest, OffsetSpec.latest)
        )
        out = []
        for stream, tps in parts.items():
            length = sum(max(0, high[tp_key(tp)] - low[tp_key(tp)]) for tp in tps)
            lags = []
            for group in sorted(groups[stream]):
                committed = self._committed(group, tps)
                behind = {}  # partition → its first uncommitted offset, where it lags
                for k in map(tp_key, tps):
                    start = max(committed.get(k, low[k]), low[k])  # older ones are gone
                    if high[k] > start:
                        behind[k] = start
                undelivered = sum(high[k] - start for k, start in behind.items())
                oldest = self._first_timestamp(behind) if with_age and behind else None
                lags.append(
                    GroupLag(stream, group, 0, undelivered, oldest, (_NO_OFFSET, 0), exact=True)
                )
            out.append(StreamLag(stream, length, lags))
        return out

    def _offsets(self, tps: list[TopicPartition], spec: Any) -> dict[tuple[str, int], int]:
        futures = self._admin_client().list_offsets(
            {tp: spec() for tp in tps}, request_timeout=self._timeout_s
        )
        return {tp_key(tp): f.result(timeout=self._timeout_s).offset for tp, f in futures.items()}

    def committed(self, group: str, stream: str, partitions: int) -> dict[int, int]:
        """The group's committed position in each partition of ``stream`` that has one."""
        tps = [TopicPartition(topic_name(stream), p) for p in range(partitions)]
        return {p: o for (_t, p), o in self._committed(group, tps).items()}

    def _committed(self, group: str, tps: list[TopicPartition]) -> dict[tuple[str, int], int]:
        request = [ConsumerGroupTopicPartitions(group, tps)]
        futures = self._admin_client().list_consumer_group_offsets(
            request, request_timeout=self._timeout_s
        )
        got = futures[group].result(timeout=self._timeout_s)
        return {tp_key(tp): tp.offset for tp in got.topic_partitions if tp.offset >= 0}

    def _first_timestamp(self, starts: dict[tuple[str, int], int]) -> tuple[int, int] | None:
        """The oldest timestamp among the first uncommitted record of each partition."""
        with self._lock:
            if self._probe is None:
                self._probe = Consumer(
                    {
                        "bootstrap.servers": self._bootstrap,
                        "group.id": "skyhive-lag-probe",  # required by the client; never joined
                        "enable.auto.commit": False,
                        "logger": KAFKA_LOG,
                    }
                )
            self._probe.assign([TopicPartition(t, p, o) for (t, p), o in starts.items()])
            first: dict[tuple[str, int], int] = {}
            deadline = time.monotonic() + self._timeout_s
            while len(first) < len(starts) and time.monotonic() < deadline:
                for msg in self._probe.consume(num_messages=500, timeout=0.1):
                    if msg.error() is None:
                        first.setdefault((msg.topic(), msg.partition()), msg.timestamp()[1])
            self._probe.unassign()
        return (min(first.values()), 0) if first else None

    def close(self) -> None:
        with self._lock:
            if self._probe is not None:
                self._probe.close()
                self._probe = None


def tp_key(tp: TopicPartition) -> tuple[str, int]:
    return tp.topic, tp.partition
