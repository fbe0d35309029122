"""Expiry settlement: at the close of its expiry day an option still held is settled.

The cutoff is the day's real close (13:00 on an early close; the session before when the expiry
date is a holiday). From the underlying's closing price: out of the money → CLOSED/EXPIRED at 0,
in the money → CLOSED/EXPIRED_ITM at intrinsic value. The trade's working orders are cancelled
first; if the broker reports that an exit (or a close's sell) filled before the cutoff, the
trade closes at that fill instead (`trades.services.trade_expiry_settle` decides; this module
keeps the schedule and the prices). A settled trade is CLOSED, so running this again finds
nothing: idempotent.

A multi-leg trade settles leg by leg, each at its own expiry (`trades.services.spread_expiry_settle`
decides; a calendar keeps its back month). An index option settles in cash at its settlement
value (`brokers.settlement`): a PM-settled root (SPXW, NDXP, RUTW, XSP…) against the close at the
cutoff, an AM-settled one (a standard monthly SPX, NDX, RUT; VIX) against the provider's first
price after the expiry day's open, standing in for the exchange's opening quotation. A single
option follows the same rule (a standard monthly SPX held alone settles at that opening price and
moment; before issue 19 it waited for the 16:00 close).

Pin risk (`pin_risk_watch`): in the last hour before a short leg's cutoff, an underlying within
PIN_RISK_DISTANCE percent of the leg's strike tells the trader once per leg and expiry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings

from brokers.market import Market, default_market
from brokers.occ import OptionContract, intrinsic_value, parse_symbol
from brokers.paper import settle_expired_positions
from brokers.settlement import AM, PM, cash_settled, settlement_style, settles_at
from tradeoptions import tenancy
from trades.models import AccountSettings, Actor, LegSide, PaperTrade, StrategyType, TradeLeg, TradeStatus
from trades.services import (
    InvalidTransition,
    LegSettlementPrice,
    TradeError,
    VersionConflict,
    broker_of,
    pin_risk_alert,
    spread_expiry_settle,
    trade_expiry_settle,
)

from . import clock as market_clock
from .market import closing_price, opening_price
from .marketdata import MarketDataError, MarketDataProvider
from .marketdata.base import underlying_of

if TYPE_CHECKING:
    from .sharding import Shard

logger = logging.getLogger(__name__)
SYSTEM = {"actor": Actor.SYSTEM, "actor_label": "expiry_settlement"}
HELD = (TradeStatus.OPEN, TradeStatus.CLOSING)


@dataclass
class ExpiryReport:
    settled: dict[str, int] = field(default_factory=dict)
    deferred: int = 0


def settle_expiries(*, provider: MarketDataProvider, at: datetime, market: Market | None = None,
                    shard: Shard | None = None) -> ExpiryReport:
    """Settle every held trade whose contract's cutoff has passed by `at` (with `shard`, of that
    shard's accounts only: their paper books, their trades)."""
    market = market or default_market()
    report = ExpiryReport()
    # An expiry date on a holiday or weekend after today is cut off at today's close already
    # (Good Friday moves to Thursday): look at every date before the next session, and let the
    # cutoff decide.
    before_next_session = market_clock.market_date(market_clock.next_open(at))
    with tenancy.system_context():  # a system job over every user's positions; no request reaches it
        # The local paper broker's own books first, so that its cash and positions agree with
        # the trades settled below (Tradier settles its accounts itself).
        settle_expired_positions(market=market, now=at, accounts=shard.of if shard else None)
        held = PaperTrade.objects.filter(status__in=HELD)
        held = shard.of(held) if shard else held
        due = [trade for trade in held.filter(strategy_type=StrategyType.SINGLE, expiry__lt=before_next_session)
               .order_by("id") if settlement_moment(parse_symbol(trade.option_symbol)) <= at]
        spreads = [trade for trade in held.exclude(strategy_type=StrategyType.SINGLE)
                   .filter(legs__expiry__lt=before_next_session, legs__exit_reason="").distinct()
                   .prefetch_related("legs").order_by("id") if _due_legs(trade, at)]
        settings_of = {row.owner_id: row for row in AccountSettings.objects.filter(
            owner_id__in={trade.owner_id for trade in due + spreads})}
    if not due and not spreads:
        return report
    prices = SettlementPrices(provider)
    for trade in due:
        contract = parse_symbol(trade.option_symbol)
        underlying = prices.of(contract)
        if underlying is None:
            logger.error("expiry: no settlement price for %s on %s; trade %s waits", trade.ticker, trade.expiry,
                         trade.pk)
            report.deferred += 1
            continue
        _count(report, _guarded(trade, lambda trade=trade, contract=contract, underlying=underlying: _settle(
            trade, contract, underlying, settings_of.get(trade.owner_id), market)))
    for trade in spreads:
        _count(report, _guarded(trade, lambda trade=trade: _settle_spread(
            trade, _due_legs(trade, at), prices, settings_of.get(trade.owner_id), market)))
    return report


def settlement_moment(contract: OptionContract) -> datetime:
    """When the contract's settlement value is fixed: its expiry cutoff, or for an AM-settled index
    option the open of that session (`brokers.settlement.settles_at`)."""
    return settles_at(contract.root, market_clock.expiry_cutoff(contract.expiry), market_clock.next_open)


class SettlementPrices:
    """The underlying's settlement price per (underlying, expiry, AM/PM), each asked for once:
    the close at the cutoff (one daily bar), or an AM root's first price after the open."""

    def __init__(self, provider: MarketDataProvider) -> None:
        self.provider = provider
        self.known: dict[tuple, Decimal | None] = {}

    def of(self, contract: OptionContract) -> Decimal | None:
        underlying, style = underlying_of(contract), settlement_style(contract.root)
        key = (underlying, contract.expiry, style)
        if key not in self.known:
            self.known[key] = (opening_price(self.provider, underlying, settlement_moment(contract)) if style == AM
                               else closing_price(self.provider, underlying, contract.expiry))
        return self.known[key]


def _due_legs(trade: PaperTrade, at: datetime) -> list[TradeLeg]:
    return [leg for leg in trade.legs.all()
            if not leg.exit_reason and settlement_moment(parse_symbol(leg.option_symbol)) <= at]


def _guarded(trade: PaperTrade, settle) -> str | None:
    try:
        with tenancy.acting_as(trade.owner_id):
            return settle()
    except (VersionConflict, InvalidTransition, TradeError) as error:
        logger.info("expiry: trade %s not settled this time (%s)", trade.pk, error)
        return None


def _count(report: ExpiryReport, reason: str | None) -> None:
    if reason is None:
        report.deferred += 1
    else:
        report.settled[str(reason)] = report.settled.get(str(reason), 0) + 1


def _settle(trade: PaperTrade, contract: OptionContract, underlying: Decimal, account: AccountSettings | None,
            market: Market) -> str | None:
    """The facts (the broker, the intrinsic value, the cutoff); the decision is the trades app's."""
    broker = broker_of(account or AccountSettings(owner_id=trade.owner_id), mode=trade.broker_mode, market=market)
    value = intrinsic_value(trade.option_type, trade.strike, underlying)
    style = settlement_style(contract.root)
    reason = trade_expiry_settle(trade=trade, broker=broker, value=value, cutoff=settlement_moment(contract),
                                 payload={"underlying_close" if style == PM else "underlying_opening": underlying},
                                 **SYSTEM)
    if reason is not None:
        logger.info("expiry: trade %s closed %s (underlying %s, intrinsic %s)", trade.pk, reason, underlying, value)
    return reason


def _settle_spread(trade: PaperTrade, legs: list[TradeLeg], prices: SettlementPrices,
                   account: AccountSettings | None, market: Market) -> str | None:
    """Each due leg's settlement price (a leg without one yet waits), then the trades app decides."""
    priced = {}
    for leg in legs:
        contract = parse_symbol(leg.option_symbol)
        underlying = prices.of(contract)
        if underlying is None:
            logger.error("expiry: no settlement price for %s on %s; leg %s of trade %s waits",
                         underlying_of(contract), contract.expiry, leg.option_symbol, trade.pk)
            continue
        priced[leg.option_symbol] = LegSettlementPrice(underlying=underlying, at=settlement_moment(contract))
    if not priced:
        return None
    broker = broker_of(account or AccountSettings(owner_id=trade.owner_id), mode=trade.broker_mode, market=market)
    reason = spread_expiry_settle(trade=trade, broker=broker, prices=priced, **SYSTEM)
    if reason is not None:
        logger.info("expiry: trade %s legs %s settled (%s)", trade.pk, sorted(priced), reason)
    return reason


# --- Pin risk ---------------------------------------------------------------------------------

PIN_RISK_WINDOW = timedelta(hours=1)
# A short leg's last trading day lies at most this far before its expiry date (an AM-settled
# monthly's is the session before; a holiday can push that back over a weekend).
LAST_TRADE_LOOKAHEAD = timedelta(days=5)
PIN_RISK_SYSTEM = {"actor": Actor.SYSTEM, "actor_label": "pin_risk"}


def last_trading_moment(contract: OptionContract) -> datetime:
    """When a physically settled contract stops trading: its expiry cutoff. (Pin risk leaves
    cash-settled index options out, so an AM-settled root's earlier last trading day never
    comes up here.)"""
    return market_clock.expiry_cutoff(contract.expiry)


def pin_risk_watch(*, provider: MarketDataProvider, at: datetime, shard: Shard | None = None) -> int:
    """Tell traders about short legs whose underlying is near the strike in the last hour before
    the leg stops trading (12:00-13:00 on an early close): once per leg and expiry (the trades
    app remembers). Short legs of cash-settled index options are left out: no shares can be
    delivered, so there is no assignment to be unsure of. Returns the alerts sent now."""
    distance = _pin_risk_distance()
    legs = _pin_risk_legs(at, shard)
    if not legs:
        return 0
    tickers = sorted({underlying_of(parse_symbol(leg.option_symbol)) for leg in legs})
    try:
        prices = {ticker: quote.last for ticker, quote in provider.underlying_quotes(tickers).items()}
    except MarketDataError as error:
        logger.warning("pin risk: no underlying prices this cycle: %s", error)
        return 0
    told = 0
    for leg in legs:
        contract = parse_symbol(leg.option_symbol)
        price = prices.get(underlying_of(contract))
        if price is None:
            continue
        with tenancy.acting_as(leg.owner_id):
            told += pin_risk_alert(trade=leg.trade, leg=leg, underlying=price, cutoff=last_trading_moment(contract),
                                   distance_pct=distance, **PIN_RISK_SYSTEM)
    return told


def _pin_risk_distance() -> Decimal:
    return Decimal(str(getattr(settings, "PIN_RISK_DISTANCE", "0") or "0"))


def _pin_risk_legs(at: datetime, shard: Shard | None = None) -> list[TradeLeg]:
    """The short legs in their last hour of trading (of the shard's accounts, with `shard`)."""
    today = market_clock.market_date(at)
    close = market_clock.session_for(today).close
    # Every cutoff is a session's close: outside today's last hour no leg can be due (no query).
    if _pin_risk_distance() <= 0 or close is None or not close - PIN_RISK_WINDOW <= at < close:
        return []
    with tenancy.system_context():
        short = TradeLeg.objects.filter(trade__status__in=HELD, side=LegSide.SHORT, exit_reason="", expiry__gte=today,
                                        expiry__lte=today + LAST_TRADE_LOOKAHEAD)
        return [leg for leg in (shard.of(short) if shard else short).select_related("trade")
                .order_by("trade_id", "position") if _in_last_hour(parse_symbol(leg.option_symbol), at)]


def pin_risk_tickers(*, at: datetime) -> list[str]:
    """The underlyings pin risk asks the price of at `at` (every account's): what a sharded order
    cycle's coordinator quotes for its shards."""
    return sorted({underlying_of(parse_symbol(leg.option_symbol)) for leg in _pin_risk_legs(at)})


def _in_last_hour(contract: OptionContract, at: datetime) -> bool:
    if cash_settled(contract.root):
        return False
    last = last_trading_moment(contract)
    return last - PIN_RISK_WINDOW <= at < last
