"""Dead-letter stream: every rejected message with its reason and raw payload."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from skyhive.adapters.redis_client import RedisClient
from skyhive.ports.deadletters import DeadLetter

RAW_KEEP_BYTES = 4096  # keep enough of an oversize payload to diagnose it, not all of it


class DeadLetters:
    def __init__(self, client: RedisClient, stream: str, maxlen: int) -> None:
        self._r: Any = client  # redis-py's response types are too loose to be useful here
        self._stream = stream
        self._maxlen = maxlen

    def queue_add(self, pipe: Any, letters: Sequence[DeadLetter]) -> None:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for d in letters:
            pipe.xadd(
                self._stream,
                {
                    "reason": d.reason.encode(),
                    "raw": d.raw[:RAW_KEEP_BYTES],
                    "raw_bytes": str(len(d.raw)).encode(),
                    "source": d.source.encode(),
                    "received_at": now.encode(),
                },
                maxlen=self._maxlen,
                approximate=True,
            )

    def add(self, letters: Sequence[DeadLetter]) -> None:
        if letters:
            pipe = self._r.pipeline(transaction=False)
            self.queue_add(pipe, letters)
            pipe.execute()

    def list(self, limit: int = 100, before: str | None = None) -> list[dict[str, Any]]:
        """Newest first. ``before`` is an entry id, for paging back."""
        end = f"({before}" if before else "+"
        entries = self._r.xrevrange(self._stream, max=end, min="-", count=limit)
        out = []
        for entry_id, f in entries:
            raw: bytes = f.get(b"raw", b"")
            out.append(
                {
                    "id": entry_id.decode(),
                    "reason": f.get(b"reason", b"").decode(errors="replace"),
                    "source": f.get(b"source", b"").decode(errors="replace"),
                    "received_at": f.get(b"received_at", b"").decode(),
                    "raw": raw.decode(errors="replace"),
                    "raw_bytes": int(f.get(b"raw_bytes", b"0")),
                }
            )
        return out

    def count(self) -> int:
        return int(self._r.xlen(self._stream))
