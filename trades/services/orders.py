"""Talking to the trader's broker on behalf of a trade: order requests, bracket ids, errors.

Everything here speaks the `brokers.base` contract, so it works the same with the local paper
broker, the Tradier sandbox and Tradier live.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from brokers.base import (
    BrokerAuthError,
    BrokerError,
    BrokerForbidden,
    BrokerProvider,
    BrokerRateLimited,
    BrokerUnavailable,
    Order,
    OrderDuration,
    OrderOutcomeUnknown,
    OrderPurpose,
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderType,
    order_tag,
)
from brokers.factory import LiveTradingDisabled, broker_for
from brokers.market import Market
from brokers.models import BrokerMode
from trades.models import AccountSettings, PaperTrade

from .errors import (
    BrokerAccountForbidden,
    BrokerDown,
    BrokerNotConfigured,
    BrokerOutcomeUnknown,
    BrokerReauthenticate,
    LiveTradingOff,
    OrderRefused,
    TradeError,
)


@dataclass(frozen=True)
class _AccountInMode:
    """The account as `broker_for` reads it, in the mode a trade was placed in: a trade is always
    managed at the broker that holds it, even after the trader switched modes."""

    account: AccountSettings
    broker_mode: str

    @property
    def owner_id(self) -> int:
        return self.account.owner_id

    @property
    def tradier_account_id(self) -> str:
        return self.account.tradier_account_id

    @property
    def account_balance(self) -> Decimal:
        return self.account.account_balance

    @property
    def commission_rate(self) -> Decimal:
        return self.account.commission_rate

    def broker_token(self, mode: str) -> str:
        return self.account.broker_token(mode)


def broker_of(account: AccountSettings, *, mode: str | None = None, market: Market | None = None) -> BrokerProvider:
    """The account's broker (in `mode`, default the account's), or a TradeError saying why it
    cannot be used. Nothing is sent to the broker yet."""
    try:
        return broker_for(_AccountInMode(account, mode or account.broker_mode), market=market)
    except LiveTradingDisabled as error:
        raise LiveTradingOff(str(error)) from None
    except BrokerAuthError as error:
        raise BrokerReauthenticate(str(error), refused_by_broker=False) from None
    except BrokerError as error:
        raise BrokerNotConfigured(str(error)) from None


FORBIDDEN_TOLD = ("Tradier does not allow this account to trade right now (403 Forbidden). Your token is fine: the "
                 "account may not be approved for options, or Tradier restricted it. Sort it out with Tradier; new "
                 "trades are refused here until Tradier answers this account again or you change its settings.")


CLOSE_FORBIDDEN_TOLD = (
    "Tradier does not allow this account to trade right now (403 Forbidden), so nothing was sold: the position is "
    "still open, and its stop-loss and take-profit still work at Tradier. Trading on this account is blocked here "
    "until that is fixed with Tradier or you change its Tradier settings (the token is fine: the account may not be "
    "approved for options, or Tradier restricted it). To get out before then, close the position at Tradier.")


def as_trade_error(error: BrokerError, *, trade: PaperTrade | None = None) -> TradeError:
    """The broker's failure in the trader's terms. Messages of broker errors never carry tokens."""
    if isinstance(error, BrokerAuthError):
        return BrokerReauthenticate(
            f"The broker refused the token: re-authenticate in your settings. ({error})",
            trade=trade, refused_by_broker=True,
        )
    if isinstance(error, BrokerForbidden):
        return BrokerAccountForbidden(FORBIDDEN_TOLD, trade=trade)
    if isinstance(error, OrderRejected):
        return OrderRefused(error.reason, trade=trade)
    if isinstance(error, OrderOutcomeUnknown):
        return BrokerOutcomeUnknown(str(error), trade=trade)
    if isinstance(error, BrokerRateLimited):
        return BrokerDown(f"The broker is throttling this account's requests, nothing was placed: {error}",
                          trade=trade)
    if isinstance(error, BrokerUnavailable):
        return BrokerDown(f"The broker is not available, nothing was placed: {error}", trade=trade)
    return BrokerOutcomeUnknown(f"The broker answered unexpectedly: {error}", trade=trade)


def was_not_placed(error: BrokerError) -> bool:
    """True when the broker certainly holds no order from the failed call."""
    if isinstance(error, OrderOutcomeUnknown):
        return False
    return isinstance(error, OrderRejected | BrokerAuthError | BrokerForbidden | BrokerUnavailable | BrokerRateLimited)


def trade_order_tag(trade: PaperTrade, purpose: OrderPurpose | str) -> str:
    """The tag of a trade's order: `to-<id>-<purpose>`, marked `live-` when the trade is live."""
    return order_tag(trade.pk, purpose, live=trade.broker_mode == BrokerMode.TRADIER_LIVE)


def trade_order_ids(trade: PaperTrade) -> list[str]:
    """The broker ids a trade knows of its orders: entry, bracket (or its legs, when no OCO head
    is known), close, and the sell of a part being sold."""
    ids = [trade.entry_order_id, trade.bracket_order_id, trade.close_order_id, trade.part_order_id]
    if not trade.bracket_order_id:
        ids += [trade.sl_order_id, trade.tp_order_id]
    return [order_id for order_id in ids if order_id]


def entry_request(trade: PaperTrade) -> OrderRequest:
    limit = trade.entry_type == "limit"
    return OrderRequest(
        option_symbol=trade.option_symbol, side=OrderSide.BUY_TO_OPEN, quantity=trade.qty,
        order_type=OrderType.LIMIT if limit else OrderType.MARKET, tag=trade_order_tag(trade, OrderPurpose.ENTRY),
        duration=OrderDuration.DAY, limit_price=trade.planned_entry_price if limit else None,
    )


def exit_requests(trade: PaperTrade, *, quantity: int, sl: Decimal, tp: Decimal) -> tuple[OrderRequest, OrderRequest]:
    """The bracket: a stop sell at the SL and a limit sell at the TP, good till cancelled."""
    common = {"option_symbol": trade.option_symbol, "side": OrderSide.SELL_TO_CLOSE, "quantity": quantity,
              "duration": OrderDuration.GTC}
    return (
        OrderRequest(**common, order_type=OrderType.STOP, stop_price=sl,
                     tag=trade_order_tag(trade, OrderPurpose.STOP_LOSS)),
        OrderRequest(**common, order_type=OrderType.LIMIT, limit_price=tp,
                     tag=trade_order_tag(trade, OrderPurpose.TAKE_PROFIT)),
    )


def close_request(trade: PaperTrade, *, quantity: int | None = None,
                  limit_price: Decimal | None = None) -> OrderRequest:
    """A sell-to-close of `quantity` (default: every contract the trade holds), at market, or at
    `limit_price` when one is given."""
    return OrderRequest(
        option_symbol=trade.option_symbol, side=OrderSide.SELL_TO_CLOSE,
        quantity=trade.held_qty if quantity is None else quantity,
        order_type=OrderType.MARKET if limit_price is None else OrderType.LIMIT, limit_price=limit_price,
        tag=trade_order_tag(trade, OrderPurpose.CLOSE), duration=OrderDuration.DAY,
    )


def split_legs(order: Order) -> tuple[Order | None, Order | None, Order | None]:
    """(entry, stop-loss, take-profit) legs of an OCO or OTOCO order as the broker reports it."""
    entry = next((leg for leg in order.legs if leg.side is not None and leg.side.is_buy), None)
    exits = [leg for leg in order.legs if leg is not entry]
    sl = next((leg for leg in exits if leg.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)), None)
    tp = next((leg for leg in exits if leg.order_type == OrderType.LIMIT), None)
    return entry, sl, tp


def bracket_ids(order: Order) -> dict[str, str]:
    _, sl, tp = split_legs(order)
    return {"bracket_order_id": order.id, "sl_order_id": sl.id if sl else "", "tp_order_id": tp.id if tp else ""}


def order_summary(order: Order) -> dict:
    """What the audit log keeps of an order (no account ids, no tokens)."""
    summary = {"order_id": order.id, "status": order.status.value, "class": order.order_class, "tag": order.tag}
    if order.fill is not None:
        summary["fill"] = {"quantity": order.fill.quantity, "price": str(order.fill.price)}
    if order.reason:
        summary["reason"] = order.reason
    return summary


def place_bracket(broker: BrokerProvider, sl: OrderRequest, tp: OrderRequest, *, attempts: int = 2) -> Order:
    """Place SL/TP as one OCO, trying again once if the broker failed: never after a refusal,
    which a retry would not change, nor when throttled, since the client has waited what it
    could. An attempt whose outcome is unknown is looked up by its tag before the next, so a
    retry can never double the bracket."""
    last: BrokerError | None = None
    for _ in range(attempts):
        try:
            return broker.place_oco_order(sl, tp)
        except (OrderRejected, BrokerRateLimited):  # a throttled broker client has waited all it may
            raise
        except BrokerError as error:
            last = error
            if not was_not_placed(error):
                try:
                    found = broker.find_order_by_tag(sl.tag)
                except BrokerError:
                    found = None
                if found is not None:
                    return found
    raise last
