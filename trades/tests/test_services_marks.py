"""The figures monitoring and analytics measure reach the trade row only through trades' services,
one statement per batch."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import PaperTradeFactory
from tradeoptions import tenancy
from trades.models import CloseReason, PaperTrade, TradeStatus
from trades.services import TradeMark, TradeTargets, marks_record, targets_record

pytestmark = pytest.mark.django_db
AT = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


def _trade(pk) -> PaperTrade:
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


def _closed(**fields) -> PaperTrade:
    return PaperTradeFactory(status=TradeStatus.CLOSED, close_price=Decimal("5.00"), close_date=AT,
                             close_reason=CloseReason.MANUAL_CLOSE, **fields)


def _mark(trade, mark: str, pnl: str) -> TradeMark:
    return TradeMark(trade_id=trade.pk, mark=Decimal(mark), bid=Decimal(mark) - Decimal("0.05"),
                     ask=Decimal(mark) + Decimal("0.05"), unrealized_pnl=Decimal(pnl))


def test_marks_are_written_in_one_statement_and_keep_their_extremes():
    first, second = PaperTradeFactory(), PaperTradeFactory(status=TradeStatus.CLOSING)
    with tenancy.system_context(), CaptureQueriesContext(connection) as captured:
        written = marks_record(marks=[_mark(first, "4.70", "100"), _mark(second, "3.70", "-100")], at=AT)
    assert written == 2
    assert sum("UPDATE" in query["sql"] for query in captured.captured_queries) == 1
    with tenancy.system_context():
        marks_record(marks=[_mark(first, "4.00", "-40")], at=AT)
    trade = _trade(first.pk)
    assert (trade.current_price, trade.current_bid, trade.current_ask) == (Decimal("4.00"), Decimal("3.95"),
                                                                           Decimal("4.05"))
    assert (trade.unrealized_pnl, trade.max_gain, trade.max_drawdown) == (Decimal("-40"), Decimal("100"),
                                                                          Decimal("-40"))
    assert trade.last_updated == AT and trade.version == first.version  # a mark is not the trader's change


def test_a_trade_no_longer_held_is_not_marked():
    closed = _closed(current_price=Decimal("5.00"))
    with tenancy.system_context():
        assert marks_record(marks=[_mark(closed, "9.00", "960")], at=AT) == 0
        assert marks_record(marks=[], at=AT) == 0
    assert _trade(closed.pk).current_price == Decimal("5.00")


def test_targets_are_written_on_each_trade_and_a_rerun_changes_nothing():
    first, second = _closed(), _closed()
    targets = [TradeTargets(trade_id=first.pk, pnl_15m=Decimal("12.50"), pnl_1h=None, mfe_pct=Decimal("8.1234"),
                            mae_pct=Decimal("-2.5000")),
               TradeTargets(trade_id=second.pk, pnl_15m=None, pnl_1h=Decimal("-30.00"), mfe_pct=Decimal("0"),
                            mae_pct=Decimal("-10.0000"))]
    with tenancy.system_context():
        assert targets_record(targets=targets) == 2
        assert targets_record(targets=targets) == 2
        assert targets_record(targets=[]) == 0
    one, two = _trade(first.pk), _trade(second.pk)
    assert (one.target_pnl_15m, one.target_pnl_1h, one.target_mfe_pct, one.target_mae_pct) == (
        Decimal("12.50"), None, Decimal("8.1234"), Decimal("-2.5000"))
    assert (two.target_pnl_15m, two.target_pnl_1h, two.target_mfe_pct, two.target_mae_pct) == (
        None, Decimal("-30.00"), Decimal("0"), Decimal("-10.0000"))
    assert one.version == first.version
