"""A delivery the drone reports as failed is never invoiced, made through the real path.

The orders are dispatched by the dispatcher (the drones live through telemetry, commanded
over the embedded broker); the drones report ``picked_up``, then ``delivered`` or ``failed``
as events on the bus; the tracker records them; then the month is billed.
(``test_billing.py`` builds its failed deliveries with a helper that skips the tracker, so
it cannot see what the tracker records for a failure.)

The tracker stamps what it records by the server's clock, so the month billed is the one it
recorded for the delivered delivery, read back, and billing runs a day after that month.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import delivery_wiring as wire
import pytest
from dispatch_world import PICKUP, DroneRadio, World, command_publisher

from polling import wait_for
from skyhive.adapters.money import decode_money
from skyhive.domain.billing import Period
from skyhive.wiring import Clients

pytestmark = pytest.mark.mqtt  # the drones and the dispatcher talk over the broker


@pytest.fixture
def world(clients: Clients) -> World:
    return World(clients)


def test_a_delivery_the_drone_reports_failed_is_not_invoiced(
    world: World, clients: Clients
) -> None:
    drones = ["bill-1", "bill-2", "bill-3"]
    for i, drone in enumerate(drones):
        world.register(drone)
        world.fly(drone, PICKUP.lat + i * 1e-4, PICKUP.lon, 100, "idle")
    delivered = world.order(PICKUP.lat + 0.01, PICKUP.lon)
    failed = world.order(PICKUP.lat, PICKUP.lon + 0.01)
    failed_early = world.order(PICKUP.lat - 0.01, PICKUP.lon)  # before pickup: back to pending
    radio = DroneRadio(clients.settings, drones)
    try:
        with command_publisher(clients.settings) as publish:
            d = wire.dispatcher(clients, publish, "bill")
            d.setup()
            assert d.dispatch_pending(retry_all=True) == 3
            d.recorder.drain()
            wait_for(lambda: len(radio.commands()) == 3, "a deliver command at each drone")
    finally:
        radio.close()
    drone_of = {x: world.svc.get(x).drone_id for x in (delivered, failed, failed_early)}

    world.report(drone_of[delivered], delivered, "picked_up")
    world.report(drone_of[delivered], delivered, "delivered")
    world.report(drone_of[failed], failed, "picked_up")
    world.report(drone_of[failed], failed, "failed", reason="motor fault")
    world.report(drone_of[failed], failed, "failed", reason="motor fault")  # QoS 1: again
    world.report(drone_of[failed_early], failed_early, "failed", reason="battery swap")
    tracker = wire.tracker(clients, "bill")
    tracker.setup()
    while tracker.handle_events():
        pass

    ok, bad, early = (world.svc.get(x) for x in (delivered, failed, failed_early))
    assert ok is not None and bad is not None and early is not None
    assert ok.status == "delivered" and ok.price_final is not None
    assert early.status == "pending"

    period = Period.parse(str(ok.delivered_month))
    billing = clients.billing
    result = billing.run(period, period.end + timedelta(days=1))
    assert (result.invoices_created, result.deliveries_billed) == (1, 1)
    [invoice] = clients.db.invoices.find()
    assert invoice["customer_id"] == "c1"
    assert [i["delivery_id"] for i in invoice["items"]] == [delivered]
    price = decode_money(clients.db.deliveries.find_one({"_id": delivered})["price_final"])  # type: ignore[index]
    assert decode_money(invoice["subtotal"]) == price and price > Decimal("0")
    marks = {str(x["_id"]): x.get("invoice_id") for x in clients.db.deliveries.find()}
    assert marks == {delivered: invoice["_id"], failed: None, failed_early: None}
    # Nor in the month after (a failure recorded across the boundary).
    later = period.end + timedelta(days=1)
    nxt = Period.of(later)
    assert billing.run(nxt, nxt.end + timedelta(days=1)).deliveries_billed == 0

    # The failure is recorded as such, and not priced for billing: no final price, no month.
    assert bad.status == "failed" and "motor fault" in bad.timeline[-1].note
    raw = clients.db.deliveries.find_one({"_id": failed})
    assert raw is not None
    assert raw.get("price_final") is None and raw.get("delivered_month") is None
