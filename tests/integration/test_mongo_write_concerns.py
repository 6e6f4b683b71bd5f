"""Write concerns and read preferences per collection (``adapters/mongo``): what the
repositories write and read with, whatever the connection string says, and that the embedded
server takes them."""

from __future__ import annotations

from typing import Any

from pymongo.read_preferences import SecondaryPreferred

from skyhive.adapters.mongo import MAJORITY, ONE
from skyhive.bootstrap import bootstrap
from skyhive.wiring import Clients


def test_records_write_to_a_majority_and_read_the_primary_history_needs_neither(
    clients: Clients,
) -> None:
    bootstrap(clients)  # writes through several of them: the embedded server takes majority
    stores: dict[str, Any] = {
        "alerts": clients.alerts,
        "alert_notifications": clients.notifications,
        "api_keys": clients.api_keys,
        "audit": clients.audit,
        "customers": clients.customers,
        "deliveries": clients.deliveries,
        "drones": clients.fleet,
        "geofences": clients.geofences,
        "invoices": clients.invoices,
        "mqtt_credentials": clients.credentials,
        "telemetry": clients.telemetry,
    }
    for name, store in stores.items():
        coll = store._c  # the collection each repository writes through
        assert coll.name == name
        history = name == "telemetry"
        assert coll.write_concern == (ONE if history else MAJORITY), name
        mode = "secondaryPreferred" if history else "primary"
        assert coll.read_preference.mongos_mode == mode, name
    assert clients.telemetry._c.read_preference == SecondaryPreferred(max_staleness=90)
    assert clients.telemetry._primary.read_preference.mongos_mode == "primary"  # exact reads
    assert clients.customers.upsert_many([{"_id": "wc", "name": "W", "email": "w@x.example"}])
    assert clients.customers.exists("wc")
    assert clients.telemetry.history("any-drone") == []  # the server takes the preference
