"""Property-based tests of the whole API from its generated OpenAPI document (schemathesis):
for every operation, generated requests (valid and invalid) never get a 5xx, and every
response matches the document (status, content type, body schema).

Run with an admin key against the real embedded stores. The live streams never end, so
they are left to their own tests (``test_api.py``, the browser tests).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from auth_helpers import make_key
from hypothesis import HealthCheck, settings

from skyhive.api import create_app
from skyhive.bootstrap import bootstrap
from skyhive.wiring import Clients

EXAMPLES_PER_OPERATION = 12


@pytest.fixture
def admin_key(clients: Clients) -> str:
    return make_key(clients, "admin")


@pytest.fixture
def api_schema(clients: Clients, admin_key: str) -> Iterator[schemathesis.schemas.BaseSchema]:
    bootstrap(clients)
    app = create_app(clients.settings, clients)
    auth = {"Authorization": f"Bearer {admin_key}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=auth)
    yield schema.exclude(path_regex="^/api/v1/stream/")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors_and_responses_match_the_document(
    case: schemathesis.Case, admin_key: str
) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {admin_key}"})
