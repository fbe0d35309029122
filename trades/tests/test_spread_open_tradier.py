"""Opening a multi-leg trade at Tradier over real HTTP (the fake Tradier, tests/fakes/tradier.py):
one multileg order tagged `to-<id>-entry`, its fill read leg by leg, under each UNCONFIRMED switch
(the parent's own fill fields, atomic / partial / legged fills, refusals at the POST or later)."""

from decimal import Decimal

import pytest

from brokers.models import BrokerMode
from monitoring.sync import sync_orders
from tradeoptions import tenancy
from trades import net_price, services
from trades.models import PaperTrade, TradeLeg, TradeStatus

from .test_spread_open import C570, C580, C590, P550, P560, P570, QUOTES, TEMPLATES, long_, short, spread_body

TOKEN = "sbxTOKEN-spreads-5e4d3c2b1a"
ACCOUNT = "VA00001919"


@pytest.fixture
def tradier(fake_tradier, trader, market, tradier_budget_of_its_own):
    """The trader trades in a $50,000 sandbox account; the fake and the market quote the same books.
    At a rate budget of the test's own (the root conftest): these tests are not about the limiter."""
    fake_tradier.add_account(token=TOKEN, account_id=ACCOUNT, cash=Decimal("50000"))
    for symbol, (bid, ask) in QUOTES.items():
        fake_tradier.set_quote(symbol, bid, ask)
        market.set_quote(symbol, bid, ask)
    services.account_settings_update(user=trader, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX,
                                                           "tradier_account_id": ACCOUNT}, sandbox_token=TOKEN)
    account = services.account_settings_for(user=trader)
    account.account_balance, account.heat_limit_pct, account.max_positions = Decimal("50000"), Decimal("100"), 20
    with tenancy.acting_as(trader.pk):
        account.save()
    return fake_tradier


def _trade(user) -> PaperTrade:
    with tenancy.acting_as(user.pk):
        return PaperTrade.objects.get(owner=user)


def _legs(user, trade_id):
    with tenancy.acting_as(user.pk):
        return list(TradeLeg.objects.filter(trade_id=trade_id).order_by("position"))


def _signed(legs):
    return sum((leg.sign * leg.ratio * leg.entry_price for leg in legs), Decimal(0))


@pytest.mark.parametrize("parent_fills", ["net", "none"])
@pytest.mark.parametrize("name", ["vertical", "iron_condor", "butterfly"])
def test_a_market_spread_fills_at_tradier_whatever_the_parent_says(api_as, trader, tradier, market, parent_fills,
                                                                     name):
    tradier.spread_parent_fills = parent_fills
    legs, entry, direction, _, sl, tp = TEMPLATES[name]
    response = api_as(trader).post("/api/trades", spread_body(legs, qty=3, sl_price=sl, tp_price=tp), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    if body["status"] == "PENDING":  # the sandbox decides a new order on a later look
        sync_orders(market=market)
        body = api_as(trader).get(f"/api/trades/{body['id']}").json()
    assert body["status"] == "OPEN" and body["net_direction"] == direction and body["filled_qty"] == 3
    assert Decimal(body["entry_price"]) == Decimal(entry)
    (order,) = tradier.orders_tagged(f"to-{body['id']}-entry")
    assert order.order_class == "multileg" and order.type == "market" and str(order.id) == body["entry_order_id"]
    assert [leg.quantity for leg in order.legs] == [3 * leg["ratio"] for leg in legs]
    trade = _trade(trader)
    assert net_price.direction_sign(trade.net_direction) * trade.entry_price == _signed(_legs(trader, trade.pk))
    rate = trade.commission_per_contract
    assert trade.entry_commission == (rate * 3 * sum(leg["ratio"] for leg in legs)).quantize(Decimal("0.01"))
    assert TOKEN not in response.content.decode()


def test_a_limit_credit_spread_rests_at_tradier_and_the_sync_records_its_fill(api_as, trader, tradier, market):
    legs = [short(P560), long_(P550)]  # natural credit 1.70
    response = api_as(trader).post("/api/trades", spread_body(legs, qty=2, entry_type="limit", limit_price="1.90",
                                                              sl_price="3.80", tp_price="0.95"), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "PENDING" and body["net_direction"] == "credit"
    (order,) = tradier.orders_tagged(f"to-{body['id']}-entry")
    assert order.type == "credit" and order.price == Decimal("1.90")
    sync_orders(market=market)
    assert _trade(trader).status == TradeStatus.PENDING
    tradier.set_quote(P560, "3.20", "3.40")  # 3.20 − 1.30 = 1.90: the credit is reached
    sync_orders(market=market)
    trade = _trade(trader)
    assert trade.status == TradeStatus.OPEN and trade.entry_price == Decimal("1.90") and trade.filled_qty == 2
    assert trade.net_direction == "credit"
    assert [leg.entry_price for leg in _legs(trader, trade.pk)] == [Decimal("3.20"), Decimal("1.30")]


def test_a_partly_filled_spread_stays_pending_with_its_whole_units_then_opens(api_as, trader, tradier, market):
    tradier.spread_fills = "partial"
    tradier.set_quote(C580, "1.50", "1.60", size=2)  # the sold leg's book takes 2 contracts a look
    body = api_as(trader).post("/api/trades", spread_body([long_(C570), short(C580)], qty=5, sl_price="1.40",
                                                          tp_price="5.00"), format="json").json()
    sync_orders(market=market)
    trade = _trade(trader)
    assert trade.status == TradeStatus.PENDING and 0 < trade.filled_qty < 5, (body, trade.filled_qty)
    tradier.set_quote(C580, "1.50", "1.60")  # unlimited size: the rest fills
    sync_orders(market=market)
    trade = _trade(trader)
    assert trade.status == TradeStatus.OPEN and trade.filled_qty == 5 and trade.entry_price == Decimal("2.80")


def test_a_legged_fill_that_ends_is_opened_on_its_whole_units_and_flagged(api_as, trader, tradier, market):
    tradier.spread_fills = "legged"
    tradier.set_quote(C580, "1.50", "1.60", size=2)  # the long leg fills 4, the short 2
    api_as(trader).post("/api/trades", spread_body([long_(C570), short(C580)], qty=4, sl_price="1.40",
                                                   tp_price="5.00"), format="json")
    sync_orders(market=market)
    tradier.end_of_day()  # the day order expires with the spread broken at the broker
    sync_orders(market=market)
    trade = _trade(trader)
    assert trade.status == TradeStatus.OPEN and trade.qty == 2 and trade.filled_qty == 2
    assert "unevenly" in trade.attention_reason and C570 in trade.attention_reason


@pytest.mark.parametrize("refusal", ["errors_200", "rejected"])
def test_a_naked_spread_tradier_refuses_is_rejected_in_its_words(api_as, trader, tradier, market, refusal):
    tradier.spread_refusal = refusal
    client = api_as(trader)
    assert client.put("/api/settings", {"allow_naked_short_options": True, "confirmation": "NAKED SHORTS"},
                      format="json").status_code == 200
    body = spread_body([short(C570), short(P570)], sl_price="12.00", tp_price="4.00")
    client.post("/api/trades", body, format="json")
    sync_orders(market=market)
    trade = _trade(trader)
    assert trade.status == TradeStatus.REJECTED
    assert "not approved for uncovered option writing" in trade.status_reason


def test_an_account_approved_for_uncovered_writing_opens_a_short_strangle(api_as, trader, tradier, market):
    tradier.uncovered_writing = True
    client = api_as(trader)
    client.put("/api/settings", {"allow_naked_short_options": True, "confirmation": "NAKED SHORTS"}, format="json")
    response = client.post("/api/trades", spread_body([short(P560), short(C580)], sl_price="9.00",
                                                      tp_price="2.00"), format="json")
    assert response.status_code == 201, response.json()
    if response.json()["status"] == "PENDING":
        sync_orders(market=market)
    trade = _trade(trader)
    assert trade.status == TradeStatus.OPEN and trade.strategy_type == "strangle"
    assert trade.net_direction == "credit" and trade.entry_price == Decimal("4.50")  # 3.00 + 1.50


def test_an_answer_lost_after_tradier_took_the_spread_is_adopted_by_its_tag_not_sent_again(api_as, trader, tradier,
                                                                                          market):
    tradier.inject("hang_after", method="POST", order_class="multileg")
    api_as(trader).post("/api/trades", spread_body([long_(C570), short(C590)], sl_price="1.50", tp_price="5.00"),
                        format="json")
    sync_orders(market=market)
    trade = _trade(trader)
    assert trade.status == TradeStatus.OPEN and trade.entry_order_id
    assert len(tradier.orders_tagged(f"to-{trade.pk}-entry")) == 1


def test_a_resting_spread_is_cancelled_at_tradier_like_a_single_entry(api_as, trader, tradier, market):
    client = api_as(trader)
    body = client.post("/api/trades", spread_body(TEMPLATES["butterfly"][0], entry_type="limit", limit_price="3.00",
                                                  sl_price="1.50", tp_price="6.00"), format="json").json()
    if body["status"] == "PENDING" and not body["entry_order_id"]:
        sync_orders(market=market)
    body = client.get(f"/api/trades/{body['id']}").json()
    assert body["status"] == "PENDING" and body["entry_order_id"]
    cancelled = client.post(f"/api/trades/{body['id']}/entry/cancel", {"version": body["version"]}, format="json")
    assert cancelled.status_code == 200, cancelled.json()
    assert cancelled.json()["status"] == "CANCELED"
    (order,) = tradier.orders_tagged(f"to-{body['id']}-entry")
    assert order.status == "canceled" and all(leg.status == "canceled" for leg in order.legs)
    assert C580 in [leg.option_symbol for leg in order.legs]
