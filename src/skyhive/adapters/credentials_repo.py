"""MQTT credentials in MongoDB ``mqtt_credentials``: one document per username (a drone or a
SkyHive service) holding only the password's hash, in Mosquitto's format.

A separate collection rather than a field of ``drones``: the broker, HTTP ingest and the
Mosquitto generator read one small collection, and no registry read (or API serializer) ever
carries a hash. Revocation keeps the document with ``password_hash: None`` and a new
``changed_ms``, so brokers polling for changes see it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pymongo import UpdateOne
from pymongo.database import Database

from skyhive.adapters.mongo import Document, collection
from skyhive.domain.device_access import is_drone_username, verify_password
from skyhive.ports.clock import Clock
from skyhive.ports.credentials import Credential, NewCredential

COLLECTION = "mqtt_credentials"


def _credential(doc: dict[str, Any]) -> Credential:
    return Credential(
        username=str(doc["_id"]),
        kind="service" if doc.get("kind") == "service" else "drone",
        password_hash=doc.get("password_hash") or None,
        changed_ms=int(doc.get("changed_ms", 0)),
        source=str(doc.get("source", "")),
        service=doc.get("service"),
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class CredentialsRepo:
    def __init__(self, db: Database[Document]) -> None:
        self._c = collection(db, COLLECTION)

    def get(self, username: str) -> Credential | None:
        doc = self._c.find_one({"_id": username})
        return _credential(doc) if doc else None

    def get_many(self, usernames: Sequence[str]) -> dict[str, Credential]:
        if not usernames:
            return {}
        docs = self._c.find({"_id": {"$in": list(usernames)}})
        return {str(d["_id"]): _credential(d) for d in docs}

    def put_many(self, creds: Iterable[NewCredential]) -> int:
        """Create or replace these credentials (a rotation); returns how many were written."""
        ms = now_ms()
        ops = [
            UpdateOne(
                {"_id": c.username},
                {
                    "$set": {
                        "kind": c.kind,
                        "password_hash": c.password_hash,
                        "source": c.source,
                        "service": c.service,
                        "changed_ms": ms,
                    }
                },
                upsert=True,
            )
            for c in creds
        ]
        if not ops:
            return 0
        self._c.bulk_write(ops, ordered=False)
        return len(ops)

    def revoke(self, username: str) -> bool:
        """Withdraw a password; True if there was one."""
        res = self._c.update_one(
            {"_id": username, "password_hash": {"$ne": None}},
            {"$set": {"password_hash": None, "changed_ms": now_ms()}},
        )
        return res.modified_count > 0

    def changed_since(self, ms: int) -> list[Credential]:
        return [_credential(d) for d in self._c.find({"changed_ms": {"$gte": ms}})]

    def active(self) -> list[Credential]:
        docs = self._c.find({"password_hash": {"$ne": None}}).sort("_id", 1)
        return [c for c in map(_credential, docs) if c.active]


class DeviceVerifier:
    """Checks a drone's password for HTTP ingest, cheaply enough per request (thread-safe):
    the stored hash is cached for ``ttl_s`` and a successful check for that hash is
    remembered, so the PBKDF2 runs once per password and rotation, and a rotation or
    revocation takes effect within ``ttl_s``."""

    MAX_ENTRIES = 50_000

    def __init__(
        self,
        repo: CredentialsRepo,
        ttl_s: float,
        clock: Clock,
    ) -> None:
        self._repo = repo
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._hashes: dict[str, tuple[float, str | None]] = {}  # username → (read at, hash)
        self._verified: set[tuple[str, str, bytes]] = set()  # (username, hash, sha256(pw))

    def _stored_hash(self, username: str) -> str | None:
        now = self._clock.monotonic()
        with self._lock:
            cached = self._hashes.get(username)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        cred = self._repo.get(username)
        value = cred.password_hash if cred is not None and cred.kind == "drone" else None
        with self._lock:
            if len(self._hashes) >= self.MAX_ENTRIES:
                self._hashes.clear()
            self._hashes[username] = (now, value)
        return value

    def verify(self, username: str, password: str) -> bool:
        if not username or not password or not is_drone_username(username):
            return False
        stored = self._stored_hash(username)
        if stored is None:
            return False
        key = (username, stored, hashlib.sha256(password.encode()).digest())
        with self._lock:
            if key in self._verified:
                return True
        if not verify_password(password, stored):
            return False
        with self._lock:
            if len(self._verified) >= self.MAX_ENTRIES:
                self._verified.clear()
            self._verified.add(key)
        return True
