"""Exit policies end to end at the local paper broker: a trade opened over HTTP with a policy,
quotes moved by hand, the monitor's order cycle run as beat runs it."""

import dataclasses
import importlib
from datetime import date, timedelta
from decimal import Decimal

import pytest

from brokers.base import BrokerAuthError, StopModifyUnsupported
from brokers.models import BrokerMode, PaperFill, PaperOrder
from brokers.paper import LocalPaperBroker
from monitoring import tasks
from monitoring.marketdata import ProviderUnavailable, UnderlyingQuote
from tests.factories import PaperTradeFactory
from tests.fakes.market import HandMadeBars
from tradeoptions import tenancy
from trades.models import Actor, CloseReason, EventKind, PaperTrade, TradeEvent, TradeStatus
from trades.services import ExitDecision

CONTRACT = "SPY261218C00570000"


pytestmark = pytest.mark.usefixtures("fresh_cache", "exit_policy_clock")


def _open(api_as, user, policy):
    body = {"ticker": "SPY", "option_type": "CALL", "strike": "570", "expiry": date(2026, 12, 18).isoformat(),
            "qty": 2, "entry_type": "market", "sl_price": "3.00", "tp_price": "6.50", "strategy": "momentum",
            "exit_policy": policy}
    answer = api_as(user).post("/api/trades", body, format="json")
    assert answer.status_code == 201, answer.json()
    return answer.json()


def _cycle(market, bid, ask, **delta):
    market.set_quote(CONTRACT, bid, ask)
    market.advance(**delta)
    tasks.sync_orders.apply().get()
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=_cycle.trade_id)


def _sells(user):
    with tenancy.system_context():
        return list(PaperFill.objects.filter(owner_id=user.pk, side="sell_to_close"))


def _policy_events(trade_id, **kind):
    with tenancy.system_context():
        return list(TradeEvent.objects.filter(trade_id=trade_id, actor_label="exit-policy", **kind).order_by("id"))


def _moves(trade_id):
    return _policy_events(trade_id, kind=EventKind.BRACKET_ADJUSTED)


def test_a_trailing_stop_follows_the_bid_gently_and_its_one_exit_fills(api_as, trader, market):
    opened = _open(api_as, trader, {"trail_amount": "0.50", "trail_after_pct": "10", "min_step": "0.10"})
    assert opened["entry_price"] == "4.3000" and opened["exit_policy"] == {
        "trail_amount": "0.5", "trail_after_pct": "10", "min_step": "0.1"}
    _cycle.trade_id = opened["id"]

    trade = _cycle(market, "4.60", "4.80", seconds=20)  # +7 %: not trailing yet
    assert trade.sl_price == Decimal("3.00") and trade.exit_high_water == Decimal("4.60")
    bracket = trade.bracket_order_id
    trade = _cycle(market, "5.00", "5.20", seconds=20)  # +16 %: the stop goes to 5.00 - 0.50
    assert (trade.status, trade.sl_price, trade.tp_price) == (TradeStatus.OPEN, Decimal("4.50"), Decimal("6.50"))
    [moved] = _moves(trade.pk)
    assert (moved.kind, moved.actor) == (EventKind.BRACKET_ADJUSTED, Actor.SYSTEM)
    assert moved.payload["from"]["sl_price"] == "3.0000" and moved.payload["to"]["sl_price"] == "4.50"
    assert moved.payload["exit_policy"]["quote"]["bid"] == "5.00"
    assert moved.payload["exit_policy"]["why"] == "trailing"
    # Moved where it rests: the same OCO, one request, no cancel and no new placement.
    assert moved.payload["in_place"] is True and trade.bracket_order_id == bracket
    with tenancy.system_context():
        assert PaperOrder.objects.filter(owner_id=trader.pk, status="canceled").count() == 0

    trade = _cycle(market, "5.60", "5.80", seconds=30)  # inside the interval: not sent, but remembered
    assert trade.sl_price == Decimal("4.50") and trade.exit_high_water == Decimal("5.60")
    trade = _cycle(market, "5.55", "5.75", seconds=40)  # the interval is over: the remembered best counts
    assert trade.sl_price == Decimal("5.10") and len(_moves(trade.pk)) == 2
    trade = _cycle(market, "5.62", "5.80", minutes=2)  # 5.12: less than the 0.10 step
    assert trade.sl_price == Decimal("5.10") and len(_moves(trade.pk)) == 2

    trade = _cycle(market, "5.00", "5.20", minutes=1)  # through the stop: the paper broker sells
    assert (trade.status, trade.close_reason) == (TradeStatus.CLOSED, CloseReason.SL_HIT)
    assert trade.close_price == Decimal("5.00") and trade.realized_pnl == Decimal("140.00")  # (5.00 - 4.30) x 200
    assert trade.realized_pnl_net == Decimal("137.40")  # less 4 x $0.65 commission
    _cycle(market, "6.00", "6.20", minutes=1)
    [sell] = _sells(trader)
    assert sell.quantity == 2 and len(_moves(trade.pk)) == 2


def test_breakeven_covers_the_commissions_and_the_exit_nets_a_little_above_zero(api_as, trader, market):
    opened = _open(api_as, trader, {"breakeven_after_pct": "10"})
    _cycle.trade_id = opened["id"]
    # +11.6 %: entry 4.30 + (2 x 0.65 in, 2 x 0.65 out) / 200 shares = 4.313, up to the nickel 4.35
    trade = _cycle(market, "4.80", "5.00", seconds=20)
    assert trade.sl_price == Decimal("4.35")
    assert _moves(trade.pk)[0].payload["exit_policy"]["why"] == "breakeven"
    trade = _cycle(market, "4.35", "4.55", minutes=1)
    assert (trade.status, trade.close_reason, trade.close_price) == (TradeStatus.CLOSED, CloseReason.SL_HIT,
                                                                      Decimal("4.35"))
    assert (trade.realized_pnl, trade.realized_pnl_net) == (Decimal("10.00"), Decimal("7.40"))
    assert len(_sells(trader)) == 1


def test_a_time_stop_closes_once_before_the_close(api_as, trader, market):
    opened = _open(api_as, trader, {"close_minutes_before_close": "15"})
    _cycle.trade_id = opened["id"]
    trade = _cycle(market, "4.40", "4.60", hours=5, minutes=44)  # 15:44 in New York: not yet
    assert trade.status == TradeStatus.OPEN
    trade = _cycle(market, "4.50", "4.70", minutes=1)  # 15:45
    assert (trade.status, trade.close_reason, trade.close_price) == (TradeStatus.CLOSED, CloseReason.TIME_STOP,
                                                                      Decimal("4.50"))
    assert trade.realized_pnl == Decimal("40.00")
    [asked] = [e for e in _policy_events(trade.pk) if e.old_status == TradeStatus.OPEN]
    assert asked.payload["exit_policy"]["why"] == "15 minutes before the close"
    _cycle(market, "4.60", "4.80", minutes=1)
    [sell] = _sells(trader)
    assert sell.quantity == 2


def test_a_bad_policy_at_open_is_refused_in_trader_words(api_as, trader, market):
    answer = api_as(trader).post("/api/trades", {
        "ticker": "SPY", "option_type": "CALL", "strike": "570", "expiry": "2026-12-18", "qty": 1,
        "entry_type": "market", "sl_price": "3.00", "tp_price": "6.50",
        "exit_policy": {"trail_pct": "10", "trail_amount": "0.5"}}, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"] == [{"code": "invalid", "attr": "exit_policy", "detail":
                                        "Give the trailing stop as a percentage or as a dollar distance, not both."}]
    with tenancy.system_context():
        assert not PaperTrade.objects.exists()


def test_the_paper_matching_job_moves_local_paper_stops_and_leaves_other_brokers_to_the_order_cycle(
        api_as, trader, other_trader, market):
    opened = _open(api_as, trader, {"trail_pct": "10"})
    elsewhere = PaperTradeFactory(owner=other_trader, broker_mode=BrokerMode.TRADIER_SANDBOX,
                                  entry_date=market.moment, exit_policy={"trail_pct": "10"})
    market.set_quote(CONTRACT, "5.00", "5.20")
    tasks.match_paper_orders.apply().get()
    with tenancy.system_context():
        paper, tradier = (PaperTrade.objects.get(pk=pk) for pk in (opened["id"], elsewhere.pk))
    assert (paper.sl_price, paper.exit_high_water) == (Decimal("4.50"), Decimal("5.00"))  # 5.00 - 10 %
    assert (tradier.sl_price, tradier.exit_high_water, tradier.version) == (Decimal("3.00"), None, 1)


def test_two_looks_side_by_side_never_pull_the_high_water_mark_back(api_as, trader, market):
    """The paper matching job and the order cycle may read the same trade at once: the one that
    read it before the other wrote a higher best bid must not write its lower one over it."""
    runs = importlib.import_module("trades.services.exit_policy_runs")
    opened = _open(api_as, trader, {"trail_pct": "50", "trail_after_pct": "100"})  # the stop stays put here
    with tenancy.system_context():
        stale = PaperTrade.objects.get(pk=opened["id"])
    runs.exit_policies_apply(option_bids=lambda symbols: {CONTRACT: Decimal("5.60")},
                             underlying_prices=lambda tickers: {}, now=market.moment, today=market.moment.date(),
                             session_close=None, market=market)
    runs._remember_high_water(stale, ExitDecision(stop=None, high_water=Decimal("5.20"), underlying_extreme=None))
    with tenancy.system_context():
        assert PaperTrade.objects.get(pk=opened["id"]).exit_high_water == Decimal("5.60")


def test_a_stock_price_source_that_is_down_stops_no_cycle(api_as, trader, market, monkeypatch):
    """The stock stop waits for prices; the option's own bracket still fills in the same cycle."""

    class StockPricesDown(HandMadeBars):
        def underlying_quotes(self, symbols):
            raise ProviderUnavailable("stock quotes are down")

    monkeypatch.setattr(tasks, "provider_for", lambda **kwargs: StockPricesDown())
    opened = _open(api_as, trader, {"underlying_trail_pct": "1"})
    _cycle.trade_id = opened["id"]
    trade = _cycle(market, "6.60", "6.80", minutes=1)
    assert (trade.status, trade.close_reason, trade.exit_underlying_extreme) == (
        TradeStatus.CLOSED, CloseReason.TP_HIT, None)


class _InProcessGroup:
    """A coordinator's group of shard tasks, run here at once (no worker in these tests)."""

    def __init__(self, signatures) -> None:
        self.signatures = list(signatures)

    def apply_async(self):
        for signature in self.signatures:
            signature.apply().get()


@pytest.mark.parametrize("shards", [0, 2])
def test_a_calls_stock_stop_closes_it_when_spy_falls_back_from_its_high(api_as, trader, market, monkeypatch, settings,
                                                                         shards):
    """Sharded, the coordinator asks for SPY's price once a cycle and the shard reads it from Redis."""
    stock, stock_calls = {"SPY": "600.00"}, []
    settings.MONITOR_SHARDS = shards
    monkeypatch.setattr(tasks, "group", _InProcessGroup)

    class StockPrices(HandMadeBars):
        def underlying_quotes(self, symbols):
            stock_calls.append(list(symbols))
            return {symbol: UnderlyingQuote(symbol=symbol, last=Decimal(stock[symbol]), bid=None, ask=None,
                                            quote_time=market.moment, source="hand") for symbol in symbols}

    monkeypatch.setattr(tasks, "provider_for", lambda **kwargs: StockPrices())
    opened = _open(api_as, trader, {"underlying_trail_amount": "3"})
    _cycle.trade_id = opened["id"]
    stock["SPY"] = "605.00"
    trade = _cycle(market, "4.90", "5.10", minutes=1)
    assert (trade.status, trade.exit_underlying_extreme) == (TradeStatus.OPEN, Decimal("605.00"))
    stock["SPY"] = "602.01"  # 2.99 under the high: not yet
    assert _cycle(market, "4.60", "4.80", minutes=1).status == TradeStatus.OPEN
    stock["SPY"] = "602.00"
    trade = _cycle(market, "4.55", "4.75", minutes=1)
    assert (trade.status, trade.close_reason, trade.close_price) == (TradeStatus.CLOSED, CloseReason.STOCK_STOP,
                                                                      Decimal("4.55"))
    assert trade.realized_pnl == Decimal("50.00") and len(_sells(trader)) == 1
    [asked] = [e for e in _policy_events(trade.pk) if e.old_status == TradeStatus.OPEN]
    assert asked.payload["exit_policy"]["quote"]["underlying"] == "602.00"
    assert stock_calls == [["SPY"]] * 3  # once a cycle, sharded or not


def test_a_shard_s_exit_policies_look_at_its_own_accounts_only(api_as, trader, other_trader, market):
    from monitoring import services
    from monitoring.sharding import Shard

    mine, theirs = (_open(api_as, user, {"trail_pct": "10"}) for user in (trader, other_trader))
    count = abs(other_trader.pk - trader.pk) + 1  # a count that puts the two accounts in different shards
    market.set_quote(CONTRACT, "5.00", "5.20")
    report = services.apply_exit_policies(provider=None, market=market, at=market.moment,
                                          shard=Shard(trader.pk % count, count))
    assert (report.watched, report.stops_moved) == (1, 1)
    with tenancy.system_context():
        stops = {pk: PaperTrade.objects.get(pk=pk).sl_price for pk in (mine["id"], theirs["id"])}
    assert stops == {mine["id"]: Decimal("4.50"), theirs["id"]: Decimal("3.00")}


def test_a_broker_that_cannot_modify_gets_the_stop_moved_by_cancel_and_replace(api_as, trader, market, monkeypatch):
    def cannot(self, order_id, stop_price):
        raise StopModifyUnsupported("no modify here", order_id=order_id)

    monkeypatch.setattr(LocalPaperBroker, "modify_stop", cannot)
    opened = _open(api_as, trader, {"trail_amount": "0.50"})
    _cycle.trade_id = opened["id"]
    with tenancy.system_context():
        before = PaperTrade.objects.get(pk=opened["id"]).bracket_order_id
    trade = _cycle(market, "5.00", "5.20", seconds=20)
    [moved] = _moves(trade.pk)
    assert trade.sl_price == Decimal("4.50") and trade.bracket_order_id != before
    assert "in_place" not in moved.payload and moved.payload["exit_policy"]["quote"]["bid"] == "5.00"
    trade = _cycle(market, "4.40", "4.60", minutes=1)  # through the new stop: one exit
    assert (trade.status, trade.close_price, trade.realized_pnl) == (TradeStatus.CLOSED, Decimal("4.40"),
                                                                     Decimal("20.00"))
    assert len(_sells(trader)) == 1


def test_a_stop_the_broker_replaced_to_move_it_is_the_one_the_trade_points_at(api_as, trader, market, monkeypatch):
    moved_where_it_rests = LocalPaperBroker.modify_stop

    def replaced(self, order_id, stop_price):  # as a broker that answers a modify with a new order
        return dataclasses.replace(moved_where_it_rests(self, order_id, stop_price), id=f"new-{order_id}")

    monkeypatch.setattr(LocalPaperBroker, "modify_stop", replaced)
    opened = _open(api_as, trader, {"trail_amount": "0.50"})
    _cycle.trade_id = opened["id"]
    with tenancy.system_context():
        before = PaperTrade.objects.get(pk=opened["id"]).sl_order_id
    assert before
    trade = _cycle(market, "5.00", "5.20", seconds=20)
    assert trade.sl_price == Decimal("4.50") and trade.sl_order_id == f"new-{before}"


def test_a_refused_token_at_one_account_leaves_every_other_policy_working(api_as, trader, other_trader, market,
                                                                          monkeypatch):
    moved_where_it_rests = LocalPaperBroker.modify_stop
    first = _open(api_as, trader, {"trail_amount": "0.50"})
    second = _open(api_as, other_trader, {"trail_amount": "0.50"})
    with tenancy.system_context():
        refused = PaperTrade.objects.get(pk=first["id"]).sl_order_id or PaperTrade.objects.get(
            pk=first["id"]).bracket_order_id

    def one_account_refused(self, order_id, stop_price):
        if order_id == refused:
            raise BrokerAuthError("401 Unauthorized")
        return moved_where_it_rests(self, order_id, stop_price)

    monkeypatch.setattr(LocalPaperBroker, "modify_stop", one_account_refused)
    _cycle.trade_id = second["id"]
    trade = _cycle(market, "5.00", "5.20", seconds=20)
    assert trade.sl_price == Decimal("4.50")  # the later trade's stop moved all the same
    with tenancy.system_context():
        assert PaperTrade.objects.get(pk=first["id"]).sl_price == Decimal("3.00")


def test_a_policy_close_that_came_back_open_is_asked_again_after_the_interval(api_as, trader, market):
    opened = _open(api_as, trader, {"close_minutes_before_close": "15"})

    def asked_at(moment):  # as if the policy's close had been refused and the trade restored to OPEN
        with tenancy.system_context():
            PaperTrade.objects.filter(pk=opened["id"]).update(exit_requested_at=moment,
                                                              exit_request_reason=CloseReason.TIME_STOP)

    market.set_quote(CONTRACT, "4.50", "4.70")
    market.advance(hours=5, minutes=45)  # 15:45 in New York: the time stop is due
    asked_at(market.moment - timedelta(seconds=10))
    tasks.sync_orders.apply().get()
    with tenancy.system_context():
        assert PaperTrade.objects.get(pk=opened["id"]).status == TradeStatus.OPEN  # not within the interval
    asked_at(market.moment - timedelta(minutes=2))
    tasks.sync_orders.apply().get()
    with tenancy.system_context():
        trade = PaperTrade.objects.get(pk=opened["id"])
    assert (trade.status, trade.close_reason) == (TradeStatus.CLOSED, CloseReason.TIME_STOP)
    assert len(_sells(trader)) == 1
