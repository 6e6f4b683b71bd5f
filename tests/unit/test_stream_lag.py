"""Reading a group's lag from ``XINFO STREAM FULL`` replies (Redis 6.2 and 7 shapes)."""

from __future__ import annotations

from typing import Any

from skyhive.adapters.stream_lag import group_lag


def info(length: int, first: str, last: str, *groups: dict[bytes, Any]) -> dict[bytes, Any]:
    return {
        b"length": length,
        b"last-generated-id": last.encode(),
        b"entries": [[first.encode(), [b"k", b"d"]]],
        b"groups": list(groups),
    }


def group(delivered: str, pending: list[str], **extra: Any) -> dict[bytes, Any]:
    g = {
        b"name": b"g",
        b"last-delivered-id": delivered.encode(),
        b"pel-count": len(pending),
        b"pending": [[p.encode(), b"c", 0, 1] for p in pending[:1]],
    }
    return g | {k.encode(): v for k, v in extra.items()}


def test_caught_up_group_has_nothing_undelivered_and_keeps_nothing_before_its_next_id() -> None:
    g = group("2000-4", [])
    lag = group_lag("s", info(100, "1000-0", "2000-4", g), g)
    assert (lag.pending, lag.undelivered, lag.exact) == (0, 0, True)
    assert lag.keep_from == (2000, 5) and lag.oldest_unacked is None


def test_pending_entries_are_the_oldest_unacknowledged() -> None:
    g = group("1500-0", ["1200-3", "1300-0"])
    lag = group_lag("s", info(100, "1000-0", "2000-0", g), g)
    assert lag.pending == 2 and lag.keep_from == lag.oldest_unacked == (1200, 3)
    assert lag.age_s(now_ms=3200) == 2.0


def test_group_that_read_nothing_left_has_the_whole_stream_undelivered() -> None:
    g = group("0-0", [])
    lag = group_lag("s", info(100, "1000-0", "2000-0", g), g)
    assert (lag.undelivered, lag.exact, lag.keep_from) == (100, True, (0, 1))


def test_redis_6_interpolates_on_the_ids_clock() -> None:
    g = group("1750-0", [])  # three quarters of the way through a steadily written stream
    lag = group_lag("s", info(1000, "1000-0", "2000-0", g), g)
    assert (lag.undelivered, lag.exact) == (250, False)


def test_redis_7_lag_is_taken_as_is() -> None:
    g = group("1750-0", ["1700-0"], lag=123, **{"entries-read": 877})
    lag = group_lag("s", info(1000, "1000-0", "2000-0", g), g)
    assert (lag.pending, lag.undelivered, lag.unacked, lag.exact) == (1, 123, 124, True)
