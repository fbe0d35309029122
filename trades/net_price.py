"""A trade's price in its own direction: the one convention every multi-leg reader and writer shares.

A debit trade (every single option, a debit spread) is long its price: it pays `entry_price` and is
worth `current_price`; it gains when the price rises. A credit trade (a credit spread, a short
straddle) is short its price: it receives `entry_price` (the credit, positive) and `current_price`
is what buying every leg back costs (positive); it gains when that cost falls. So a trade row keeps
every price positive, and:

- held price = net for a debit, −net for a credit, where net = Σ side × ratio × leg price
  (trades.selectors.net_mark);
- P&L = sign × (price − entry) × units × 100, sign +1 for a debit, −1 for a credit;
- a debit trade's stop sits below its entry and its target above; a credit trade's the reverse
  (the target: buy back cheaper; the stop: buy back dearer).

Pure: Decimal in, Decimal out; no database, broker or clock. docs/spreads.md explains the lifecycle.
"""

from __future__ import annotations

from decimal import Decimal

DEBIT = "debit"
CREDIT = "credit"
SHARES_PER_CONTRACT = 100


def direction_sign(net_direction: str) -> int:
    """+1 for a debit trade (long its price), −1 for a credit trade (short it)."""
    if net_direction not in (DEBIT, CREDIT):
        raise ValueError(f"unknown net direction {net_direction!r}")
    return 1 if net_direction == DEBIT else -1


def direction_of(net: Decimal) -> str:
    """The direction a signed net premium opens (0, an even trade, counts as a debit of nothing)."""
    return CREDIT if net < 0 else DEBIT


def held_price(net_direction: str, net: Decimal | None) -> Decimal | None:
    """The trade's price in its own direction from a signed net (None stays None)."""
    return None if net is None else net * direction_sign(net_direction)


def pnl(net_direction: str, *, entry: Decimal, price: Decimal, units: int) -> Decimal:
    """Dollars gained from `entry` to `price` (both held prices, per share) on `units` units."""
    return direction_sign(net_direction) * (price - entry) * units * SHARES_PER_CONTRACT


def stop_crossed(net_direction: str, *, price: Decimal, stop: Decimal) -> bool:
    """The held price has reached the stop: at or below it for a debit, at or above for a credit."""
    return price <= stop if net_direction == DEBIT else price >= stop


def target_crossed(net_direction: str, *, price: Decimal, target: Decimal) -> bool:
    """The held price has reached the target: at or above it for a debit, at or below for a credit."""
    return price >= target if net_direction == DEBIT else price <= target


def exits_in_order(net_direction: str, *, entry: Decimal, stop: Decimal, target: Decimal) -> bool:
    """The stop lies on the losing side of the entry and the target on the winning side."""
    if net_direction == DEBIT:
        return stop < entry < target
    return target < entry < stop


def target_at_share_of_max_profit(net_direction: str, *, entry: Decimal, max_profit: Decimal,
                                  percent: Decimal) -> Decimal:
    """The held price at which `percent` of the max profit per share is made: entry + that share for
    a debit, entry − it for a credit (a credit's max profit per share is the credit itself)."""
    return entry + direction_sign(net_direction) * max_profit * percent / 100


def stop_at_credit_multiple(*, credit: Decimal, multiple: Decimal) -> Decimal:
    """A credit trade's stop as a multiple of the credit: buying back costs `multiple` × the credit
    (2 = buy back at twice what was received, losing one credit)."""
    return credit * multiple
