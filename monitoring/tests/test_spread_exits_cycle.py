"""The monitor as a spread's bracket, run as beat runs it (`monitoring.sync_orders`, the order cycle):
exit policies on the held price (a credit's stop trails down, on the row only), the net watch that
sends the closing multileg order, the sync that books its fill; and the races the guide asks for,
each made to happen between two steps of the close."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers.base import SpreadLeg, SpreadOrderRequest, order_tag
from brokers.models import PaperOrder
from brokers.paper import LocalPaperBroker
from monitoring import tasks
from tests.factories import exits_mark, exits_spread_trade
from tradeoptions import tenancy
from trades import services
from trades.models import AccountSettings, Actor, EventKind, LegSide, PaperTrade, TradeEvent, TradeLeg

P560, P555 = "SPY261218P00560000", "SPY261218P00555000"
OPENING = {P560: ("3.00", "3.20"), P555: ("2.00", "2.10")}

pytestmark = pytest.mark.usefixtures("fresh_cache", "exit_policy_clock")


@pytest.fixture
def credit_vertical(settings, market, trader):
    """Alice sold 2 P560/P555 put verticals at the local paper broker for 0.90 (3.00 − 2.10), stop 1.50
    (buy back at 1.50), target 0.30; $0.65 a contract."""
    settings.PAPER_COMMISSION_PER_CONTRACT = Decimal("0.65")
    settings.PAPER_SLIPPAGE_PER_SHARE = 0
    settings.PAPER_SPREAD_IMPROVEMENT_PCT = 0
    for symbol, (bid, ask) in OPENING.items():
        market.set_quote(symbol, bid, ask)
    with tenancy.acting_as(trader.pk):
        AccountSettings.objects.update_or_create(owner=trader, defaults={"account_balance": Decimal("10000")})
    trade = exits_spread_trade(trader, legs=[(P560, LegSide.SHORT, 1, "3.00"), (P555, LegSide.LONG, 1, "2.10")],
                               strategy_type="vertical", units=2, sl_price="1.50", tp_price="0.30",
                               entry_commission=Decimal("2.60"), commission_per_contract=Decimal("0.65"))
    with tenancy.acting_as(trader.pk):
        broker = services.broker_of(services.account_settings_for(user=trader), market=market)
        broker.place_spread_order(SpreadOrderRequest(
            underlying="SPY", price_type="market", tag=order_tag(trade.pk, "entry"),
            legs=(SpreadLeg(P560, "sell_to_open", 2), SpreadLeg(P555, "buy_to_open", 2))))
    return trade


def _cycle(market, trade, short: tuple[str, str], long: tuple[str, str], **delta) -> PaperTrade:
    """The books move, the marks slice writes the held mid, and the order cycle runs."""
    quotes = {P560: short, P555: long}
    for symbol, (bid, ask) in quotes.items():
        market.set_quote(symbol, bid, ask)
    market.advance(**delta)
    exits_mark(trade, quotes, at=market.moment)
    tasks.sync_orders.apply().get()
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=trade.pk)


def _moves(trade):
    with tenancy.system_context():
        return list(TradeEvent.objects.filter(trade_id=trade.pk, kind=EventKind.BRACKET_ADJUSTED, actor=Actor.SYSTEM,
                                              actor_label="exit-policy").order_by("id"))


def test_a_credit_spreads_trailing_stop_moves_down_on_the_row_and_fires_at_the_held_mark(
        market, trader, credit_vertical):
    trade = credit_vertical
    with tenancy.acting_as(trader.pk):
        trade = services.exit_policy_set(user=trader, trade_id=trade.pk, version=trade.version,
                                         policy={"trail_amount": "0.20"}).trade

    trade = _cycle(market, trade, ("1.70", "1.80"), ("1.00", "1.10"), seconds=20)  # held mid 0.70
    assert (trade.status, trade.sl_price, trade.exit_high_water) == ("OPEN", Decimal("0.90"), Decimal("0.70"))
    [moved] = _moves(trade)
    assert (moved.actor, moved.actor_label, moved.payload["exit_policy"]["why"]) == (
        Actor.SYSTEM, "exit-policy", "trailing")
    assert moved.payload["from"]["sl_price"] == "1.5000" and moved.payload["to"]["sl_price"] == "0.90"
    with tenancy.acting_as(trader.pk):
        assert not PaperOrder.objects.exclude(tag__endswith="-entry").exists()  # no broker order moves a spread's stop

    trade = _cycle(market, trade, ("1.40", "1.50"), ("0.90", "1.00"), seconds=61)  # 0.50: the stop follows down
    assert (trade.sl_price, trade.exit_high_water) == (Decimal("0.70"), Decimal("0.50"))
    trade = _cycle(market, trade, ("1.50", "1.60"), ("0.90", "1.00"), seconds=61)  # 0.60: it never rises
    assert (trade.status, trade.sl_price, trade.exit_high_water) == ("OPEN", Decimal("0.70"), Decimal("0.50"))

    trade = _cycle(market, trade, ("1.65", "1.75"), ("0.90", "1.00"), seconds=61)  # 0.75: past the stop
    assert (trade.status, trade.close_reason) == ("CLOSED", "SL_HIT")
    # Bought P560 back at its 1.75 ask, sold P555 at its 0.90 bid: 0.85 for 0.90 received, kept $10.00.
    assert (trade.close_price, trade.realized_pnl) == (Decimal("0.85"), Decimal("10.00"))
    with tenancy.system_context():
        steps = [step["price"] for step in services_paths(trade)]
    assert steps == [Decimal("1.5000"), Decimal("0.90"), Decimal("0.70"), Decimal("0.70")]


def services_paths(trade):
    from trades.selectors import exit_level_paths

    trade = PaperTrade.objects.get(pk=trade.pk)
    return exit_level_paths(trade=trade, events=trade.events.order_by("created_at", "id"), now=timezone.now())["stop"]


def test_a_credit_spreads_breakeven_moves_the_stop_to_the_credit_less_its_commissions(market, trader,
                                                                                      credit_vertical):
    trade = credit_vertical
    with tenancy.acting_as(trader.pk):
        trade = services.exit_policy_set(user=trader, trade_id=trade.pk, version=trade.version,
                                         policy={"breakeven_after_pct": "30"}).trade
    trade = _cycle(market, trade, ("1.50", "1.60"), ("0.95", "1.05"), seconds=20)  # 0.55: 39 % of the credit
    # (2.60 entry + 4 × 0.65 exit) / 200 shares = 0.026 a share: 0.90 − 0.026, down to the cent.
    assert (trade.status, trade.sl_price) == ("OPEN", Decimal("0.87"))


def test_a_spreads_exit_policy_refuses_a_scale_out_in_trader_words(trader, credit_vertical, api_as):
    trade = credit_vertical
    with tenancy.acting_as(trader.pk), pytest.raises(services.InvalidTradeInput) as refused:
        services.exit_policy_set(user=trader, trade_id=trade.pk, version=trade.version,
                                 policy={"scale_out_at_pct": "50", "scale_out_pct": "50"})
    assert "A spread closes whole" in refused.value.field_errors["exit_policy"][0]


def test_a_spreads_time_stop_closes_it_with_the_multileg_order(market, trader, credit_vertical):
    trade = credit_vertical
    with tenancy.acting_as(trader.pk):
        trade = services.exit_policy_set(user=trader, trade_id=trade.pk, version=trade.version,
                                         policy={"close_after_hours": "1"}).trade
    trade = _cycle(market, trade, ("2.60", "2.70"), ("1.80", "1.90"), minutes=30)  # held mid 0.80: inside the exits
    assert trade.status == "OPEN"
    with tenancy.system_context():
        PaperTrade.objects.filter(pk=trade.pk).update(entry_date=market.moment - timedelta(hours=2))
    trade = _cycle(market, trade, ("2.60", "2.70"), ("1.80", "1.90"), seconds=61)
    # Bought P560 back at 2.70, sold P555 at 1.80: 0.90, what was received: $0.00 before commissions.
    assert (trade.status, trade.close_reason, trade.close_price, trade.realized_pnl) == (
        "CLOSED", "TIME_STOP", Decimal("0.90"), Decimal("0.00"))


# --- Races: the other event between every two steps of the monitor's close ----------------------------


def _past_the_stop(market, trade):
    quotes = {P560: ("2.00", "2.10"), P555: ("0.45", "0.55")}
    for symbol, (bid, ask) in quotes.items():
        market.set_quote(symbol, bid, ask)
    return exits_mark(trade, quotes)  # held mid 2.05 − 0.50 = 1.55: past the 1.50 stop


def _close_orders(trader, trade):
    with tenancy.acting_as(trader.pk):
        return list(PaperOrder.objects.filter(tag=f"to-{trade.pk}-close", parent__isnull=True))


@pytest.mark.parametrize("step", ["before the claim", "find_order_by_tag", "place_spread_order", "a second monitor"])
def test_a_manual_close_at_any_step_of_the_monitors_close_sends_one_order(market, trader, credit_vertical, api_as,
                                                                          monkeypatch, step):
    """The trader's close arrives before the monitor's claim (the monitor's is then a conflict), or
    while the monitor's close is at the broker (the trader's is refused: the trade is CLOSING)."""
    trade = _past_the_stop(market, credit_vertical)
    answers = []

    def manual_close():
        answers.append(api_as(trader).post(f"/api/trades/{trade.pk}/close", {"version": trade.version},
                                           format="json"))

    if step in ("before the claim", "a second monitor"):
        real = services.spread_exits.trade_net_exit_close

        def late(**kwargs):
            if step == "a second monitor":  # another cycle (a second worker) closes it first
                answers.append(real(**kwargs))
            else:
                manual_close()
            return real(**kwargs)

        monkeypatch.setattr(services.spread_exits, "trade_net_exit_close", late)
    else:
        real_method = getattr(LocalPaperBroker, step)

        def racing(self, *args, **kwargs):
            if not answers:
                manual_close()
            return real_method(self, *args, **kwargs)

        monkeypatch.setattr(LocalPaperBroker, step, racing)

    services.spread_exits_watch(market=market)

    with tenancy.system_context():
        closed = PaperTrade.objects.get(pk=trade.pk)
    assert closed.status == "CLOSED" and len(_close_orders(trader, trade)) == 1
    if step == "a second monitor":
        assert answers[0].trade.status == "CLOSED" and closed.close_reason == "SL_HIT"
    elif step == "before the claim":
        assert answers[0].status_code == 200 and closed.close_reason == "MANUAL_CLOSE"
    else:
        assert answers[0].status_code == 409, answers[0].json()
        assert closed.close_reason == "SL_HIT"


def test_a_close_the_process_died_after_sending_is_found_by_its_tag_and_booked_once(market, trader, credit_vertical,
                                                                                    monkeypatch):
    trade = _past_the_stop(market, credit_vertical)

    def killed(**kwargs):
        raise SystemExit("the worker was killed after the order went out")

    with monkeypatch.context() as patched, pytest.raises(SystemExit):
        patched.setattr("trades.services.spread_closing.spread_close_confirm", killed)
        services.spread_exits_watch(market=market)
    from django.core.cache import cache

    cache.clear()  # the dead process's lease expires
    with tenancy.system_context():
        stuck = PaperTrade.objects.get(pk=trade.pk)
        assert stuck.status == "CLOSING" and stuck.close_order_id == ""
        PaperTrade.objects.filter(pk=trade.pk).update(close_in_flight_since=timezone.now() - timedelta(minutes=3))

    tasks.sync_orders.apply().get()  # the sync finds the order by its tag and books its fill

    with tenancy.system_context():
        closed = PaperTrade.objects.get(pk=trade.pk)
        legs = list(TradeLeg.objects.filter(trade=trade).order_by("position"))
    # Bought back at 2.10 − 0.45 = 1.65 for 0.90 received, 2 units: −$150.00.
    assert (closed.status, closed.close_reason, closed.realized_pnl) == ("CLOSED", "SL_HIT", Decimal("-150.00"))
    assert [leg.exit_price for leg in legs] == [Decimal("2.10"), Decimal("0.45")]
    assert len(_close_orders(trader, trade)) == 1


def test_a_close_the_process_died_before_sending_is_sent_once_by_the_sync(market, trader, credit_vertical,
                                                                          monkeypatch):
    trade = _past_the_stop(market, credit_vertical)

    def killed(self, request):
        raise SystemExit("the worker was killed before the order went out")

    with monkeypatch.context() as patched, pytest.raises(SystemExit):
        patched.setattr(LocalPaperBroker, "place_spread_order", killed)
        services.spread_exits_watch(market=market)
    from django.core.cache import cache

    cache.clear()
    with tenancy.system_context():
        PaperTrade.objects.filter(pk=trade.pk).update(close_in_flight_since=timezone.now() - timedelta(minutes=3))
    assert _close_orders(trader, trade) == []

    tasks.sync_orders.apply().get()

    with tenancy.system_context():
        closed = PaperTrade.objects.get(pk=trade.pk)
    assert (closed.status, closed.close_reason) == ("CLOSED", "SL_HIT")
    assert len(_close_orders(trader, trade)) == 1
