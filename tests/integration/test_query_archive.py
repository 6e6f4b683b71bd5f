"""SQL over the archive with DuckDB: one known day exported (archive_data), then queried as
`skyhive query` and the admins' ``POST /api/v1/query`` do: read-only, one statement, no file
or network access beyond the archive, a time limit and a row cap."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from archive_data import DAY, READINGS_OF_DAY, make_day

from auth_helpers import api_client
from skyhive.adapters.archive_sql import QueryRefused, QueryTimeout
from skyhive.api import create_app
from skyhive.api.openapi import document
from skyhive.settings import Settings
from skyhive.wiring import Clients


@pytest.fixture
def archived(make_settings: Callable[..., Settings]) -> Iterator[Clients]:
    """DAY exported, a small row cap and a short time limit."""
    settings = make_settings(history={"expire": False, "query_max_rows": 5, "query_timeout_s": 0.5})
    clients = Clients(settings)
    make_day(clients)
    clients.archive_exporter.export_day(DAY)
    yield clients
    clients.close()


def test_the_views_read_every_table_with_its_day(archived: Clients) -> None:
    sql = archived.archive_sql
    counts = sql.query(
        "SELECT (SELECT count(*) FROM telemetry), (SELECT count(*) FROM deliveries), "
        "(SELECT count(*) FROM alerts), (SELECT count(*) FROM drones), "
        "(SELECT count(*) FROM stations)"
    )
    assert counts.rows == [(READINGS_OF_DAY, 6, 2, 2, 50)]
    days = sql.query("WITH d AS (SELECT DISTINCT date FROM telemetry) SELECT date FROM d")
    assert days.rows == [(DAY,)] and days.types == ["DATE"]
    hours = sql.query("SELECT hour(ts) AS h, count(*) FROM telemetry GROUP BY h ORDER BY h")
    assert hours.rows == [(8, 143), (23, 1)]  # UTC, whatever the machine's zone


def test_rows_are_capped_and_say_so(archived: Clients) -> None:
    result = archived.archive_sql.query("SELECT drone_id, seq FROM telemetry ORDER BY 1, 2")
    assert result.truncated and len(result.rows) == 5
    assert result.rows[0] == ("d-1", 1)
    small = archived.archive_sql.query("SELECT 1 AS one")
    assert not small.truncated and small.columns == ["one"]


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELECT 1; SELECT 2", "exactly one statement (this has 2)"),
        ("", "exactly one statement (this has 0)"),
        ("DROP VIEW telemetry", "this is DROP"),
        ("COPY telemetry TO 'out.csv'", "this is COPY"),
        ("CREATE TABLE t AS SELECT 1", "this is CREATE"),
        ("INSTALL httpfs", "this is"),
        ("SET enable_external_access = true", "this is SET"),
        ("selec 1", "syntax error"),
        ("SELECT * FROM nowhere", "nowhere"),
        ("SELECT * FROM read_csv('/etc/passwd')", "/etc/passwd"),
        ("SELECT * FROM read_text('/etc/hostname')", "/etc/hostname"),
    ],
)
def test_only_one_read_only_query_over_the_archive_is_run(
    archived: Clients, sql: str, says: str
) -> None:
    with pytest.raises(QueryRefused) as refused:
        archived.archive_sql.query(sql)
    assert says in str(refused.value)


def test_files_beyond_the_archive_stay_out_of_reach(archived: Clients, tmp_path: Path) -> None:
    outside = tmp_path / "outside.parquet"
    outside.write_bytes(archived.archive.path("drones", DAY).read_bytes())
    with pytest.raises(QueryRefused, match="disabled by configuration"):
        archived.archive_sql.query(f"SELECT * FROM read_parquet('{outside}')")
    inside = archived.archive.path("drones", DAY)
    assert archived.archive_sql.query(f"SELECT count(*) FROM '{inside}'").rows == [(2,)]


def test_a_query_past_its_time_limit_is_stopped(archived: Clients) -> None:
    with pytest.raises(QueryTimeout, match=r"time limit of 0\.5 s"):
        archived.archive_sql.query("SELECT count(*) FROM range(100000000000) a, range(10) b")


def test_the_api_answers_admins_in_json_safe_values(archived: Clients) -> None:
    app = create_app(archived.settings, archived)
    admin = api_client(archived, "admin", app=app)
    sql = (
        "SELECT date, delivery_id, created_at, price_estimate, wait_s FROM deliveries "
        "WHERE wait_s = 60"
    )
    resp = admin.post("/api/v1/query", json={"sql": sql})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["columns"] == ["date", "delivery_id", "created_at", "price_estimate", "wait_s"]
    assert body["types"][3] == "DECIMAL(12,2)" and body["count"] == 1 and not body["truncated"]
    [[day, _, created, price, wait]] = body["rows"]
    assert (day, created, wait) == ("2026-11-23", "2026-11-23T09:00:00Z", 60.0)
    assert isinstance(price, str) and price.count(".") == 1 and len(price.split(".")[1]) == 2

    capped = admin.post("/api/v1/query", json={"sql": "SELECT * FROM telemetry"}).get_json()
    assert capped["truncated"] and capped["count"] == capped["max_rows"] == 5

    refused = admin.post("/api/v1/query", json={"sql": "DELETE FROM telemetry"})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["field"] == "sql"
    bad = admin.post("/api/v1/query", json={"sql": "SELECT nope FROM telemetry"})
    assert bad.status_code == 400 and "nope" in bad.get_json()["error"]["message"]
    slow = admin.post("/api/v1/query", json={"sql": "SELECT count(*) FROM range(100000000000)"})
    assert slow.status_code == 408 and "time limit" in slow.get_json()["error"]["message"]
    assert admin.post("/api/v1/query", json={"query": "SELECT 1"}).status_code == 422

    operator = api_client(archived, "operator", app=app)
    assert operator.post("/api/v1/query", json={"sql": "SELECT 1"}).status_code == 403

    with app.app_context():
        op = document()["paths"]["/api/v1/query"]["post"]
    assert op["x-skyhive-role"] == "admin"
    assert {"200", "400", "408", "422", "403"} <= set(op["responses"])
