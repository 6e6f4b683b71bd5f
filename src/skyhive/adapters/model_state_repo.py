"""Stream models' per-drone memory in MongoDB ``model_state`` (the ``ModelStates`` port): one
document per model and drone, ``_id`` ``<model>:<drone>``, replaced at each save, so a
restarted ``models`` role takes up each drone's baseline where it was left."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pymongo import ReplaceOne
from pymongo.database import Database

from skyhive.adapters.mongo import Document, collection
from skyhive.ports.stream_model import SavedDrone

# Documents per request: the embedded server runs one request at a time, and a long one
# holds alerts and deliveries behind it (the archiver's reason for the same size).
CHUNK = 500


def state_id(model: str, drone_id: str) -> str:
    return f"{model}:{drone_id}"


class ModelStateRepo:
    def __init__(self, db: Database[Document]) -> None:
        self._c = collection(db, "model_state")

    def load(self, model: str, drone_ids: Sequence[str]) -> dict[str, SavedDrone]:
        if not drone_ids:
            return {}
        ids = [state_id(model, d) for d in drone_ids]
        out = {}
        for doc in self._c.find({"_id": {"$in": ids}}):
            out[str(doc["drone_id"])] = SavedDrone(
                (int(doc["seen_ts_ms"]), int(doc["seen_seq"])), doc.get("state")
            )
        return out

    def save(self, model: str, drones: Mapping[str, SavedDrone], at: datetime) -> None:
        ops = [
            ReplaceOne(
                {"_id": state_id(model, drone_id)},
                {
                    # Repeated in the document: the embedded server's upsert by replacement
                    # takes no _id from the filter (it made an ObjectId); MongoDB takes either.
                    "_id": state_id(model, drone_id),
                    "model": model,
                    "drone_id": drone_id,
                    "seen_ts_ms": saved.seen[0],
                    "seen_seq": saved.seen[1],
                    "state": saved.state,
                    "saved_at": at,
                },
                upsert=True,
            )
            for drone_id, saved in drones.items()
        ]
        for i in range(0, len(ops), CHUNK):
            self._c.bulk_write(ops[i : i + CHUNK], ordered=False)
