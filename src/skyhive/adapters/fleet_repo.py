"""Fleet registry in MongoDB ``drones``; the set of registered ids is mirrored in Redis
(``fleet:registered``) so the processor can flag unregistered drones without a query."""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence
from typing import Any

from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from skyhive.adapters.mongo import Document, collection
from skyhive.domain.fleet import DroneSpec, DroneSpecPatch
from skyhive.ports.mavlink import MavlinkVehicle

REGISTERED = "fleet:registered"
ANY_LINK = "any"
MAX_PAYLOAD_TTL_S = 10.0


class DuplicateDrone(Exception):
    pass


class DuplicateMavlinkId(ValueError):
    """Another drone has this MAVLink system id on the same link (or on "any")."""


class FleetRepo:
    def __init__(self, db: Database[Document], redis_text: Any) -> None:
        self._c = collection(db, "drones")
        self._r = redis_text
        self._max_payload: tuple[float, float] | None = None

    def register(self, spec: DroneSpec) -> None:
        self._check_mavlink(spec.drone_id, spec.mavlink_sysid, spec.mavlink_link)
        try:
            self._c.insert_one(spec.to_document())
        except DuplicateKeyError:
            raise DuplicateDrone(spec.drone_id) from None
        self._r.sadd(REGISTERED, spec.drone_id)
        self._max_payload = None

    def ensure_registered(self, specs: Sequence[DroneSpec]) -> int:
        """Register the drones not yet known (an operator's edits to known ones are kept)."""
        if not specs:
            return 0
        ops = []
        for spec in specs:
            doc = spec.to_document()
            ops.append(UpdateOne({"_id": doc.pop("_id")}, {"$setOnInsert": doc}, upsert=True))
        res = self._c.bulk_write(ops, ordered=False)
        self._r.sadd(REGISTERED, *[s.drone_id for s in specs])
        self._max_payload = None
        return int(res.upserted_count)

    def get(self, drone_id: str) -> DroneSpec | None:
        doc = self._c.find_one({"_id": drone_id})
        return DroneSpec.from_document(doc) if doc else None

    def list(self, status: str | None = None, limit: int = 1000) -> list[DroneSpec]:
        query = {"status": status} if status else {}
        return [DroneSpec.from_document(d) for d in self._c.find(query).sort("_id", 1).limit(limit)]

    def specs(self, drone_ids: Sequence[str]) -> dict[str, DroneSpec]:
        if not drone_ids:
            return {}
        docs = self._c.find({"_id": {"$in": list(drone_ids)}})
        return {str(d["_id"]): DroneSpec.from_document(d) for d in docs}

    def update(self, drone_id: str, patch: DroneSpecPatch) -> DroneSpec | None:
        changes = patch.model_dump(exclude_none=True)
        if "mavlink_sysid" in changes or "mavlink_link" in changes:
            current = self.get(drone_id)
            if current is not None:
                sysid = patch.mavlink_sysid or current.mavlink_sysid
                self._check_mavlink(drone_id, sysid, patch.mavlink_link or current.mavlink_link)
        if changes:
            self._c.update_one({"_id": drone_id}, {"$set": changes})
            self._max_payload = None
        return self.get(drone_id)

    def _check_mavlink(self, drone_id: str, sysid: int | None, link: str | None) -> None:
        """(link, sysid) → drone is one to one; "any" (or no link) overlaps every link.
        Checked before the write, so two registrations racing for one id could both pass."""
        if sysid is None:
            return
        mine = link or ANY_LINK
        for doc in self._c.find({"mavlink_sysid": sysid}, {"mavlink_link": 1}):
            other = doc.get("mavlink_link") or ANY_LINK
            if doc["_id"] != drone_id and (ANY_LINK in (mine, other) or mine == other):
                raise DuplicateMavlinkId(
                    f"MAVLink system id {sysid} on link {other} is already drone {doc['_id']}"
                )

    def mavlink_vehicles(self) -> builtins.list[MavlinkVehicle]:
        """Every drone with a MAVLink system id (the gateway's mapping)."""
        fields = {"mavlink_sysid": 1, "mavlink_link": 1, "mavlink_signing_key": 1}
        return [
            MavlinkVehicle(
                str(d["_id"]),
                d.get("mavlink_link") or ANY_LINK,
                int(d["mavlink_sysid"]),
                bytes.fromhex(d["mavlink_signing_key"]) if d.get("mavlink_signing_key") else None,
            )
            for d in self._c.find({"mavlink_sysid": {"$gte": 1}}, fields)
        ]

    def max_payload_kg(self) -> float:
        """The heaviest package any active drone can lift (0 with no fleet); cached for
        ``MAX_PAYLOAD_TTL_S``, since every order asks and the fleet rarely changes."""
        now = time.monotonic()
        if self._max_payload is None or now - self._max_payload[0] > MAX_PAYLOAD_TTL_S:
            docs = self._c.find({"status": "active"}, {"max_payload_kg": 1})
            value = max((float(d.get("max_payload_kg", 0)) for d in docs), default=0.0)
            self._max_payload = (now, value)
        return self._max_payload[1]

    def registered(self, drone_ids: Sequence[str]) -> dict[str, bool]:
        ids = list(drone_ids)
        if not ids:
            return {}
        return dict(zip(ids, map(bool, self._r.smismember(REGISTERED, ids)), strict=True))

    def registered_ids(self) -> set[str]:
        return {str(x) for x in self._r.smembers(REGISTERED)}

    def sync_registered_set(self) -> None:
        """Rebuild the Redis mirror from MongoDB (at start-up: Redis may be new)."""
        ids = [str(d["_id"]) for d in self._c.find({}, {"_id": 1})]
        if ids:
            self._r.sadd(REGISTERED, *ids)
