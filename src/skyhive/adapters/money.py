"""Money in MongoDB: ``Decimal128`` where the server can store it, else an integer count of
cents (int64). Both are exact, both ``$sum`` exactly in an aggregation pipeline, so the
pipelines are the same on either server and only decoding differs.

The mode is decided once per database, by whether the server stores ``Decimal128`` (real
MongoDB does, the embedded server refuses it: ``mongo_capabilities``), and recorded there
(``meta`` document ``money``), so a database never holds amounts of two encodings. Decoding
goes by the stored type, so it needs no mode: ``Decimal128`` → Decimal, int → cents, and the
decimal strings written before this codec existed.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128
from bson.int64 import Int64
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from skyhive.adapters.mongo import Document, collection
from skyhive.adapters.mongo_capabilities import capabilities
from skyhive.domain.pricing import CENT, to_cents

DECIMAL128 = "decimal128"
CENTS = "cents"
META_ID = "money"


def decode_money(value: object) -> Decimal | None:
    """A stored amount (any encoding) as Decimal to the cent; None stays None."""
    if value is None:
        return None
    if isinstance(value, Decimal128):
        return to_cents(value.to_decimal())
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value) * CENT
    if isinstance(value, str):
        return to_cents(Decimal(value))
    raise TypeError(f"not a stored amount of money: {value!r}")


def money_text(value: object) -> str | None:
    """How the API shows an amount: a decimal string, ``"7.90"``."""
    amount = decode_money(value)
    return None if amount is None else str(amount)


class MoneyCodec:
    def __init__(self, db: Database[Document]) -> None:
        self._db = db
        self._mode: str | None = None
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        """``decimal128`` or ``cents``: read from the database, decided on first use."""
        if self._mode is None:
            with self._lock:
                if self._mode is None:
                    self._mode = self._load_or_decide()
        return self._mode

    def _load_or_decide(self) -> str:
        meta = collection(self._db, "meta")
        found = meta.find_one({"_id": META_ID})
        if found is not None:
            return str(found["mode"])
        mode = DECIMAL128 if capabilities(self._db).decimal128 else CENTS
        try:
            meta.insert_one({"_id": META_ID, "mode": mode})
        except DuplicateKeyError:  # another process decided first: its choice stands
            found = meta.find_one({"_id": META_ID})
            assert found is not None
            return str(found["mode"])
        return mode

    def encode(self, amount: Decimal) -> Any:
        """``amount`` (rounded half up to the cent) as this database stores money."""
        cents = to_cents(amount)
        if self.mode == DECIMAL128:
            return Decimal128(cents)
        return Int64(int(cents / CENT))

    def decode(self, value: object) -> Decimal | None:
        """:func:`decode_money`: decoding goes by the stored type, not the mode."""
        return decode_money(value)
