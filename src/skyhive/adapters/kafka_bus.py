"""Bus on Kafka (confluent-kafka): the ``Bus`` port as the Redis Streams adapter gives it, on
a cluster of Kafka brokers. It passes the port's contract suite (test_bus_contract.py); the
roles do not run on it yet (docs/architecture.md, "Kafka").

How the port maps onto Kafka:

- A stream is a topic (``topic_name``: Kafka's names allow no ``:``), created on first use with
  ``partitions`` partitions and ``replication`` replicas. Records are keyed (the
  drone id), so one drone's readings share a partition and stay in order.
- ``publish`` returns only once the brokers acknowledged every record of the batch (an
  idempotent producer, ``acks=all``): the gateway's PUBACK still comes after the reading is
  durably on the bus. A batch not acknowledged within ``timeout_ms`` raises
  :class:`BusUnavailable`, a clear error rather than a hang.
- ``consume``: one Kafka consumer per (stream, group, consumer name) in this process, with
  cooperative-sticky assignment and no automatic commit. A record it returned is pending here
  until acknowledged. ``ack`` commits, per partition, the position after the longest run of
  acknowledged records from the last commit: Kafka commits a position, not single records, so
  a record acknowledged before an earlier one (the archiver's buckets) is committed once the
  earlier one is.
- ``own_pending`` hands back the records this consumer holds unacknowledged.
- ``claim_stale`` finds nothing and ``keep_claimed`` does nothing: Kafka itself gives a dead
  member's partitions to the others once its session times out (``session_timeout_ms``),
  and they read on from the last committed position, so its unacknowledged records come to
  them through ``consume``; a live member keeps its partitions by its heartbeats.
- On a rebalance, the records acknowledged in the partitions taken away are committed and the
  rest forgotten (the new owner reads them again: at least once); partitions lost (the session
  expired) are forgotten with nothing committed.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from skyhive.ports.bus import BusMessage

log = logging.getLogger(__name__)
KAFKA_LOG = logging.getLogger("skyhive.kafka")  # librdkafka's own log lines


class BusUnavailable(RuntimeError):
    """The Kafka brokers did not answer (or acknowledge a batch) in time."""


# The brokers are not there (as against refusing a request).
_UNREACHABLE = frozenset(
    {KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}
)


def topic_name(stream: str) -> str:
    """The Kafka topic of a stream name (``telemetry:urgent`` → ``telemetry.urgent``)."""
    return stream.replace(":", ".")


def _id(partition: int, offset: int) -> str:
    return f"{partition}-{offset}"


def _parse_id(record_id: str) -> tuple[int, int]:
    partition, _, offset = record_id.partition("-")
    return int(partition), int(offset)


@dataclass
class _Member:
    """One consumer of a group in this process, and the records it holds unacknowledged."""

    consumer: Any  # confluent_kafka.Consumer (its stubs do not type the callbacks' use)
    topic: str
    held: dict[int, deque[tuple[int, BusMessage]]] = field(default_factory=dict)
    acked: dict[int, set[int]] = field(default_factory=dict)

    def hold(self, partition: int, offset: int, msg: BusMessage) -> None:
        self.held.setdefault(partition, deque()).append((offset, msg))

    def holds(self, partition: int, offset: int) -> bool:
        queue = self.held.get(partition)
        return bool(queue) and queue[0][0] <= offset <= queue[-1][0]  # type: ignore[index]

    def acknowledge(self, partition: int, offset: int) -> None:
        self.acked.setdefault(partition, set()).add(offset)

    def committable(self, partitions: Sequence[int] | None = None) -> list[TopicPartition]:
        """Pop the acknowledged run at the head of each partition; the positions after them."""
        out = []
        for p in self.held if partitions is None else partitions:
            queue, acked = self.held.get(p), self.acked.get(p, set())
            last = None
            while queue and queue[0][0] in acked:
                last, _ = queue.popleft()
                acked.discard(last)
            if last is not None:
                out.append(TopicPartition(self.topic, p, last + 1))
        return out

    def forget(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            self.held.pop(p, None)
            self.acked.pop(p, None)

    def pending(self, count: int) -> list[BusMessage]:
        out = []
        for p, queue in self.held.items():
            acked = self.acked.get(p, set())
            out += [m for o, m in queue if o not in acked]
        return out[:count]


class KafkaBus:
    def __init__(
        self,
        bootstrap: str,
        *,
        partitions: int = 12,
        replication: int = 1,
        timeout_ms: int = 10_000,
        session_timeout_ms: int = 10_000,
    ) -> None:
        if not bootstrap:
            raise ValueError("SKYHIVE_KAFKA__BOOTSTRAP is not set (host:port of the brokers)")
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._replication = replication
        self._timeout_s = timeout_ms / 1000.0
        self._session_timeout_ms = session_timeout_ms
        self._producer: Any = None  # made on first use: nothing connects at import or wiring
        self._admin: Any = None
        self._topics: set[str] = set()
        self._members: dict[tuple[str, str, str], _Member] = {}
        self._fatal = False  # the producer reported a fatal error: replace it
        self._lock = threading.Lock()  # the producer and admin are shared by threads

    # --- topics -----------------------------------------------------------------------------

    def _admin_client(self) -> Any:
        if self._admin is None:
            config: dict[str, Any] = {"bootstrap.servers": self._bootstrap, "logger": KAFKA_LOG}
            self._admin = AdminClient(config)
        return self._admin

    def _no_answer(self, exc: BaseException) -> BusUnavailable:
        return BusUnavailable(
            f"Kafka at {self._bootstrap} did not answer within {self._timeout_s:.0f} s: {exc}"
        )

    def _ensure_topic(self, stream: str) -> str:
        topic = topic_name(stream)
        if topic in self._topics:
            return topic
        new = NewTopic(topic, num_partitions=self._partitions, replication_factor=self._replication)
        future = self._admin_client().create_topics([new], request_timeout=self._timeout_s)[topic]
        try:
            future.result(timeout=self._timeout_s)
            log.info("created Kafka topic %s (%d partitions)", topic, self._partitions)
        except KafkaException as exc:
            code = exc.args[0].code()
            if code in _UNREACHABLE:
                raise self._no_answer(exc) from exc
            if code != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BusUnavailable(f"could not create Kafka topic {topic}: {exc}") from exc
            self._check_partitions(topic)
        except TimeoutError as exc:  # concurrent.futures' in 3.11
            raise self._no_answer(exc) from exc
        self._topics.add(topic)
        return topic

    def _check_partitions(self, topic: str) -> None:
        """A topic made earlier keeps its partition count whatever is configured now: say so
        (adding partitions would move drones to other partitions, out of order)."""
        meta = self._admin_client().list_topics(topic, timeout=self._timeout_s).topics.get(topic)
        have = len(meta.partitions) if meta is not None else self._partitions
        if have != self._partitions:
            log.warning(
                "Kafka topic %s has %d partitions; SKYHIVE_BUS_PARTITIONS=%d applies only to "
                "topics made from now on (a drone's order holds within one partition, so "
                "SkyHive does not add any)",
                topic, have, self._partitions,
            )  # fmt: skip

    # --- producing ----------------------------------------------------------------------------

    def publish(self, stream: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        if not items:
            return []
        topic = self._ensure_topic(stream)
        results: list[tuple[int, int] | KafkaError | None] = [None] * len(items)

        def delivered(index: int) -> Any:
            def report(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    results[index] = err  # the message's fields are not to be read then
                    return
                partition, offset = msg.partition(), msg.offset()
                if partition is not None and offset is not None:
                    results[index] = (partition, offset)

            return report

        try:
            with self._lock:
                producer = self._producer_client()
                for i, (key, value) in enumerate(items):
                    self._produce(producer, topic, key, value, delivered(i))
                left = producer.flush(self._timeout_s)
        except KafkaException as exc:
            self._failed(topic, [exc.args[0]])
            raise BusUnavailable(f"Kafka at {self._bootstrap} refused {topic}: {exc}") from exc
        failed = [r for r in results if not isinstance(r, tuple)]
        if left or failed:
            self._failed(topic, failed)
            why = failed[0] if failed and failed[0] is not None else "no acknowledgement"
            raise BusUnavailable(
                f"Kafka at {self._bootstrap} did not acknowledge {len(failed)} of {len(items)} "
                f"records on {topic} within {self._timeout_s:.0f} s: {why}"
            )
        return [_id(*r) for r in results if isinstance(r, tuple)]

    def _failed(self, topic: str, errors: Sequence[KafkaError | None]) -> None:
        """After a batch failed: a producer that failed fatally is replaced (an idempotent
        producer whose identity the brokers forgot, or that was fenced, cannot go on without
        risking duplicates), and the topic is looked for again (it may be gone)."""
        fatal = self._fatal or any(e is not None and e.fatal() for e in errors)
        fatal = fatal or any(e is not None and e.code() == KafkaError._FATAL for e in errors)
        if fatal:
            log.warning("the Kafka producer failed fatally; a new one takes over")
            with self._lock:
                self._producer, self._fatal = None, False
        self._topics.discard(topic)

    def _producer_client(self) -> Any:
        if self._producer is None:
            self._producer = Producer(
                {
                    "bootstrap.servers": self._bootstrap,
                    "enable.idempotence": True,  # acks=all, ordered retries, no duplicates
                    "acks": "all",
                    "linger.ms": 2,
                    "message.timeout.ms": int(self._timeout_s * 1000),
                    "error_cb": self._on_error,
                    "logger": KAFKA_LOG,
                }
            )
        return self._producer

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = True

    def _produce(self, producer: Any, topic: str, key: str, value: bytes, report: Any) -> None:
        while True:
            try:
                producer.produce(topic, value=value, key=key.encode(), on_delivery=report)
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)

    # --- consuming ----------------------------------------------------------------------------

    def ensure_group(self, stream: str, group: str) -> None:
        """The topic; a Kafka group exists once a member joins, reading from the start of
        the log (``auto.offset.reset=earliest``) when it has no committed position."""
        self._ensure_topic(stream)

    def _member(self, stream: str, group: str, consumer: str) -> _Member:
        key = (stream, group, consumer)
        member = self._members.get(key)
        if member is None:
            topic = self._ensure_topic(stream)
            client = Consumer(
                {
                    "bootstrap.servers": self._bootstrap,
                    "logger": KAFKA_LOG,
                    "group.id": group,
                    "client.id": consumer,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "partition.assignment.strategy": "cooperative-sticky",
                    "session.timeout.ms": self._session_timeout_ms,
                    "heartbeat.interval.ms": max(100, self._session_timeout_ms // 5),
                }
            )
            member = _Member(client, topic)

            def revoked(c: Any, parts: list[TopicPartition]) -> None:
                ours = [tp.partition for tp in parts]
                done = member.committable(ours)
                if done:
                    c.commit(offsets=done, asynchronous=False)
                member.forget(ours)

            def lost(_c: Any, parts: list[TopicPartition]) -> None:
                member.forget([tp.partition for tp in parts])

            client.subscribe([topic], on_revoke=revoked, on_lost=lost)
            self._members[key] = member
        return member

    def consume(
        self,
        stream: str,
        group: str,
        consumer: str,
        count: int,
        block_ms: int,
        *,
        own_pending: bool = False,
    ) -> list[BusMessage]:
        member = self._member(stream, group, consumer)
        if own_pending:
            return member.pending(count)
        # As XREADGROUP BLOCK does: wait for the first record only, then take what is already
        # fetched (consume(count, timeout) would wait for ``count`` records or the timeout:
        # a batch's latency at low rates).
        records = member.consumer.consume(num_messages=1, timeout=max(0, block_ms) / 1000.0)
        if records and count > 1:
            records += member.consumer.consume(num_messages=count - 1, timeout=0)
        out = []
        for r in records:
            err = r.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise BusUnavailable(f"reading {member.topic} for group {group}: {err}")
            key = r.key()
            msg = BusMessage(_id(r.partition(), r.offset()), key.decode() if key else "", r.value())
            member.hold(r.partition(), r.offset(), msg)
            out.append(msg)
        return out

    def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[BusMessage]:
        return []  # Kafka reassigns a dead member's partitions itself (module docstring)

    def keep_claimed(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> None:
        return None  # a live member keeps its partitions by its heartbeats

    def ack(self, stream: str, group: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        members = [m for (s, g, _), m in self._members.items() if s == stream and g == group]
        touched: dict[int, list[int]] = {}
        for record_id in ids:
            partition, offset = _parse_id(record_id)
            for i, member in enumerate(members):
                if member.holds(partition, offset):
                    member.acknowledge(partition, offset)
                    touched.setdefault(i, []).append(partition)
                    break  # a record no one holds was revoked meanwhile: its new owner has it
        for i, partitions in touched.items():
            member = members[i]
            done = member.committable(sorted(set(partitions)))
            if done:
                member.consumer.commit(offsets=done, asynchronous=False)

    def ping(self) -> bool:
        try:
            with self._lock:
                self._producer_client().list_topics(timeout=min(self._timeout_s, 2.0))
        except KafkaException:
            return False
        return True

    def close(self) -> None:
        """Leave every group (committing what is acknowledged) and flush the producer."""
        for member in self._members.values():
            done = member.committable()
            try:
                if done:
                    member.consumer.commit(offsets=done, asynchronous=False)
            finally:
                member.consumer.close()
        self._members.clear()
        if self._producer is not None:
            self._producer.flush(self._timeout_s)
