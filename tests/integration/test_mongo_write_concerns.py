"""Write concerns per collection (``adapters/mongo.WRITE_CONCERNS``): what the repositories
write with, whatever the connection string says, and that the embedded server takes them."""

from __future__ import annotations

from typing import Any

from skyhive.adapters.mongo import MAJORITY, ONE
from skyhive.bootstrap import bootstrap
from skyhive.wiring import Clients


def test_business_records_need_a_majority_and_history_one_member(clients: Clients) -> None:
    bootstrap(clients)  # writes through several of them: the embedded server takes majority
    stores: dict[str, Any] = {
        "alerts": clients.alerts,
        "api_keys": clients.api_keys,
        "audit": clients.audit,
        "customers": clients.customers,
        "deliveries": clients.deliveries,
        "drones": clients.fleet,
        "geofences": clients.geofences,
        "invoices": clients.invoices,
        "telemetry": clients.telemetry,
    }
    for name, store in stores.items():
        coll = store._c  # the collection each repository writes through
        assert coll.name == name
        expected = ONE if name == "telemetry" else MAJORITY
        assert coll.write_concern == expected, name
        assert coll.read_preference.mongos_mode == "primary", name
    assert clients.customers.upsert_many([{"_id": "wc", "name": "W", "email": "w@x.example"}])
    assert clients.customers.exists("wc")
