"""Geofences in MongoDB ``geofences`` (``_id`` is the zone id, the GeoJSON stored as given).

Every write bumps the Redis counter ``geofences:version``, so a cache of the zones (the
processor's, checked on every reading) re-reads MongoDB only after a change. The counter is
bumped after the write, so a reader that sees the new version also sees the new zones.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from skyhive.adapters.mongo import Document, collection, restore_datetimes
from skyhive.domain.geofence import Geofence, GeofenceSpec

log = logging.getLogger(__name__)

VERSION_KEY = "geofences:version"
DATE_FIELDS = ("active_from", "active_until", "created_at", "updated_at")


class DuplicateGeofence(Exception):
    pass


def new_id() -> str:
    return f"gf-{secrets.token_hex(8)}"


def _load(doc: Document) -> Geofence | None:
    """A stored zone, or None (logged) for one that no longer validates (edited by hand, or
    stored by an older version): one bad zone must not take the others down with it."""
    try:
        return Geofence.from_document(restore_datetimes(doc, DATE_FIELDS))
    except ValidationError as exc:
        log.warning("geofence %r is invalid and ignored: %s", doc.get("_id"), exc)
        return None


class GeofencesRepo:
    def __init__(self, db: Database[Document], redis_text: Any) -> None:
        self._c = collection(db, "geofences")
        self._r = redis_text

    def _bump(self) -> None:
        self._r.incr(VERSION_KEY)

    def version(self) -> int:
        """The change counter; 0 before the first write (or after Redis lost it)."""
        raw = self._r.get(VERSION_KEY)
        return int(raw) if raw is not None else 0

    def create(self, spec: GeofenceSpec, now: datetime | None = None) -> Geofence:
        """Insert a new zone under ``spec.id`` or a generated ``gf-…`` id."""
        now = now or datetime.now(UTC)
        zone = Geofence.from_spec(spec, spec.id or new_id(), created_at=now, now=now)
        try:
            self._c.insert_one(zone.to_document())
        except DuplicateKeyError:
            raise DuplicateGeofence(zone.id) from None
        self._bump()
        return zone

    def get(self, geofence_id: str) -> Geofence | None:
        doc = self._c.find_one({"_id": geofence_id})
        return _load(doc) if doc is not None else None

    def all(self) -> list[Geofence]:
        """Every zone, by id."""
        zones = (_load(d) for d in self._c.find().sort("_id", 1))
        return [z for z in zones if z is not None]

    def all_enabled(self) -> list[Geofence]:
        zones = (_load(d) for d in self._c.find({"enabled": True}).sort("_id", 1))
        return [z for z in zones if z is not None and z.enabled]

    def replace(
        self, geofence_id: str, spec: GeofenceSpec, now: datetime | None = None
    ) -> Geofence | None:
        """Replace the whole zone, keeping its id and ``created_at``; None if there is none.

        A whole-document replace, not ``$set``: the embedded server would store the dates
        ``$set`` writes as text."""
        current = self.get(geofence_id)
        if current is None:
            return None
        zone = Geofence.from_spec(
            spec, geofence_id, created_at=current.created_at, now=now or datetime.now(UTC)
        )
        res = self._c.replace_one({"_id": geofence_id}, zone.to_document())
        if res.matched_count == 0:  # deleted between the read and the write
            return None
        self._bump()
        return zone

    def delete(self, geofence_id: str) -> bool:
        deleted = self._c.delete_one({"_id": geofence_id}).deleted_count == 1
        if deleted:
            self._bump()
        return deleted
