"""API keys for tests: a key with a given role, and a Flask test client that sends one."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from skyhive.wiring import Clients


def make_key(clients: Clients, role: str = "admin", customer_id: str | None = None) -> str:
    """A new API key with ``role`` (for a customer key, bound to ``customer_id``)."""
    from skyhive.domain.access import Role
    from skyhive.services.api_keys import create_key

    _, secret = create_key(clients, f"test {role}", Role(role), customer_id)
    return secret


def api_client(
    clients: Clients, role: str = "admin", customer_id: str | None = None, app: Flask | None = None
) -> FlaskClient:
    """A Flask test client that sends a new key with ``role`` on every request."""
    from skyhive.api import create_app

    client = (app or create_app(clients.settings, clients)).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(clients, role, customer_id)}"
    return client
