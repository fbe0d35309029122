"""A trade's parts (docs/pnl.md, "Partial closes"): each part sold is a row, and a closed trade's
P&L, gross and net, is their sum to the cent, whatever the rounding of its commissions."""

from decimal import Decimal

from tests.factories import ClosedTradeFactory
from tradeoptions import tenancy
from trades import services
from trades.models import Actor, EventKind, ExitPartReason, TradeExitPart, TradeStatus

from .conftest import CONTRACT, EXPIRY


def _open(user, market, qty=3):
    data = services.TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=EXPIRY,
                                   qty=qty, sl_price=Decimal("4.00"), tp_price=Decimal("6.50"))
    trade = services.trade_open(user=user, data=data, market=market, actor=Actor.SYSTEM, actor_label="scanner").trade
    assert trade.status == TradeStatus.OPEN
    return trade


def _parts(trade_id):
    with tenancy.system_context():
        return list(TradeExitPart.objects.filter(trade_id=trade_id).order_by("filled_at", "id"))


def test_parts_add_up_to_the_trade_exactly_when_commissions_do_not_divide(trader, market):
    """A third of a cent per contract: every part rounds, the final part takes what is left."""
    services.account_settings_update(user=trader, changes={"commission_per_contract": Decimal("0.3333")})
    trade = _open(trader, market)
    for bid in ("4.51", "4.77"):
        market.set_quote(CONTRACT, bid, "4.90")
        trade = services.trade_part_sell(user=trader, trade_id=trade.pk, version=trade.version, quantity=1,
                                         reason=ExitPartReason.PARTIAL_CLOSE, market=market).trade
    assert (trade.status, trade.quantity_open) == (TradeStatus.OPEN, 1)
    market.set_quote(CONTRACT, "5.03", "5.20")
    closed = services.trade_close(user=trader, trade_id=trade.pk, version=trade.version, market=market).trade
    parts = _parts(trade.pk)
    assert [(p.quantity, p.price, p.reason) for p in parts] == [
        (1, Decimal("4.51"), ExitPartReason.PARTIAL_CLOSE), (1, Decimal("4.77"), ExitPartReason.PARTIAL_CLOSE),
        (1, Decimal("5.03"), ExitPartReason.FINAL)]
    assert [p.pnl_gross for p in parts] == [Decimal("21.00"), Decimal("47.00"), Decimal("73.00")]
    assert closed.realized_pnl == Decimal("141.00") == sum(p.pnl_gross for p in parts)
    assert closed.realized_pnl_net == sum(p.pnl_net for p in parts)
    assert closed.commission_total + closed.fees == sum(p.commission for p in parts)
    assert parts[0].commission == Decimal("0.66")  # 0.33 to sell, a third of the 1.00 entry


def test_each_part_is_in_the_audit_log_by_whoever_sold_it(trader, market):
    trade = _open(trader, market, qty=2)
    market.set_quote(CONTRACT, "4.60", "4.80")
    services.trade_part_sell(user=trader, trade_id=trade.pk, version=trade.version, quantity=1,
                             reason=ExitPartReason.PARTIAL_CLOSE, market=market)
    with tenancy.acting_as(trader.pk):
        [event] = [e for e in trade.events.all() if "part" in e.payload]
    assert (event.kind, event.actor, event.actor_user, event.actor_label) == (
        EventKind.ORDER_FILLED, Actor.USER, trader, "close")
    assert event.payload["part"]["quantity"] == 1 and event.payload["part"]["reason"] == "PARTIAL_CLOSE"


def test_a_trade_closed_before_parts_existed_reads_as_one_part(api_as, trader):
    old = ClosedTradeFactory(owner=trader, qty=2, filled_qty=2, entry_price=Decimal("4.30"),
                             exit_commission=Decimal("1.30"), entry_commission=Decimal("1.30"))
    body = api_as(trader).get(f"/api/trades/{old.pk}").json()
    assert body["quantity_open"] == 0
    [part] = body["parts"]
    assert (part["quantity"], part["reason"], part["pnl_gross"], part["commission"], part["pnl_net"]) == (
        2, "FINAL", "140.00", "2.60", "137.40")
    assert part["pnl_net"] == body["realized_pnl_net"]
    assert [(h["change"], h["quantity_open"]) for h in body["quantity_history"]] == [(2, 2), (-2, 0)]
