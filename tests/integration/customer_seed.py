"""Customers for tests that order deliveries: an order for an unknown customer is refused."""

from __future__ import annotations

from datetime import UTC, datetime

from skyhive.wiring import Clients


def add_customers(clients: Clients, *customer_ids: str) -> None:
    """Create these customers (idempotently), each with an address of its own."""
    now = datetime.now(UTC)
    clients.customers.upsert_many(
        [
            {
                "_id": cid,
                "name": f"Customer {cid}",
                "email": f"{cid}@example.com",
                "created_at": now,
                "updated_at": now,
            }
            for cid in customer_ids
        ]
    )
