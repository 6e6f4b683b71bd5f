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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from skyhive.adapters.mongo import Document
from skyhive.domain.access import (
    Principal,
    Role,
    is_expired,
    key_id_of,
    new_key,
    secret_matches,
)
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

ADMIN_KEY_FILE = "admin-api-key"
DEMO_KEY_FILE = "demo-operator-api-key"


class KeyRejected(ValueError):
    """A key request that breaks a rule (e.g. a customer key without its customer)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def create_key(
    clients: Clients,
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
    now = now or datetime.now(UTC)
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


def authenticate(clients: Clients, secret: str, now: datetime | None = None) -> Principal | None:
    """The principal a key stands for, or None when it is malformed, unknown, revoked or
    expired (the caller learns no more than that)."""
    key_id = key_id_of(secret)
    if key_id is None:
        return None
    doc = clients.api_keys.lookup(key_id)
    now = now or datetime.now(UTC)
    if (
        doc is None
        or not secret_matches(secret, doc["hash"])
        or is_expired(doc.get("expires_at"), now)
    ):
        return None
    clients.api_keys.touch(key_id, now)
    return Principal(key_id, doc["name"], Role(doc["role"]), doc.get("customer_id"))


def audit_cli(clients: Clients, action: str, target: str, outcome: str = "ok") -> None:
    """An audit entry for a change made on the server's command line (who: the OS user)."""
    user = getpass.getuser()
    clients.audit.record(
        {
            "_id": uuid.uuid4().hex,
            "at": datetime.now(UTC),
            "key_id": f"cli:{user}",
            "key_name": f"command line ({user})",
            "role": "admin",
            "action": action,
            "method": "CLI",
            "path": "",
            "target": target,
            "status": 0,
            "outcome": outcome,
        }
    )


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


def ensure_first_admin_key(clients: Clients) -> str | None:
    """On a first start (no usable admin key), make one and write it to the data dir.
    Returns the new key, or None when an admin key exists already."""
    if clients.api_keys.active_admin_exists(datetime.now(UTC)):
        return None
    _, secret = create_key(clients, "first admin (created by skyhive up)", Role.admin)
    write_secret_file(clients.settings.data_dir / ADMIN_KEY_FILE, secret)
    return secret


def ensure_demo_operator_key(clients: Clients) -> str:
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
