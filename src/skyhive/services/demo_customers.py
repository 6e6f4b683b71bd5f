"""A handful of customers for `skyhive demo`, created once (fixed ids, never overwritten), so
orders can be placed against them straight away."""

from __future__ import annotations

from skyhive.ports.clock import Clock
from skyhive.ports.customer_seed import CustomerSeed
from skyhive.services.deliveries import to_millisecond

DEMO_CUSTOMERS = (
    (
        "cust-1",
        "Ada's Bakery",
        "orders@adasbakery.example",
        "+1 510 555 0101",
        "1423 Broadway",
        "Oakland",
        "94612",
    ),
    (
        "cust-2",
        "Mission Pharmacy",
        "rx@missionpharmacy.example",
        "+1 415 555 0102",
        "2190 Mission St",
        "San Francisco",
        "94110",
    ),
    (
        "cust-3",
        "Berkeley Bike Parts",
        "parts@bbp.example",
        "+1 510 555 0103",
        "2020 Shattuck Ave",
        "Berkeley",
        "94704",
    ),
    (
        "cust-4",
        "Fremont Lab Supply",
        "lab@fremontlab.example",
        "+1 510 555 0104",
        "39150 Paseo Padre Pkwy",
        "Fremont",
        "94538",
    ),
    (
        "cust-5",
        "Daly City Florist",
        "hello@dcflorist.example",
        "+1 650 555 0105",
        "333 Gellert Blvd",
        "Daly City",
        "94015",
    ),
    (
        "cust-6",
        "Walnut Creek Books",
        "shop@wcbooks.example",
        "+1 925 555 0106",
        "1520 N Main St",
        "Walnut Creek",
        "94596",
    ),
)


def seed_demo_customers(customers: CustomerSeed, clock: Clock) -> int:
    """Returns how many were created now."""
    now = to_millisecond(clock.now())
    docs = [
        {
            "_id": cid,
            "name": name,
            "email": email,
            "phone": phone,
            "address": {"street": street, "city": city, "state": "CA", "zip": zip_code},
            "created_at": now,
            "updated_at": now,
        }
        for cid, name, email, phone, street, city, zip_code in DEMO_CUSTOMERS
    ]
    return customers.upsert_many(docs)
