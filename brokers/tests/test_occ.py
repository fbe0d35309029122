"""OCC option symbols: the documented examples, exact fractional strikes, clear errors, and a
property test that building and parsing are inverse for every valid contract."""

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brokers.occ import InvalidOptionSymbol, OptionContract, build_symbol, parse_symbol


@pytest.mark.parametrize(
    ("symbol", "root", "expiry", "option_type", "strike"),
    [
        ("SPY260116C00570000", "SPY", date(2026, 1, 16), "CALL", Decimal("570")),
        ("SPXW250725C05900000", "SPXW", date(2025, 7, 25), "CALL", Decimal("5900")),
        ("BRKB250912C00455000", "BRKB", date(2025, 9, 12), "CALL", Decimal("455")),
        ("TSLA240119C00226670", "TSLA", date(2024, 1, 19), "CALL", Decimal("226.67")),
        ("VXX190517P00016000", "VXX", date(2019, 5, 17), "PUT", Decimal("16")),
        ("F260116P00012500", "F", date(2026, 1, 16), "PUT", Decimal("12.5")),
        ("AAPL1260116C00100000", "AAPL1", date(2026, 1, 16), "CALL", Decimal("100")),
    ],
)
def test_documented_symbols_parse_and_rebuild(symbol, root, expiry, option_type, strike):
    contract = parse_symbol(symbol)
    assert contract == OptionContract(root=root, expiry=expiry, option_type=option_type, strike=strike)
    assert contract.symbol == symbol


def test_fractional_strikes_are_exact_even_from_floats():
    assert build_symbol("TSLA", date(2024, 1, 19), "CALL", 226.67).endswith("00226670")  # int(226.67*1000) == 226669
    assert build_symbol("F", date(2026, 1, 16), "PUT", "12.5").endswith("00012500")


@pytest.mark.parametrize(
    "text",
    ["", "SPY", "spy260116C00570000", "SPY260116X00570000", "SPY261332C00570000", "SPY260116C0057000",
     "SPY260116C00000000", "1SPY260116C00570000", "SPY260116C00570000\n", "TOOLONGR260116C00570000"],
)
def test_invalid_symbols_raise_a_clear_error(text):
    with pytest.raises(InvalidOptionSymbol):
        parse_symbol(text)


@pytest.mark.parametrize(
    ("root", "option_type", "strike"),
    [("spy", "CALL", 1), ("SPY", "C", 1), ("SPY", "CALL", "abc"), ("SPY", "CALL", 0), ("SPY", "CALL", "0.0005"),
     ("SPY", "CALL", "100000"), ("SPY", "CALL", "NaN"), ("SPY", "CALL", "Infinity")],
)
def test_invalid_parts_raise_a_clear_error(root, option_type, strike):
    with pytest.raises(InvalidOptionSymbol):
        build_symbol(root, date(2026, 1, 16), option_type, strike)


contracts = st.builds(
    OptionContract,
    root=st.from_regex(r"[A-Z][A-Z0-9]{0,5}", fullmatch=True),
    expiry=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    option_type=st.sampled_from(["CALL", "PUT"]),
    strike=st.integers(min_value=1, max_value=99_999_999).map(lambda thousandths: Decimal(thousandths) / 1000),
)


@given(contracts)
def test_build_then_parse_round_trips(contract):
    symbol = contract.symbol
    assert len(symbol) == len(contract.root) + 15
    assert parse_symbol(symbol) == contract
