"""The monitor as a spread's bracket: each cycle, an OPEN multi-leg trade whose held mark crossed its
stop or target is closed (docs/spreads.md, "No bracket at the broker").

The held mark is `current_price`, written by the marks with every leg's quote; a trade whose legs
are not all marked yet is not judged (a mark made of some legs is no price). The crossing is
`net_price.stop_crossed` / `target_crossed` in the trade's own direction; the stop wins when both
are (a mark cannot be past both unless the exits are crossed over, and then getting out is what
matters). The close itself is `closing.trade_net_exit_close` with the trade's version, so a close
already under way (the trader's, or an earlier cycle's) is a conflict and nothing is sent twice.
A close the broker refused leaves the trade OPEN and the watch asks again while the mark stays past
the exit, but not every cycle: each ask that did not close the trade puts the next one off (one
minute, doubling up to fifteen, as `protection.bracket_protect` does for a single option's
bracket), so a broker that keeps refusing is not sent an order, nor the trade's log two events,
every cycle. The schedule lives in the cache: losing it costs one early ask, never a double
order (the close's version and tag see to that). A trader's own close is never put off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Exists, OuterRef, QuerySet

from brokers.base import BrokerError
from brokers.market import Market
from tradeoptions import tenancy
from trades.models import CloseReason, PaperTrade, StrategyType, TradeLeg, TradeStatus
from trades.net_price import stop_crossed, target_crossed

from .closing import trade_net_exit_close
from .errors import TradeError

logger = logging.getLogger(__name__)

FIRST_ASK_AGAIN = timedelta(minutes=1)
LONGEST_ASK_AGAIN = timedelta(minutes=15)
_SCHEDULE_TTL = 3600  # seconds: a schedule idle this long starts again at one minute


@dataclass(frozen=True)
class NetExitsReport:
    watched: int = 0
    closes_asked: int = 0
    closed: int = 0


def net_exit_reason(trade: PaperTrade) -> str | None:
    """SL_HIT or TP_HIT when the trade's held mark is at or past its stop or its target, else None."""
    price = trade.current_price
    if price is None:
        return None
    if stop_crossed(trade.net_direction, price=price, stop=trade.sl_price):
        return CloseReason.SL_HIT
    if target_crossed(trade.net_direction, price=price, target=trade.tp_price):
        return CloseReason.TP_HIT
    return None


def spread_exits_watch(*, market: Market, broker_modes: list[str] | None = None,
                       accounts: Callable[[QuerySet], QuerySet] | None = None) -> NetExitsReport:
    """Close every OPEN multi-leg trade whose held mark crossed its stop or target (one query to
    find them, across tenants, or across the `accounts` given: a sharded monitor cycle's; each
    close as its owner)."""
    unmarked = TradeLeg.objects.filter(trade_id=OuterRef("pk"), marked_at__isnull=True, exit_reason="")
    with tenancy.system_context():
        watched = (PaperTrade.objects.filter(status=TradeStatus.OPEN, part_pending_qty=0, current_price__isnull=False)
                   .exclude(strategy_type=StrategyType.SINGLE).exclude(Exists(unmarked)))
        if broker_modes is not None:
            watched = watched.filter(broker_mode__in=broker_modes)
        if accounts is not None:
            watched = accounts(watched)
        trades = list(watched.select_related("owner").order_by("id"))
    asked = closed = 0
    at = market.now()
    inside = []
    for trade in trades:
        reason = net_exit_reason(trade)
        if reason is None:
            inside.append(trade.pk)
            continue
        if not _ask_due(trade.pk, at):
            continue
        because = {"held_mark": format(trade.current_price, "f"), "sl_price": format(trade.sl_price, "f"),
                   "tp_price": format(trade.tp_price, "f"), "direction": trade.net_direction}
        try:
            result = trade_net_exit_close(user=trade.owner, trade_id=trade.pk, version=trade.version, reason=reason,
                                          because=because, market=market)
        except (TradeError, BrokerError, PaperTrade.DoesNotExist) as error:  # the next cycle asks again
            logger.warning("net exit of trade %s not sent: %s", trade.pk, error)
            continue
        asked += 1
        if result.problem is not None:
            logger.warning("net exit of trade %s: %s", trade.pk, result.problem)
        if result.trade.status != TradeStatus.CLOSED:  # refused now, or maybe on the sync's later look
            _ask_put_off(trade.pk, at)
        closed += int(result.trade.status == TradeStatus.CLOSED)
    if inside:  # back inside its exits: a later crossing starts the backoff afresh (one round trip)
        cache.delete_many([_key(trade_id) for trade_id in inside])
    return NetExitsReport(len(trades), asked, closed)


# --- the backoff of a refused close ---------------------------------------------------------------


def _key(trade_id: int) -> str:
    return f"spread-close-retry:{trade_id}"


def _ask_due(trade_id: int, at: datetime) -> bool:
    schedule = cache.get(_key(trade_id))
    return not schedule or at >= datetime.fromisoformat(schedule["due"])


def _ask_put_off(trade_id: int, at: datetime) -> None:
    """Count an ask that did not close the trade and put the next one off: 1, 2, 4, 8, then 15 minutes
    (a close still working is not watched meanwhile; one refused on a later look waits its turn)."""
    refusals = (cache.get(_key(trade_id)) or {}).get("refusals", 0) + 1
    delay = min(FIRST_ASK_AGAIN * 2 ** min(refusals - 1, 4), LONGEST_ASK_AGAIN)
    cache.set(_key(trade_id), {"refusals": refusals, "due": (at + delay).isoformat()}, _SCHEDULE_TTL)
