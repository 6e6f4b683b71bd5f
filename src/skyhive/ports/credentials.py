"""The MQTT credentials port: hashed passwords of drones and services
(``adapters/credentials_repo.py``, MongoDB; brokers read the same records)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal["drone", "service"]


@dataclass(frozen=True, slots=True)
class Credential:
    username: str
    kind: Kind
    password_hash: str | None  # None: revoked
    changed_ms: int  # wall clock of the writer, ms; brokers poll on it
    source: str  # who issued it: "operator", "simulator", "up"
    service: str | None = None

    @property
    def active(self) -> bool:
        return self.password_hash is not None


@dataclass(frozen=True, slots=True)
class NewCredential:
    username: str
    kind: Kind
    password_hash: str
    source: str
    service: str | None = None


class CredentialStore(Protocol):
    def get(self, username: str) -> Credential | None: ...

    def get_many(self, usernames: Sequence[str]) -> dict[str, Credential]: ...

    def put_many(self, creds: Iterable[NewCredential]) -> int:
        """Create or replace these credentials (a rotation); returns how many were written."""

    def revoke(self, username: str) -> bool:
        """Withdraw a password; True if there was one."""

    def active(self) -> list[Credential]: ...


class DeviceCheck(Protocol):
    def verify(self, username: str, password: str) -> bool:
        """True when ``username`` is a drone and ``password`` its current password."""
