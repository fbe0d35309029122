"""The book the sharded order cycle is tested on, in-process (monitoring/tests/test_order_shards.py)
and through real workers (tests/test_faults_order_shards.py): each trader an open SPY call, every
second one an open QQQ put, every third one an IWM call whose market entry waits for the open."""

from datetime import date
from decimal import Decimal

from tradeoptions import tenancy
from trades.models import AccountSettings
from trades.services import TradeOpenInput, trade_open

SPY, QQQ, IWM = "SPY261218C00570000", "QQQ261218P00500000", "IWM261218C00250000"


def _open(user, market, *, ticker, option_type, strike, sl, tp):
    data = TradeOpenInput(ticker=ticker, option_type=option_type, strike=Decimal(strike), expiry=date(2026, 12, 18),
                          qty=1, sl_price=Decimal(sl), tp_price=Decimal(tp))
    return trade_open(user=user, data=data, market=market).trade


def shard_book_open(users, market) -> dict:
    """The traders' trades, keyed (trader's index, ticker); the market is left closed (the IWM
    entries rest), for the caller to open with its own quotes."""
    trades = {}
    for n, user in enumerate(users):
        with tenancy.acting_as(user.pk):
            AccountSettings.objects.update_or_create(
                owner=user, defaults={"account_balance": Decimal("100000"), "max_positions": 50})
        trades[(n, "SPY")] = _open(user, market, ticker="SPY", option_type="CALL", strike="570", sl="3.00", tp="6.50")
        if n % 2 == 0:
            trades[(n, "QQQ")] = _open(user, market, ticker="QQQ", option_type="PUT", strike="500", sl="2.00",
                                       tp="5.00")
    market.open = False
    for n, user in enumerate(users):
        if n % 3 == 0:
            trades[(n, "IWM")] = _open(user, market, ticker="IWM", option_type="CALL", strike="250", sl="2.00",
                                       tp="5.00")
    return trades
