"""Decoding stored money: every encoding a database may hold gives the same Decimal."""

from __future__ import annotations

from decimal import Decimal

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from hypothesis import given
from hypothesis import strategies as st

from skyhive.adapters.money import decode_money, money_text

CENTS = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False)


@given(CENTS)
def test_every_encoding_decodes_to_the_same_amount(amount: Decimal) -> None:
    as_cents = Int64(int(amount * 100))
    assert decode_money(as_cents) == decode_money(Decimal128(amount)) == amount
    assert decode_money(str(amount)) == amount  # the decimal strings of older deliveries
    assert money_text(as_cents) == f"{amount:.2f}"


def test_decoding() -> None:
    assert decode_money(None) is None and money_text(None) is None
    assert money_text(790) == "7.90" and money_text(Decimal128("7.9")) == "7.90"
    assert decode_money("5.545") == Decimal("5.55")  # half up
    for bad in (7.9, True, b"7.90"):
        with pytest.raises(TypeError):
            decode_money(bad)
