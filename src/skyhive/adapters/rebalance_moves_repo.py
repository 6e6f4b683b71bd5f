"""The rebalancing moves (MongoDB ``rebalance_moves``): each drone sent to another station,
when and why, for the API and the dashboard, and the cooldown (a drone moved recently stays
where it was sent)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import DESCENDING, UpdateOne
from pymongo.database import Database

from skyhive.adapters.mongo import Document, collection, restore_datetimes
from skyhive.domain.rebalance import Move

COLLECTION = "rebalance_moves"


class RebalanceMovesRepo:
    def __init__(self, db: Database[Document]) -> None:
        self._c = collection(db, COLLECTION)

    def record(self, moves: Sequence[Move], at: datetime) -> None:
        """Idempotent: a move is its drone and its time."""
        ops = [
            UpdateOne(
                {"_id": f"{m.drone_id}:{int(at.timestamp() * 1000)}"},
                {
                    "$setOnInsert": {
                        "at": at,
                        "drone_id": m.drone_id,
                        "from_station": m.from_station,
                        "to_station": m.to_station,
                        "km": m.km,
                        "reason": m.reason,
                    }
                },
                upsert=True,
            )
            for m in moves
        ]
        if ops:
            self._c.bulk_write(ops, ordered=False)

    def since(self, at: datetime, limit: int = 1000) -> list[Document]:
        """Moves made at or after ``at``, newest first."""
        docs = self._c.find({"at": {"$gte": at}}).sort("at", DESCENDING).limit(limit)
        return [restore_datetimes(d, ("at",)) for d in docs]
