"""The money port: amounts as the store keeps them (``adapters/money.MoneyCodec``:
``Decimal128`` or a count of cents, decided once per database)."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol


class Money(Protocol):
    def encode(self, amount: Decimal) -> object:
        """An amount as this store keeps it."""

    def decode(self, value: object) -> Decimal | None:
        """A stored amount (any encoding) as Decimal to the cent; None stays None."""
