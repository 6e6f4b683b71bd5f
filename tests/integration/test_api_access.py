"""Every operation of the generated OpenAPI document, called with no credentials and with a
key of each role, answers exactly as its declared role (``x-skyhive-role``) implies.

"Allowed" means the request got past authorization: any answer but 401/403 (a 404 for an
unknown id, a 400/415/422 for the empty body sent to writes — bodies are checked only after
access). The table is built from the document, so a new operation is covered the moment it
is declared, and an undeclared one is refused (see the last tests).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from auth_helpers import make_key
from cli_env import cli_env
from skyhive.api import create_app
from skyhive.api.openapi import document
from skyhive.settings import Settings
from skyhive.wiring import Clients

ROLES = ("anonymous", "viewer", "operator", "admin", "customer")
STAFF_RANK = {"viewer": 1, "operator": 2, "admin": 3}
CUSTOMER = "cus-access0000001"
# A value for each path parameter that matches its pattern; the records need not exist.
PATH_VALUES = {
    "drone_id": "d-access",
    "customer_id": CUSTOMER,
    "key_id": "aaaaaaaaaaaa",
}


def operations() -> list[tuple[str, str, str]]:
    app = create_app()
    with app.app_context():
        doc = document()
    ops = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            ops.append((method.upper(), path, op["x-skyhive-role"]))
    return sorted(ops)


OPERATIONS = operations()


def expected(label: str, role: str) -> str:
    """``"401"``, ``"403"`` or ``"allowed"`` for a role calling an operation."""
    if label == "public":
        return "allowed"
    if role == "anonymous":
        return "401"
    parts = label.split("+")
    if role == "customer":
        return "allowed" if "own-customer" in parts else "403"
    least = parts[0]
    return "allowed" if least in STAFF_RANK and STAFF_RANK[role] >= STAFF_RANK[least] else "403"


def url_for(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "x-access-1"), path)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Rate limits off: these tests send hundreds of requests a second with one key (the
    limits have their own tests)."""
    return make_settings(rate_limit={"enabled": False})


@pytest.fixture
def app(clients: Clients) -> Flask:
    return create_app(clients.settings, clients)


@pytest.fixture
def keyed(clients: Clients, app: Flask) -> dict[str, FlaskClient]:
    clients.customers.insert({"_id": CUSTOMER, "name": "Access Co", "email": "access@example.com"})
    out: dict[str, FlaskClient] = {}
    for role in ROLES:
        client = app.test_client()
        if role != "anonymous":
            customer = CUSTOMER if role == "customer" else None
            client.environ_base["HTTP_AUTHORIZATION"] = (
                f"Bearer {make_key(clients, role, customer)}"
            )
        out[role] = client
    return out


def call(client: FlaskClient, method: str, url: str) -> Any:
    # Streams would not end: ask for them, read the status, close.
    resp = client.open(url, method=method, buffered=False)
    status = resp.status_code
    resp.close()
    return resp, status


def test_the_document_declares_a_role_for_every_operation() -> None:
    assert len(OPERATIONS) >= 45
    labels = {label for _, _, label in OPERATIONS}
    assert labels <= {
        "public",
        "viewer",
        "operator",
        "admin",
        "viewer+own-customer",
        "operator+own-customer",
        "admin+own-customer",
        "admin+own-drone",
    }, labels


@pytest.mark.parametrize(("method", "path", "label"), OPERATIONS, ids=lambda v: str(v))
def test_each_role_gets_what_the_declaration_implies(
    keyed: dict[str, FlaskClient], method: str, path: str, label: str
) -> None:
    url = url_for(path)
    for role in ROLES:
        resp, status = call(keyed[role], method, url)
        want = expected(label, role)
        if want == "allowed":
            assert status not in (401, 403), (role, method, url, resp.get_data()[:200])
        else:
            assert status == int(want), (role, method, url, status, resp.get_data()[:200])
            assert resp.get_json()["error"]["code"] == status
        if want == "401":
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_refused_at_once(clients: Clients, app: Flask) -> None:
    admin = app.test_client()
    admin.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(clients, 'admin')}"
    created = admin.post("/api/v1/keys", json={"name": "temp", "role": "viewer"})
    assert created.status_code == 201
    key = created.get_json()["key"]
    viewer = app.test_client()
    viewer.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    assert viewer.get("/api/v1/drones").status_code == 200  # now cached in Redis
    assert admin.post(f"/api/v1/keys/{created.get_json()['id']}/revoke").status_code == 200
    # A second API process (another app on the same stores) refuses it too.
    other = create_app(clients.settings, Clients(clients.settings)).test_client()
    other.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    assert viewer.get("/api/v1/drones").status_code == 401
    assert other.get("/api/v1/drones").status_code == 401


def test_keys_are_stored_hashed_and_never_listed(clients: Clients, app: Flask) -> None:
    admin = app.test_client()
    admin.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(clients, 'admin')}"
    created = admin.post("/api/v1/keys", json={"name": "ops", "role": "operator"}).get_json()
    stored = clients.db.api_keys.find_one({"_id": created["id"]})
    assert stored is not None and created["key"] not in str(stored)
    listed = admin.get("/api/v1/keys").get_data(as_text=True)
    assert created["key"] not in listed and '"hash"' not in listed


def test_expired_key_is_refused(clients: Clients, app: Flask) -> None:
    from datetime import UTC, datetime, timedelta

    from skyhive.domain.access import Role
    from skyhive.services.api_keys import create_key

    past = datetime.now(UTC) - timedelta(days=2)
    _, key = create_key(clients, "old", Role.viewer, expires_in=timedelta(days=1), now=past)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    assert client.get("/api/v1/drones").status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer nonsense", "Bearer shk_aaaaaaaaaaaa_" + "x" * 43, "Basic Zm9vOmJhcg==", "Token abc"],
)
def test_malformed_or_unknown_credentials_are_401(app: Flask, header: str) -> None:
    resp = app.test_client().get("/api/v1/drones", headers={"Authorization": header})
    assert resp.status_code == 401
    assert header.split(" ", 1)[1] not in resp.get_data(as_text=True)  # never echoed


def test_writes_are_audited_with_who_and_outcome(clients: Clients, app: Flask) -> None:
    admin = app.test_client()
    admin.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(clients, 'admin')}"
    created = admin.post(
        "/api/v1/keys",
        json={"name": "audited", "role": "viewer"},
        headers={"X-Request-Id": "req-audit-1"},
    )
    assert created.status_code == 201
    refused = admin.post("/api/v1/keys/zzzzzzzzzzzz/revoke")
    assert refused.status_code == 404
    entries = admin.get("/api/v1/audit").get_json()["items"]
    by_id = {e["request_id"]: e for e in entries}
    first = by_id["req-audit-1"]
    assert first["action"] == "keys.create_api_key" and first["outcome"] == "ok"
    assert first["role"] == "admin" and first["key_name"] == "test admin"
    assert any(e["status"] == 404 and e["outcome"] == "refused" for e in entries)
    text = str(list(clients.db.audit.find()))
    assert created.get_json()["key"] not in text  # no secret in the audit log
    filtered = admin.get("/api/v1/audit?outcome=refused").get_json()["items"]
    assert filtered and all(e["outcome"] == "refused" for e in filtered)


def test_dashboard_session_cookie_and_csrf(clients: Clients, app: Flask) -> None:
    key = make_key(clients, "operator")
    browser = app.test_client()
    assert browser.get("/").status_code == 303  # to the sign-in page
    assert browser.get("/login").status_code == 200
    signed = browser.post("/api/v1/session", json={"key": key})
    assert signed.status_code == 201
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and key not in cookie
    csrf = signed.get_json()["csrf_token"]
    assert browser.get("/api/v1/drones").status_code == 200
    # A write without the CSRF token is refused; with it, it passes authorization.
    assert browser.post("/api/v1/geofences", json={}).status_code == 403
    assert (
        browser.post("/api/v1/geofences", json={}, headers={"X-CSRF-Token": csrf}).status_code
        == 422
    )
    assert browser.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert browser.get("/api/v1/drones").status_code == 401


def test_customer_keys_cannot_open_dashboard_sessions(clients: Clients, app: Flask) -> None:
    clients.customers.insert({"_id": CUSTOMER, "name": "Access Co", "email": "access@example.com"})
    resp = app.test_client().post(
        "/api/v1/session", json={"key": make_key(clients, "customer", CUSTOMER)}
    )
    assert resp.status_code == 403


def test_security_headers(app: Flask) -> None:
    resp = app.test_client().get("/login")
    csp = resp.headers["Content-Security-Policy"]
    assert (
        "script-src 'self'" in csp
        and "frame-ancestors 'none'" in csp
        and "unsafe-inline" not in csp
    )
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_first_admin_key_is_made_once_and_left_readable_by_its_owner_only(
    clients: Clients,
) -> None:
    from skyhive.services.api_keys import ADMIN_KEY_FILE, authenticate, ensure_first_admin_key

    key = ensure_first_admin_key(clients)
    assert key is not None
    path = clients.settings.data_dir / ADMIN_KEY_FILE
    assert path.read_text().strip() == key and path.stat().st_mode & 0o777 == 0o600
    principal = authenticate(clients, key)
    assert principal is not None and principal.role.value == "admin"
    assert ensure_first_admin_key(clients) is None  # a restart makes no second key
    assert path.read_text().strip() == key


def test_no_operation_takes_notification_channels() -> None:
    """Channel URLs carry secrets (webhook tokens, SMTP passwords): configuration only."""
    app = create_app()
    with app.app_context():
        doc = document()
    text = str(
        [op.get("requestBody") for item in doc["paths"].values() for op in item.values()]
    ) + str(doc["components"]["schemas"])
    for word in ("channels", "'url'", "webhook", "smtp"):
        assert word not in text.lower(), word


def test_keys_from_the_command_line(clients: Clients, app: Flask) -> None:
    from click.testing import CliRunner

    from skyhive.cli import cli

    s = clients.settings
    env = cli_env(s)
    runner = CliRunner()
    made = runner.invoke(
        cli,
        ["keys", "create", "--name", "ops bot", "--role", "operator", "--expires", "30d"],
        env=env,
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    assert client.get("/api/v1/alerts").status_code == 200
    assert client.get("/api/v1/keys").status_code == 403  # an operator, not an admin
    listed = runner.invoke(cli, ["keys", "list"], env=env)
    assert listed.exit_code == 0 and "ops bot" in listed.output and key not in listed.output
    key_id = key.split("_")[1]
    revoked = runner.invoke(cli, ["keys", "revoke", key_id], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert client.get("/api/v1/alerts").status_code == 401
    bad = runner.invoke(cli, ["keys", "create", "--name", "x", "--role", "customer"], env=env)
    assert bad.exit_code != 0 and "customer" in bad.output
    actions = {e["action"] for e in clients.db.audit.find({"method": "CLI"})}
    assert actions == {"keys.create", "keys.revoke"}
