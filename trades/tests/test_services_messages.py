"""Prices in the messages a trader reads: two decimals, never the stored four."""

from decimal import Decimal

import pytest

from trades.services.errors import price_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("4.3000"), "4.30"),
        (Decimal("4.3"), "4.30"),
        (Decimal("12"), "12.00"),
        (Decimal("0.0500"), "0.05"),
        (Decimal("4.0050"), "4.005"),  # digits that matter are not rounded away
        (None, "none"),
    ],
)
def test_price_text(value, text):
    assert price_text(value) == text
