"""Retention by settings (``settings.history``): TTL indexes let MongoDB remove raw readings
after ``raw_days`` and minute rollups after ``minute_days``; hourly rollups are kept.

A bucket expires by its ``start``, a minute rollup by its own (the indexes marked ``expire``
in ``mongo_indexes``); a native time-series collection by its collection option
(``collMod``). A changed setting makes the index again; with ``expire`` off the indexes stay,
without a TTL, and everything is kept.
"""

from __future__ import annotations

from pymongo.database import Database

from skyhive.adapters.mongo import Document
from skyhive.adapters.mongo_indexes import ensure_indexes
from skyhive.adapters.telemetry_repo import COLLECTION as TELEMETRY
from skyhive.adapters.telemetry_repo import is_timeseries
from skyhive.settings import HistoryConfig

DAY_S = 86_400


def expiry(history: HistoryConfig) -> dict[str, int | None]:
    """Each ``expire`` setting of ``mongo_indexes.INDEXES`` → seconds kept (None: for ever)."""
    if not history.expire:
        return {"raw": None, "minute": None}
    return {"raw": history.raw_days * DAY_S, "minute": history.minute_days * DAY_S}


def ensure_retention(db: Database[Document], history: HistoryConfig) -> None:
    """Make (or change) the TTL indexes of ``history``. Idempotent."""
    seconds = expiry(history)
    if is_timeseries(db):
        raw = seconds["raw"]
        db.command("collMod", TELEMETRY, expireAfterSeconds=raw if raw else "off")
    ensure_indexes(db, TELEMETRY, "rollups_minute", expiry=seconds)
