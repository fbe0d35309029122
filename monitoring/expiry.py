"""Expiry settlement: at the close of its expiry day an option still held is settled.

The cutoff is the day's real close (13:00 on an early close; the session before when the expiry
date is a holiday). From the underlying's closing price: out of the money → CLOSED/EXPIRED at 0,
in the money → CLOSED/EXPIRED_ITM at intrinsic value. The trade's working orders are cancelled
first; if the broker reports that an exit (or a close's sell) filled before the cutoff, the
trade closes at that fill instead (`trades.services.trade_expiry_settle` decides; this module
keeps the schedule and the prices). A settled trade is CLOSED, so running this again finds
nothing: idempotent.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from brokers.market import Market, default_market
from brokers.occ import intrinsic_value, parse_symbol
from brokers.paper import settle_expired_positions
from tradeoptions import tenancy
from trades.models import AccountSettings, Actor, PaperTrade, TradeStatus
from trades.services import InvalidTransition, TradeError, VersionConflict, broker_of, trade_expiry_settle

from . import clock as market_clock
from .market import closing_price
from .marketdata import MarketDataProvider
from .marketdata.base import underlying_of

logger = logging.getLogger(__name__)
SYSTEM = {"actor": Actor.SYSTEM, "actor_label": "expiry_settlement"}
HELD = (TradeStatus.OPEN, TradeStatus.CLOSING)


@dataclass
class ExpiryReport:
    settled: dict[str, int] = field(default_factory=dict)
    deferred: int = 0


def settle_expiries(*, provider: MarketDataProvider, at: datetime, market: Market | None = None) -> ExpiryReport:
    """Settle every held trade whose contract's cutoff has passed by `at`."""
    market = market or default_market()
    report = ExpiryReport()
    # An expiry date on a holiday or weekend after today is cut off at today's close already
    # (Good Friday moves to Thursday): look at every date before the next session, and let the
    # cutoff decide.
    before_next_session = market_clock.market_date(market_clock.next_open(at))
    with tenancy.system_context():  # a system job over every user's positions; no request reaches it
        # The local paper broker's own books first, so that its cash and positions agree with
        # the trades settled below (Tradier settles its accounts itself).
        settle_expired_positions(market=market, now=at)
        due = [trade for trade in PaperTrade.objects.filter(status__in=HELD, expiry__lt=before_next_session)
               .order_by("id") if market_clock.expiry_cutoff(trade.expiry) <= at]
        settings_of = {row.owner_id: row for row in
                       AccountSettings.objects.filter(owner_id__in={trade.owner_id for trade in due})}
    if not due:
        return report
    closes = _closing_prices(provider, due)
    for trade in due:
        underlying = closes.get((underlying_of(parse_symbol(trade.option_symbol)), trade.expiry))
        if underlying is None:
            logger.error("expiry: no closing price for %s on %s; trade %s waits", trade.ticker, trade.expiry, trade.pk)
            report.deferred += 1
            continue
        try:
            with tenancy.acting_as(trade.owner_id):
                reason = _settle(trade, underlying, settings_of.get(trade.owner_id), market)
        except (VersionConflict, InvalidTransition, TradeError) as error:
            logger.info("expiry: trade %s not settled this time (%s)", trade.pk, error)
            reason = None
        if reason is None:
            report.deferred += 1
        else:
            report.settled[str(reason)] = report.settled.get(str(reason), 0) + 1
    return report


def _closing_prices(provider: MarketDataProvider, trades: list[PaperTrade]) -> dict:
    """The underlying's close on each expiry day: one daily bar per (underlying, day)."""
    wanted = defaultdict(set)
    for trade in trades:
        wanted[underlying_of(parse_symbol(trade.option_symbol))].add(trade.expiry)
    closes = {}
    for underlying, days in wanted.items():
        for day in days:
            close = closing_price(provider, underlying, day)
            if close is not None:
                closes[(underlying, day)] = close
    return closes


def _settle(trade: PaperTrade, underlying: Decimal, account: AccountSettings | None, market: Market) -> str | None:
    """The facts (the broker, the intrinsic value, the cutoff); the decision is the trades app's."""
    broker = broker_of(account or AccountSettings(owner_id=trade.owner_id), mode=trade.broker_mode, market=market)
    value = intrinsic_value(trade.option_type, trade.strike, underlying)
    reason = trade_expiry_settle(trade=trade, broker=broker, value=value,
                                 cutoff=market_clock.expiry_cutoff(trade.expiry),
                                 payload={"underlying_close": underlying}, **SYSTEM)
    if reason is not None:
        logger.info("expiry: trade %s closed %s (underlying %s, intrinsic %s)", trade.pk, reason, underlying, value)
    return reason
