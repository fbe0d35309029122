"""How an option held to expiry settles: in shares (equity and ETF options) or in cash (index
options), and for an index, against which price (the expiry day's opening, AM, or its close, PM).

Pure facts and arithmetic, shared by the local paper broker's books (`brokers.paper`) and the
trade rows (`trades.services.expiry`), so both settle a contract at the same value and moment.

**Sources.** /work/shared/reference (the Tradier/ORATS reference) names the roots SPX and SPXW
(`SPXW250725C05900000` vs monthly `SPX250725C05900000`) and says weekly index options trade under
their own roots (RUT/RUTW, SPX/SPXW), but it states NO settlement facts: which roots settle in
cash, AM or PM, and the last trading day of an AM-settled contract are NOT in the reference. The
table below is the exchanges' published contract terms as commonly known (Cboe: SPX, SPXW, XSP,
RUT, RUTW, VIX, DJX, OEX, XEO; Nasdaq: NDX, NDXP), written down here from general knowledge and
UNCONFIRMED against a source in this project. A root missing from it is treated as physically
settled (shares), which is what every equity and ETF option is.

**AM settlement.** A standard monthly SPX, NDX, RUT (and VIX, DJX) option stops trading at the
close of the session *before* its expiry date and settles at the Special Opening Quotation: the
index computed from each component's opening print on the expiry day. No source here publishes
the SOQ; for paper the underlying's first price after the expiry day's open stands in for it
(`first price after the open`), and the trade's event log says so.

**PM settlement.** A weekly (SPXW, NDXP, RUTW), XSP, OEX or XEO option trades until the close on
its expiry date (13:00 on an early close) and settles at the index's official close, for paper
the provider's last price at that close (`monitoring.market.closing_price`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from .occ import intrinsic_value

AM, PM = "AM", "PM"

# root → (the index it settles on, AM or PM). UNCONFIRMED in /work/shared/reference (see above).
CASH_SETTLED_ROOTS: dict[str, tuple[str, str]] = {
    "SPX": ("SPX", AM),     # standard monthly (third Friday); SPX root weeklies do not exist
    "SPXW": ("SPX", PM),    # weeklies and end-of-month, and the daily expiries
    "SPXPM": ("SPX", PM),   # the older PM-settled monthly root
    "XSP": ("XSP", PM),     # Mini-SPX: PM-settled monthly and weekly
    "XSPW": ("XSP", PM),
    "NDX": ("NDX", AM),     # standard monthly
    "NDXP": ("NDX", PM),    # PM-settled weeklies and dailies
    "RUT": ("RUT", AM),     # standard monthly
    "RUTW": ("RUT", PM),    # weeklies
    "VIX": ("VIX", AM),     # monthly, expires on a Wednesday, settles at the SOQ of that morning
    "VIXW": ("VIX", AM),    # weeklies, settled like the monthly
    "DJX": ("DJX", AM),     # Dow Jones (1/100): AM-settled
    "OEX": ("OEX", PM),     # S&P 100, American style: exercise settles at the close
    "XEO": ("XEO", PM),     # S&P 100, European style
}

# How a leg left the position at expiry (the values of trades.models.LegExit).
EXPIRED, EXERCISED, ASSIGNED, CASH_SETTLED = "EXPIRED", "EXERCISED", "ASSIGNED", "CASH_SETTLED"

# The AM settlement moment from the cutoff's session: the open of the session whose close is the
# cutoff (every open lies between 4 and 6.5 hours before its close, and the previous close more
# than 16 hours before the open).
_BEFORE_THE_CLOSE = timedelta(hours=12)


def cash_settled(root: str) -> bool:
    """Does an option of this root settle in cash (an index) rather than in shares?"""
    return root in CASH_SETTLED_ROOTS


def settlement_style(root: str) -> str:
    """AM or PM: which of the expiry day's prices the contract settles against. A physically
    settled option is exercised against the close, so it counts as PM."""
    return CASH_SETTLED_ROOTS.get(root, (root, PM))[1]


def settles_at(root: str, cutoff: datetime, next_open) -> datetime:
    """When a contract's settlement value is fixed, from its expiry cutoff (the close of its
    expiry session) and the calendar's `next_open` (first session open strictly after a moment):
    that open for an AM-settled root, the cutoff itself for every other."""
    if settlement_style(root) == AM:
        return next_open(cutoff - _BEFORE_THE_CLOSE)
    return cutoff


@dataclass(frozen=True)
class LegSettlement:
    """One leg at expiry: `value` per share (intrinsic to the cent, what it is settled at) and how
    it left (`reason`, a `trades.models.LegExit` value)."""

    value: Decimal
    reason: str


def leg_settlement(*, root: str, option_type: str, strike: Decimal, is_long: bool,
                   underlying: Decimal) -> LegSettlement:
    """How a leg settles against the underlying's settlement price: out of the money it expires
    worthless; in the money an index option is settled in cash, an equity option is exercised
    (long) or assigned (short), in every case at intrinsic value to the cent."""
    value = intrinsic_value(option_type, strike, underlying)
    if not value:  # out of the money, or by less than a cent: not exercised
        return LegSettlement(value, EXPIRED)
    if cash_settled(root):
        return LegSettlement(value, CASH_SETTLED)
    return LegSettlement(value, EXERCISED if is_long else ASSIGNED)
