"""Partitions of a bus stream: which one a key's records go to, and how many each member of a
consumer group takes.

A key (a drone id) always goes to the same partition, computed the same by every process
(CRC-32, not Python's salted ``hash``), so one member at a time reads a drone's records, in
order. The members split the partitions as evenly as it goes, every member computing its own
share from the same list of live members, so no coordinator is needed: the ``P mod n``
first by name take one more.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Iterable


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


def fair_share(partitions: int, members: Collection[str], me: str) -> int:
    """How many of ``partitions`` the member ``me`` should hold among the live ``members``
    (``me`` counted even when missing from them)."""
    live = sorted({*members, me})
    whole, extra = divmod(partitions, len(live))
    return whole + (1 if live.index(me) < extra else 0)


def over_share(held: Iterable[int], share: int) -> list[int]:
    """The partitions to give back when holding more than ``share``: the highest numbered
    (any choice works; a stable one keeps members from trading partitions back and forth)."""
    return sorted(held)[share:]
