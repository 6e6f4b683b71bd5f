"""Who may do what: roles, the principals that hold them, and API key secrets.

Pure rules, no I/O. Staff roles are ranked (an operator can do what a viewer can, an admin
what an operator can); ``customer`` is outside that ladder: a customer key reaches only the
operations declared for customers, and only that customer's own records.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"
    customer = "customer"
    drone = "drone"  # never a key's role: a drone authenticated by its own credential


KEY_ROLES = (Role.viewer, Role.operator, Role.admin, Role.customer)
STAFF_RANK = {Role.viewer: 1, Role.operator: 2, Role.admin: 3}


@dataclass(frozen=True, slots=True)
class Access:
    """What an operation requires: the least staff role (None: no staff key at all), whether
    a customer key may call it for its own records, and whether a drone may, with its own
    credential, for its own readings."""

    role: Role | None
    customer: bool = False
    device: bool = False
    public: bool = False

    def allows(self, principal: Principal) -> bool:
        if self.public:
            return True
        if principal.role is Role.customer:
            return self.customer
        if principal.role is Role.drone:
            return self.device
        return self.role is not None and STAFF_RANK[principal.role] >= STAFF_RANK[self.role]

    @property
    def label(self) -> str:
        """How the OpenAPI document names it (``x-skyhive-role``)."""
        if self.public:
            return "public"
        parts = [self.role.value] if self.role else []
        if self.customer:
            parts.append("own-customer")
        if self.device:
            parts.append("own-drone")
        return "+".join(parts)


PUBLIC = Access(role=None, public=True)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an API key (a person or a script) or a drone."""

    key_id: str
    name: str
    role: Role
    customer_id: str | None = None

    @property
    def is_customer(self) -> bool:
        return self.role is Role.customer


# A key reads ``shk_<id>_<secret>``: the id finds the record, the secret is checked against
# its hash. 32 random bytes make a fast hash (SHA-256) as safe as a slow one: there is no
# dictionary to guess from, and every request pays the check.
KEY_PREFIX = "shk"
_KEY_RE = re.compile(r"^shk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    secret: str  # the whole key as the client sends it; shown once, never stored

    @property
    def hash(self) -> str:
        return hash_secret(self.secret)


def new_key() -> NewKey:
    key_id = secrets.token_hex(6)
    return NewKey(key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_id_of(secret: str) -> str | None:
    """The id inside a well-formed key, else None (a malformed key is never looked up)."""
    m = _KEY_RE.fullmatch(secret)
    return m.group(1) if m else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


_DURATION_RE = re.compile(r"^(\d{1,5})([hdw])$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``2w``: how long a key lives."""
    m = _DURATION_RE.fullmatch(text.strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"expected a duration like 90d, 12h or 2w, got {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2)]


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and now >= expires_at
