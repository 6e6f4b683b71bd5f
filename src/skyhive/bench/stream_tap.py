"""Watching bus streams while a benchmark runs: entries appended per stream, and when a key's
first entry was appended. Read live (XREAD from the end), because streams are trimmed as soon as
every consumer group has acknowledged them, so nothing can be counted or timed afterwards. A
stream split into partitions is watched in all of them, and counted as one. On a Redis Cluster
(its streams in several slots) each stream is read on its own, in one pipeline, polled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis

from skyhive.adapters.partitioned_streams import CLUSTER_POLL_S
from skyhive.adapters.redis_client import connect, is_cluster
from skyhive.adapters.stream_partitions import stream_of


class StreamTap:
    def __init__(
        self,
        redis_url: str,
        streams: list[str],
        watch: Callable[[str], bool],
        partitions: Mapping[str, int] | None = None,
        *,
        cluster: bool = False,
    ) -> None:
        """``partitions``: the streams split into partitions (``Settings.partitioned_streams``);
        ``cluster``: ``redis_url`` names a node of a Redis Cluster."""
        self._r: Any = connect(redis_url, cluster=cluster, decode_responses=True)
        self._whole = stream_of(streams, partitions or {})
        self._ids: dict[str, str] = dict.fromkeys(self._whole, "$")
        self._watch = watch
        self._counts = dict.fromkeys(streams, 0)
        self._first: dict[str, dict[str, float]] = {s: {} for s in streams}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-tap", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            reply = self._read()
            with self._lock:
                for stream, entries in reply:
                    self._counts[self._whole[stream]] += len(entries)
                    first = self._first[self._whole[stream]]
                    for entry_id, fields in entries:
                        key = str(fields.get("k", ""))
                        if self._watch(key) and key not in first:
                            first[key] = int(entry_id.split("-")[0]) / 1000.0  # Redis's clock
                    if entries:
                        self._ids[stream] = entries[-1][0]

    def _read(self) -> list[Any]:
        if not is_cluster(self._r):
            return list(self._r.xread(self._ids, count=5000, block=200) or [])
        pipe = self._r.pipeline(transaction=False)
        for stream, last in self._ids.items():
            pipe.xread({stream: last}, count=5000)
        got = [reply[0] for reply in pipe.execute() if reply]
        if not got:
            time.sleep(CLUSTER_POLL_S)
        return got

    def start(self) -> None:
        # Each stream's end now, as an id: "$" would mean "the end at each call", and a stream
        # with nothing for one XREAD (a partition) would lose what came before the next.
        for stream in self._ids:
            try:
                self._ids[stream] = str(self._r.xinfo_stream(stream)["last-generated-id"])
            except redis.ResponseError:  # not there yet: all it will hold is new
                self._ids[stream] = "0-0"
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._r.close()

    def count(self, stream: str) -> int:
        """Entries appended to ``stream`` since the tap started."""
        with self._lock:
            return self._counts[stream]

    def first_seen(self, stream: str) -> dict[str, float]:
        """Watched key → when its first entry was appended (epoch seconds)."""
        with self._lock:
            return dict(self._first[stream])


@contextmanager
def stream_tap(
    redis_url: str,
    streams: list[str],
    watch: Callable[[str], bool] = lambda _k: False,
    partitions: Mapping[str, int] | None = None,
) -> Iterator[StreamTap]:
    tap = StreamTap(redis_url, streams, watch, partitions)
    tap.start()
    try:
        yield tap
    finally:
        tap.close()


class KafkaTap:
    """:class:`StreamTap`'s count on Kafka-hosted streams: a consumer assigned every partition
    of their topics from the end (it joins no group, commits nothing), counting records."""

    def __init__(self, bootstrap: str, streams: list[str]) -> None:
        from confluent_kafka import Consumer

        from skyhive.adapters.kafka_bus import topic_name

        self._topics = {topic_name(s): s for s in streams}
        self._consumer: Any = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "skyhive-bench-tap"}
        )
        self._counts = dict.fromkeys(streams, 0)
        self._ends: dict[str, dict[int, int]] = {s: {} for s in streams}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-tap", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(num_messages=5000, timeout=0.2):
                if msg.error() is None:
                    stream = self._topics[msg.topic()]
                    with self._lock:
                        self._counts[stream] += 1
                        ends = self._ends[stream]
                        ends[msg.partition()] = max(ends.get(msg.partition(), 0), msg.offset() + 1)

    def ends(self, stream: str) -> dict[int, int]:
        """Per partition, the position after the last record seen: exact, where a broker's
        own watermark may not be (tansu's)."""
        with self._lock:
            return dict(self._ends[stream])

    def start(self) -> None:
        from confluent_kafka import OFFSET_END, TopicPartition

        meta = self._consumer.list_topics(timeout=10).topics
        self._consumer.assign(
            [
                TopicPartition(topic, p, OFFSET_END)
                for topic in self._topics
                for p in meta[topic].partitions
            ]
        )
        self._thread.start()
        time.sleep(0.5)  # positioned at the ends before anything is published

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()

    def count(self, stream: str) -> int:
        with self._lock:
            return self._counts[stream]
