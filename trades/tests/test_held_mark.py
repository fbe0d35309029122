"""A multi-leg trade's held mark (trades.selectors.held_mark), the figures the monitor writes on its
row: whatever the legs, the unrealized P&L is the sum of the legs' own P&L, exactly."""

from decimal import Decimal

from hypothesis import assume, given
from hypothesis import strategies as st

from trades import selectors
from trades.models import LegSide, TradeLeg
from trades.selectors import LegQuote

CENTS = st.integers(min_value=0, max_value=3000).map(lambda cents: Decimal(cents) / 100)
LEG = st.tuples(st.sampled_from([LegSide.LONG, LegSide.SHORT]), st.integers(1, 3), CENTS, CENTS, CENTS, CENTS)


@given(legs=st.lists(LEG, min_size=1, max_size=4), units=st.integers(1, 50))
def test_the_unrealized_pnl_is_the_sum_of_the_legs_pnl(legs, units):
    """Σ side × ratio × (mark − entry) × units × 100 over the legs, whatever the direction: the held
    entry is the held net of the leg entries, as the opening writes it."""
    rows, quotes = [], {}
    for position, (side, ratio, entry, mark, low, high) in enumerate(legs):
        symbol = f"SPY261218C{(500 + position) * 1000:08d}"
        rows.append(TradeLeg(option_symbol=symbol, side=side, ratio=ratio, entry_price=entry))
        quotes[symbol] = LegQuote(bid=min(low, high), ask=max(low, high), mark=mark)
    entry_net = sum(leg.sign * leg.ratio * leg.entry_price for leg in rows)
    direction = "credit" if entry_net < 0 else "debit"
    held = selectors.held_mark(net_direction=direction, legs=rows, quotes=quotes, entry=abs(entry_net), units=units)
    by_legs = sum(leg.sign * leg.ratio * (quotes[leg.option_symbol].mark - leg.entry_price) * units * 100
                  for leg in rows)
    assert held.unrealized_pnl == by_legs
    assume(held.mid > 0)  # a held price below nothing is stored as 0 (the row's prices are never negative)
    sign = 1 if direction == "debit" else -1
    assert held.mid == sign * selectors.net_mark(rows, quotes)


def test_a_held_price_below_nothing_is_stored_as_zero_and_the_pnl_is_not_cut():
    """A long butterfly whose wings bid nothing: selling it at the natural sides costs 0.30, its mid is −0.13, and the
    row keeps 0; its P&L still counts the real net mark."""
    legs = [TradeLeg(option_symbol="A", side=LegSide.LONG, ratio=1, entry_price=Decimal("1.00")),
            TradeLeg(option_symbol="B", side=LegSide.SHORT, ratio=2, entry_price=Decimal("0.60")),
            TradeLeg(option_symbol="C", side=LegSide.LONG, ratio=1, entry_price=Decimal("0.30"))]
    quotes = {"A": LegQuote(bid=Decimal(0), ask=Decimal("0.10"), mark=Decimal("0.05")),
              "B": LegQuote(bid=Decimal("0.05"), ask=Decimal("0.15"), mark=Decimal("0.10")),
              "C": LegQuote(bid=Decimal(0), ask=Decimal("0.05"), mark=Decimal("0.02"))}
    held = selectors.held_mark(net_direction="debit", legs=legs, quotes=quotes, entry=Decimal("0.10"), units=1)
    assert (held.mid, held.bid, held.ask) == (Decimal(0), Decimal(0), Decimal("0.05"))  # ask: 0.10 − 0.10 + 0.05
    assert held.unrealized_pnl == Decimal("-23")  # (0.05 − 0.20 + 0.02 − 0.10) × 100


def test_no_mark_without_every_legs_mark():
    legs = [TradeLeg(option_symbol="A", side=LegSide.LONG, ratio=1), TradeLeg(option_symbol="B", side=LegSide.SHORT)]
    quotes = {"A": LegQuote(bid=Decimal(1), ask=Decimal(2), mark=Decimal("1.5")),
              "B": LegQuote(bid=Decimal(1), ask=Decimal(2), mark=None)}
    assert selectors.held_mark(net_direction="debit", legs=legs, quotes=quotes, entry=Decimal(1), units=1) is None
