"""What the embedded MongoDB-wire server can do, as ``adapters/mongo_capabilities`` finds it
out, and that SkyHive then takes the way that works there. The other way (Decimal128, a
time-series collection, averages by ``$dateTrunc``, a 2dsphere index) needs a real MongoDB,
which this machine does not have: those paths are not exercised here."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pymongo import MongoClient, monitoring

from skyhive.adapters.money import CENTS
from skyhive.adapters.mongo_capabilities import PROBE_PREFIX, Capabilities, capabilities, probe
from skyhive.adapters.mongo_indexes import conditions, ensure_indexes
from skyhive.adapters.telemetry_repo import is_timeseries
from skyhive.settings import Settings
from skyhive.wiring import Clients

NX_27017 = Capabilities(
    decimal128=False,  # refused: "Object of type Decimal128 is not JSON serializable"
    timeseries=False,  # the option is taken, the collection made is a plain one
    date_trunc=False,  # binSize ignored; $add of a date and a number gives a number
    geo=False,  # the 2dsphere index is made as a plain one; $geoNear, $near refused
    compound_id=False,  # "JSON path error near '_id'"
    explain=True,  # SQLite's plan for a find: "SEARCH t USING INDEX idx_t_n (<expr>=?)"
)


class Counter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_the_embedded_server_is_found_to_lack_what_it_lacks(clients: Clients) -> None:
    assert probe(clients.db) == NX_27017
    assert not [n for n in clients.db.list_collection_names() if n.startswith(PROBE_PREFIX)]


def test_a_client_probes_once_and_says_what_it_found(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    counter = Counter()
    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongo_uri_or_default(), event_listeners=[counter]
    )
    try:
        db = client[settings.mongodb_db]
        with caplog.at_level(logging.INFO, "skyhive.adapters.mongo_capabilities"):
            first = capabilities(db)
            probed = len(counter.commands)
            assert capabilities(db) is first and capabilities(client["other"]) is first
        assert probed > 5 and len(counter.commands) == probed  # nothing asked the second time
        [record] = caplog.records
        assert "decimal128 no" in record.getMessage() and "explain yes" in record.getMessage()
    finally:
        client.close()
    again = Counter()
    other: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongo_uri_or_default(), event_listeners=[again]
    )
    try:
        assert capabilities(other[settings.mongodb_db]) == first
        assert len(again.commands) == probed  # its own probe
    finally:
        other.close()


def test_where_a_feature_is_missing_the_way_that_works_here_is_taken(clients: Clients) -> None:
    ensure_indexes(clients.db)
    assert not is_timeseries(clients.db) and not clients.telemetry.native  # buckets
    assert conditions(clients.db) == {"buckets"}  # no 2dsphere index, no time-series one
    assert all(list(ix["key"]) == ["_id"] for ix in clients.db.stations.list_indexes())
    assert clients.money.mode == CENTS
    stored = clients.db.meta.find_one({"_id": "money"})
    assert stored == {"_id": "money", "mode": CENTS}
