"""API keys for people and scripts: create (the key is shown once), list, revoke, check.

Used by the CLI (`skyhive keys ...`), the API (`/api/v1/keys`) and the authentication of
every request. The first start of `skyhive up` makes an admin key and leaves it, readable by
its owner only, in ``<data-dir>/admin-api-key``.
"""

from __future__ import annotations

import getpass
import logging
import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from skyhive.domain.access import (
    Principal,
    Role,
    is_expired,
    key_id_of,
    new_key,
    secret_matches,
)
from skyhive.ports.api_keys import ApiKeyStore
from skyhive.ports.audit import AuditLog
from skyhive.ports.clock import Clock
from skyhive.ports.customers import CustomerDirectory
from skyhive.settings import Settings

log = logging.getLogger(__name__)

Document = dict[str, Any]


class KeyPorts(Protocol):
    """What key management needs (the composition root's ``Clients`` provides it)."""

    @property
    def api_keys(self) -> ApiKeyStore: ...
    @property
    def customers(self) -> CustomerDirectory: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def settings(self) -> Settings: ...


ADMIN_KEY_FILE = "admin-api-key"
DEMO_KEY_FILE = "demo-operator-api-key"


class KeyRejected(ValueError):
    """A key request that breaks a rule (e.g. a customer key without its customer)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def create_key(
    clients: KeyPorts,
    name: str,
    role: Role,
    customer_id: str | None = None,
    expires_in: timedelta | None = None,
    now: datetime | None = None,
) -> tuple[Document, str]:
    """The stored record (no hash) and the key itself, which is never stored or shown again."""
    if (role is Role.customer) != (customer_id is not None):
        raise KeyRejected(
            "a customer key needs --customer, and only a customer key has one", "customer_id"
        )
    if customer_id is not None and not clients.customers.exists(customer_id):
        raise KeyRejected(f"customer {customer_id!r} not found", "customer_id")
    now = now or clients.clock.now()
    key = new_key()
    doc: Document = {
        "_id": key.key_id,
        "name": name,
        "role": role.value,
        "customer_id": customer_id,
        "hash": key.hash,
        "created_at": now,
        "expires_at": now + expires_in if expires_in else None,
        "revoked_at": None,
        "last_used_at": None,
    }
    clients.api_keys.insert(doc)
    log.info("API key %s (%s, %s) created", key.key_id, name, role.value)
    return {k: v for k, v in doc.items() if k != "hash"}, key.secret


def authenticate(clients: KeyPorts, secret: str, now: datetime | None = None) -> Principal | None:
    """The principal a key stands for, or None when it is malformed, unknown, revoked or
    expired (the caller learns no more than that)."""
    key_id = key_id_of(secret)
    if key_id is None:
        return None
    now = now or clients.clock.now()
    doc = clients.api_keys.lookup(key_id)
    if doc is None or not secret_matches(secret, doc["hash"]):
        return None
    principal = principal_of(key_id, doc, now)
    if principal is not None:
        clients.api_keys.touch(key_id, now)
    return principal


def principal_for(clients: KeyPorts, key_id: str, now: datetime | None = None) -> Principal | None:
    """The principal of a key already proven (a dashboard session's), while it is still
    neither revoked nor expired."""
    doc = clients.api_keys.lookup(key_id)
    return principal_of(key_id, doc, now or clients.clock.now()) if doc is not None else None


def principal_of(key_id: str, doc: Document, now: datetime) -> Principal | None:
    if is_expired(doc.get("expires_at"), now):
        return None
    return Principal(key_id, doc["name"], Role(doc["role"]), doc.get("customer_id"))


def audit_cli(clients: KeyPorts, action: str, target: str) -> None:
    """An audit entry for a change made on the server's command line (who: the OS user)."""
    user = getpass.getuser()
    clients.audit.record(
        audit_entry(
            uuid.uuid4().hex,
            Principal(f"cli:{user}", f"command line ({user})", Role.admin),
            action,
            method="CLI",
            path="",
            target=target,
            status=0,
            at=clients.clock.now(),
        )
    )


def audit_entry(
    entry_id: str,
    who: Principal,
    action: str | None,
    *,
    method: str,
    path: str,
    target: str | None,
    status: int,
    at: datetime,
) -> Document:
    """One audit log entry (never a body, a header or a key); the outcome follows from the
    status: below 400 ok, a 4xx refused, a 5xx failed."""
    return {
        "_id": entry_id,
        "at": at,
        "key_id": who.key_id,
        "key_name": who.name,
        "role": who.role.value,
        "action": action,
        "method": method,
        "path": path,
        "target": target,
        "status": status,
        "outcome": "ok" if status < 400 else ("refused" if status < 500 else "failed"),
    }


def key_view(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "role": doc["role"],
        "customer_id": doc.get("customer_id"),
        "created_at": doc["created_at"],
        "expires_at": doc.get("expires_at"),
        "revoked_at": doc.get("revoked_at"),
        "last_used_at": doc.get("last_used_at"),
    }


def write_secret_file(path: Path, secret: str) -> None:
    """Create ``path`` readable by its owner only (never briefly readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)


def ensure_first_admin_key(clients: KeyPorts) -> str | None:
    """On a first start (no usable admin key), make one and write it to the data dir.
    Returns the new key, or None when an admin key exists already."""
    if clients.api_keys.active_admin_exists(clients.clock.now()):
        return None
    _, secret = create_key(clients, "first admin (created by skyhive up)", Role.admin)
    write_secret_file(clients.settings.data_dir / ADMIN_KEY_FILE, secret)
    return secret


def ensure_demo_operator_key(clients: KeyPorts) -> str:
    """The demo's operator key for the dashboard, kept in the data dir so a restarted demo
    prints the same one."""
    path = clients.settings.data_dir / DEMO_KEY_FILE
    if path.is_file():
        secret = path.read_text().strip()
        if authenticate(clients, secret) is not None:
            return secret
    _, secret = create_key(clients, "demo operator", Role.operator)
    write_secret_file(path, secret)
    return secret
