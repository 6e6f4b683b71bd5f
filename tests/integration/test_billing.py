"""Billing against the real embedded MongoDB and Redis: invoices per customer and month,
idempotent runs, each delivery billed once (also after a crash between the two writes), only
delivered deliveries, payments and overdue marking, and money stored exactly."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from api_asserts import assert_error, body
from billing_data import delivered, finish, order, world
from click.testing import CliRunner
from flask.testing import FlaskClient

from auth_helpers import api_client
from cli_env import cli_env
from skyhive.adapters.money import CENTS, decode_money
from skyhive.cli import cli
from skyhive.domain.billing import BillingError, Period, build_invoice
from skyhive.services.billing import billable_delivery
from skyhive.wiring import Clients

OCT = Period(2026, 10)
IN_OCT = datetime(2026, 10, 12, 15, tzinfo=UTC)
AFTER_OCT = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)


def billed_ids(clients: Clients) -> dict[str, str | None]:
    return {str(d["_id"]): d.get("invoice_id") for d in clients.db.deliveries.find()}


def test_one_invoice_per_customer_and_month_with_exact_totals(clients: Clients) -> None:
    svc = world(clients, "alice", "bob")
    a1 = delivered(clients, svc, "alice", "12TH", IN_OCT, kg=1.5, size="medium")
    a2 = delivered(clients, svc, "alice", "EMBR", IN_OCT + timedelta(days=3))
    b1 = delivered(clients, svc, "bob", "12TH", IN_OCT)
    delivered(clients, svc, "bob", "12TH", datetime(2026, 11, 2, tzinfo=UTC))  # November
    result = clients.billing.run(OCT, AFTER_OCT)
    assert (result.invoices_created, result.deliveries_billed, result.customers) == (2, 3, 2)

    alice = clients.invoices.get("inv-2026-10-alice")
    assert alice is not None and alice["status"] == "pending"
    assert [i["delivery_id"] for i in alice["items"]] == sorted([a1, a2])
    assert {i["station"] for i in alice["items"]} == {"12TH", "EMBR"}
    assert {i["month"] for i in alice["items"]} == {"2026-10"}
    prices = [clients.deliveries.get(d).price_final for d in (a1, a2)]  # type: ignore[union-attr]
    subtotal = sum(prices, Decimal("0"))
    tax = (subtotal * Decimal("0.0875")).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    assert decode_money(alice["subtotal"]) == subtotal
    assert decode_money(alice["tax"]) == tax
    assert decode_money(alice["total_amount"]) == subtotal + tax
    assert alice["due_date"] - alice["invoice_date"] == timedelta(days=30)
    assert billed_ids(clients)[b1] == "inv-2026-10-bob"


def test_money_is_stored_as_cents_on_the_embedded_server(clients: Clients) -> None:
    svc = world(clients, "alice")
    delivered(clients, svc, "alice", "12TH", IN_OCT)
    clients.billing.run(OCT, AFTER_OCT)
    assert clients.money.mode == CENTS
    assert clients.db.meta.find_one({"_id": "money"}) == {"_id": "money", "mode": CENTS}
    raw = clients.db.invoices.find_one()
    assert raw is not None
    assert all(type(raw[k]) is int for k in ("subtotal", "tax", "total_amount"))
    assert isinstance(clients.db.deliveries.find_one()["price_estimate"], int)  # type: ignore[index]


def test_running_a_period_again_creates_nothing_and_bills_nothing_twice(clients: Clients) -> None:
    svc = world(clients, "alice", "bob")
    for customer in ("alice", "bob", "alice"):
        delivered(clients, svc, customer, "12TH", IN_OCT)
    billing = clients.billing
    first = billing.run(OCT, AFTER_OCT)
    before = list(clients.db.invoices.find().sort("_id"))
    again = billing.run(OCT, AFTER_OCT + timedelta(days=1))
    assert (first.invoices_created, first.deliveries_billed) == (2, 3)
    assert (again.invoices_created, again.deliveries_billed, again.repaired) == (0, 0, 0)
    assert list(clients.db.invoices.find().sort("_id")) == before
    billed = [i["delivery_id"] for inv in before for i in inv["items"]]
    assert sorted(billed) == sorted(set(billed)) and len(billed) == 3


def test_a_crash_between_invoice_and_marking_is_repaired_by_the_next_run(clients: Clients) -> None:
    svc = world(clients, "alice")
    ids = [delivered(clients, svc, "alice", "12TH", IN_OCT) for _ in range(2)]
    # The first half of a run: the invoice is written, the deliveries are not yet marked.
    docs = clients.delivery_billing.billable(OCT.label)
    inv = build_invoice(
        "alice",
        OCT,
        [billable_delivery(d, decode_money(d["price_final"])) for d in docs],
        Decimal("0.0875"),
        AFTER_OCT,
        30,
    )
    clients.invoices.insert_new([inv], "USD")
    assert set(billed_ids(clients).values()) == {None}
    result = clients.billing.run(OCT, AFTER_OCT)
    assert (result.invoices_created, result.repaired, result.deliveries_billed) == (0, 2, 0)
    assert billed_ids(clients) == dict.fromkeys(ids, inv.id)
    assert clients.db.invoices.count_documents({}) == 1


def test_failed_and_cancelled_deliveries_are_not_billed(clients: Clients) -> None:
    svc = world(clients, "alice")
    ok = delivered(clients, svc, "alice", "12TH", IN_OCT)
    failed = finish(clients, order(svc, "alice", "12TH", IN_OCT), "failed", IN_OCT)
    cancelled = finish(clients, order(svc, "alice", "12TH", IN_OCT), "cancelled", IN_OCT)
    clients.billing.run(OCT, AFTER_OCT)
    [inv] = clients.db.invoices.find()
    assert [i["delivery_id"] for i in inv["items"]] == [ok]
    marks = billed_ids(clients)
    assert marks[ok] == inv["_id"] and marks[failed] is None and marks[cancelled] is None


def test_an_open_period_is_refused(clients: Clients) -> None:
    world(clients)
    with pytest.raises(BillingError, match="2026-11 has not ended"):
        clients.billing.run(Period(2026, 11), datetime(2026, 11, 30, 12, tzinfo=UTC))


def test_scheduled_billing_bills_last_month_and_marks_overdue(clients: Clients) -> None:
    svc = world(clients, "alice")
    delivered(clients, svc, "alice", "12TH", IN_OCT)
    billing = clients.billing
    billing.scheduled(datetime(2026, 11, 1, 0, 5, tzinfo=UTC))  # not settled: bills September
    assert clients.db.invoices.count_documents({}) == 0
    billing.scheduled(AFTER_OCT)
    assert clients.invoices.get("inv-2026-10-alice")["status"] == "pending"  # type: ignore[index]
    billing.scheduled(AFTER_OCT + timedelta(days=31))
    assert clients.invoices.get("inv-2026-10-alice")["status"] == "overdue"  # type: ignore[index]
    assert clients.db.invoices.count_documents({}) == 1


@pytest.fixture
def client(clients: Clients) -> FlaskClient:
    return api_client(clients)


def test_invoices_api_list_read_pay(clients: Clients, client: FlaskClient) -> None:
    svc = world(clients, "alice", "bob")
    delivered(clients, svc, "alice", "12TH", IN_OCT)
    delivered(clients, svc, "bob", "12TH", IN_OCT)
    clients.billing.run(OCT, AFTER_OCT)
    listed = body(client.get("/api/v1/invoices?customer_id=alice"))
    [inv] = listed["items"]
    assert inv["id"] == "inv-2026-10-alice" and inv["status"] == "pending"
    assert inv["total_amount"] == str(Decimal(inv["subtotal"]) + Decimal(inv["tax"]))
    assert inv["items"][0]["unit_price"] == inv["items"][0]["total"] == inv["subtotal"]
    assert body(client.get("/api/v1/invoices"))["count"] == 2
    assert body(client.get("/api/v1/invoices?status=paid"))["count"] == 0
    assert_error(client.get("/api/v1/invoices?status=late"), 400, "status")
    assert_error(client.get("/api/v1/invoices/inv-nope"), 404, "invoice_id")

    url = f"/api/v1/invoices/{inv['id']}/pay"
    assert_error(client.post(url, json={"amount": "0.01"}), 422, "amount")
    resp = client.post(
        url, json={"amount": inv["total_amount"], "method": "card", "reference": "ch_1"}
    )
    assert resp.status_code == 200, resp.data
    paid = body(resp)
    assert paid["status"] == "paid" and paid["paid_at"].endswith("Z")
    assert paid["payment"]["amount"] == inv["total_amount"] and paid["payment"]["method"] == "card"
    msg = assert_error(client.post(url), 409)
    assert "paid already" in msg
    assert body(client.get(f"/api/v1/invoices/{inv['id']}")) == paid
    assert_error(client.post("/api/v1/invoices/inv-nope/pay"), 404, "invoice_id")


def test_invoices_access(clients: Clients, client: FlaskClient) -> None:
    svc = world(clients, "alice", "bob")
    delivered(clients, svc, "alice", "12TH", IN_OCT)
    delivered(clients, svc, "bob", "12TH", IN_OCT)
    clients.billing.run(OCT, AFTER_OCT)
    app = client.application
    mine, theirs = "/api/v1/invoices/inv-2026-10-alice", "/api/v1/invoices/inv-2026-10-bob"
    anonymous = app.test_client()
    for resp in (
        anonymous.get("/api/v1/invoices"),
        anonymous.get(mine),
        anonymous.post(f"{mine}/pay"),
    ):
        assert_error(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    alice = api_client(clients, "customer", "alice", app=app)
    for role in ("viewer", "operator"):
        staff = api_client(clients, role, app=app)
        assert_error(staff.get("/api/v1/invoices"), 403)
        assert_error(staff.get(mine), 403)
        assert_error(staff.post(f"{mine}/pay"), 403)
    # A customer key: its own invoices only, and it does not pay through the API.
    assert [i["id"] for i in body(alice.get("/api/v1/invoices"))["items"]] == [mine.rsplit("/")[-1]]
    assert body(alice.get("/api/v1/invoices?customer_id=alice"))["count"] == 1
    assert body(alice.get("/api/v1/invoices?customer_id=bob")) == {"items": [], "count": 0}
    assert body(alice.get(mine)) == body(client.get(mine))
    missing = assert_error(alice.get("/api/v1/invoices/inv-nope"), 404, "invoice_id")
    other = assert_error(alice.get(theirs), 404, "invoice_id")
    assert other.replace("inv-2026-10-bob", "inv-nope") == missing
    assert_error(alice.post(f"{mine}/pay"), 403)
    assert {i["status"] for i in body(client.get("/api/v1/invoices"))["items"]} == {"pending"}


def test_invoices_page_on_with_before(clients: Clients, client: FlaskClient) -> None:
    customers = ("alice", "bob", "carol")
    svc = world(clients, *customers)
    for period in (Period(2026, 9), OCT):
        for customer in customers:
            delivered(clients, svc, customer, "12TH", period.start + timedelta(days=3))
        # One run per month: its invoices share their date, so the id orders them.
        clients.billing.run(period, period.end + timedelta(hours=1))
    clients.billing.pay("inv-2026-10-bob", {})

    def pages(query: str, as_: FlaskClient = client) -> list[list[str]]:
        out: list[list[str]] = []
        before = ""
        while True:
            got = body(as_.get(f"/api/v1/invoices?limit=2&{query}{before}"))
            if not got["items"]:
                return out
            out.append([i["id"] for i in got["items"]])
            before = f"&before={out[-1][-1]}"

    everything = [i["id"] for i in body(client.get("/api/v1/invoices"))["items"]]
    assert everything == [f"inv-2026-{m}-{c}" for m in ("10", "09") for c in customers]
    assert pages("") == [everything[0:2], everything[2:4], everything[4:6]]
    assert pages("customer_id=bob") == [["inv-2026-10-bob", "inv-2026-09-bob"]]
    assert pages("status=pending") == [
        ["inv-2026-10-alice", "inv-2026-10-carol"],
        ["inv-2026-09-alice", "inv-2026-09-bob"],
        ["inv-2026-09-carol"],
    ]
    alice = api_client(clients, "customer", "alice", app=client.application)
    assert pages("", alice) == [["inv-2026-10-alice", "inv-2026-09-alice"]]
    # A cursor that is no invoice of the list paged is refused, whoever's it is.
    for who, cursor in ((client, "inv-nope"), (alice, "inv-nope"), (alice, "inv-2026-10-bob")):
        assert_error(who.get(f"/api/v1/invoices?before={cursor}"), 400, "before")
    assert_error(
        client.get("/api/v1/invoices?customer_id=bob&before=inv-2026-10-alice"), 400, "before"
    )
    assert_error(client.get("/api/v1/invoices?before=has%20space"), 400, "before")


def test_billing_run_command(clients: Clients) -> None:
    # The command bills by the wall clock (no --now): last month has ended by it whenever the
    # test runs, and January of next year has not.
    now = datetime.now(UTC)
    ended, future = Period.of(now).previous(), Period(now.year + 1, 1)
    in_ended = ended.start + (IN_OCT - OCT.start)
    svc = world(clients, "alice", "bob")
    delivered(clients, svc, "alice", "12TH", in_ended)
    delivered(clients, svc, "bob", "EMBR", in_ended)
    s = clients.settings
    env = cli_env(s)
    runner = CliRunner()
    first = runner.invoke(cli, ["billing", "run", "--period", ended.label], env=env)
    assert first.exit_code == 0, first.output
    row = rf"{ended.label}\s+│\s+2\s+│\s+2\s+│\s+2\s+│\s+0"
    assert re.search(row, first.output), first.output
    again = runner.invoke(cli, ["billing", "run", "--period", ended.label], env=env)
    assert again.exit_code == 0 and re.search(rf"{ended.label}(\s+│\s+0){{4}}", again.output)
    assert clients.db.invoices.count_documents({}) == 2
    assert clients.invoices.get(f"inv-{ended.label}-alice") is not None
    early = runner.invoke(cli, ["billing", "run", "--period", future.label], env=env)
    assert early.exit_code == 1 and "has not ended yet" in early.output
    bad = runner.invoke(cli, ["billing", "run", "--period", "2026-13"], env=env)
    assert bad.exit_code == 1 and "YYYY-MM" in bad.output


def test_two_runs_at_once_bill_each_delivery_once(clients: Clients) -> None:
    svc = world(clients, "alice", "bob", "carol")
    ids = [delivered(clients, svc, c, "12TH", IN_OCT) for c in ("alice", "bob", "carol") * 4]
    others = [Clients(clients.settings) for _ in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(lambda c: c.billing.run(OCT, AFTER_OCT), others))
    finally:
        for c in others:
            c.close()
    assert sum(r.invoices_created for r in runs) == 3
    invoices = list(clients.db.invoices.find())
    lines = [i["delivery_id"] for inv in invoices for i in inv["items"]]
    assert sorted(lines) == sorted(ids)  # every delivery on exactly one invoice
    marks = billed_ids(clients)
    assert all(marks[i] == f"inv-2026-10-{clients.deliveries.get(i).customer_id}" for i in ids)  # type: ignore[union-attr]
