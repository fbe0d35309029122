"""Review fixes to the multi-leg opening: a market fill keeps the direction the trade was opened
with (docs/spreads.md, "Placing and the fill"), and a spread a risk limit refuses is told on the
channels like a single option's."""

from decimal import Decimal

import pytest

from tests.factories import NotificationChannelFactory, PaperTradeFactory
from tradeoptions import tenancy
from trades import net_price, services
from trades.models import ChannelMessage, NotificationEvent, PaperTrade, TradeLeg, TradeStatus
from trades.services import RiskLimitExceeded, spread_opening

P550, P560 = "SPY261218P00550000", "SPY261218P00560000"


@pytest.fixture
def quoted(market):
    market.set_quote(P560, "3.00", "3.20")
    market.set_quote(P550, "1.20", "1.30")
    return market


def _settings(user, **changes):
    account = services.account_settings_for(user=user)
    for name, value in changes.items():
        setattr(account, name, value)
    with tenancy.acting_as(user.pk):
        account.save()
    return account


def _credit_put_spread(user, market):
    """A 1.70 credit on the 560/550 put spread at market, its exits a credit's: buy back at 0.85 or 3.40."""
    return services.spread_open(user=user, market=market, data=services.SpreadOpenInput(
        ticker="SPY", qty=1, net_direction="credit", sl_price=Decimal("3.40"), tp_price=Decimal("0.85"),
        legs=(services.SpreadLegInput(side="SHORT", option_symbol=P560),
              services.SpreadLegInput(side="LONG", option_symbol=P550))))


def _moved_before_the_fill(monkeypatch, market, *, short_bid):
    """The market moves between the open's checks and its market order's fill."""
    place = spread_opening._place

    def moved(trade, broker, **who):
        market.set_quote(P560, short_bid, "3.20")
        return place(trade, broker, **who)

    monkeypatch.setattr(spread_opening, "_place", moved)


# --- 1. the fill keeps the planned direction ---------------------------------------------------


def test_a_credit_filled_on_the_debit_side_stays_a_credit_at_zero_and_is_flagged(trader, quoted, monkeypatch):
    _settings(trader, account_balance=Decimal("20000"), heat_limit_pct=Decimal("100"), max_positions=20)
    _moved_before_the_fill(monkeypatch, quoted, short_bid="1.29")  # sold at 1.29, bought at 1.30: a 0.01 debit
    trade = _credit_put_spread(trader, quoted).trade
    assert trade.status == TradeStatus.OPEN
    assert trade.net_direction == "credit" and trade.entry_price == Decimal("0")
    assert (trade.sl_price, trade.tp_price) == (Decimal("3.40"), Decimal("0.85"))
    assert trade.attention_reason == ("Planned as a credit, the spread filled at a 0.01 debit: it is recorded at "
                                      "0.00, so its P&L reads 1.00 dollars a unit better than its fills. Check it "
                                      "and its exits.")
    with tenancy.acting_as(trader.pk):  # the legs keep their exact fills
        legs = list(TradeLeg.objects.filter(trade=trade).order_by("position"))
    assert [leg.entry_price for leg in legs] == [Decimal("1.29"), Decimal("1.30")]
    # The stop is not crossed at the mark: buying back at about 0.05 is far from the 3.40 stop.
    assert not net_price.stop_crossed(trade.net_direction, price=Decimal("0.05"), stop=trade.sl_price)


def test_a_credit_filled_at_exactly_zero_is_a_credit_of_nothing_not_a_debit(trader, quoted, monkeypatch):
    _settings(trader, account_balance=Decimal("20000"), heat_limit_pct=Decimal("100"), max_positions=20)
    _moved_before_the_fill(monkeypatch, quoted, short_bid="1.30")
    trade = _credit_put_spread(trader, quoted).trade
    assert trade.status == TradeStatus.OPEN
    assert trade.net_direction == "credit" and trade.entry_price == Decimal("0") and trade.attention_reason == ""


def test_a_credit_filled_as_planned_is_not_flagged(trader, quoted):
    _settings(trader, account_balance=Decimal("20000"), heat_limit_pct=Decimal("100"), max_positions=20)
    trade = _credit_put_spread(trader, quoted).trade
    assert trade.net_direction == "credit" and trade.entry_price == Decimal("1.70") and trade.attention_reason == ""


# --- 6. a risk limit's refusal is told ---------------------------------------------------------


def test_a_spread_refused_by_a_risk_limit_is_told_on_the_channel(trader, quoted):
    _settings(trader, account_balance=Decimal("20000"), heat_limit_pct=Decimal("100"), max_positions=1)
    NotificationChannelFactory(owner=trader, events=[NotificationEvent.RISK_LIMIT])
    PaperTradeFactory(owner=trader, status=TradeStatus.OPEN)
    with pytest.raises(RiskLimitExceeded):
        _credit_put_spread(trader, quoted)
    with tenancy.acting_as(trader.pk):
        (told,) = ChannelMessage.objects.filter(kind=NotificationEvent.RISK_LIMIT)
        assert PaperTrade.objects.filter(strategy_type="vertical").count() == 0
    assert told.title == "Risk limit reached: Max open positions" and "A new trade was refused." in told.body
