"""Exit policies end to end at Tradier over real HTTP (the fake Tradier server): a trade opened
through the API with a trailing stop, quotes moved at the broker and in the monitor's market, the
order cycle run as beat runs it. Whether Tradier modifies a leg of a working OCO in place, and
whether the modified order keeps its id, are UNCONFIRMED (reference §2.2): the fake does each
way, and under every one the stop moves up only, the move is in the audit log with the quote that
caused it, and exactly one exit fills."""

from datetime import date
from decimal import Decimal

import pytest

from monitoring import tasks
from tradeoptions import tenancy
from trades.models import Actor, CloseReason, EventKind, PaperTrade, TradeEvent, TradeStatus

from .conftest import SANDBOX_ACCOUNT, SANDBOX_CONTRACT

MODES = {  # id: (modify_advanced_leg, modify_gives_new_id)
    "in-place": ("in_place", False),
    "in-place-new-id": ("in_place", True),
    "refused-400": ("refused", False),
    "refused-200": ("refused_200", False),
}


pytestmark = pytest.mark.usefixtures("fresh_cache", "exit_policy_clock")


def _open(api_as, user):
    body = {"ticker": "SPY", "option_type": "CALL", "strike": "570", "expiry": date(2026, 12, 18).isoformat(),
            "qty": 2, "entry_type": "market", "sl_price": "3.00", "tp_price": "6.50", "strategy": "momentum",
            "exit_policy": {"trail_amount": "0.50", "trail_after_pct": "10"}}
    answer = api_as(user).post("/api/trades", body, format="json")
    assert answer.status_code == 201, answer.json()
    assert answer.json()["broker_mode"] == "TRADIER_SANDBOX" and answer.json()["status"] == "OPEN"
    return answer.json()


def _cycle(tradier, market, trade_id, bid, ask, minutes=1):
    """The quote moves at the broker and in the monitor's market; a minute later the order cycle runs."""
    tradier.set_quote(SANDBOX_CONTRACT, bid, ask)
    market.set_quote(SANDBOX_CONTRACT, bid, ask)
    market.advance(minutes=minutes)
    tasks.sync_orders.apply().get()
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=trade_id)


def _moves(trade_id):
    with tenancy.system_context():
        return list(TradeEvent.objects.filter(trade_id=trade_id, actor_label="exit-policy",
                                              kind=EventKind.BRACKET_ADJUSTED).order_by("id"))


def _stop_leg(tradier, trade_id):
    """The stop leg of the trade's OCO now at the fake (the latest one placed, after a replace)."""
    *_, oco = tradier.orders_tagged(f"to-{trade_id}-sl")
    return next(leg for leg in oco.legs if leg.type == "stop"), oco


@pytest.mark.parametrize("mode", MODES)
def test_a_trailing_stop_at_tradier_moves_up_only_and_its_one_exit_fills(api_as, trader, tradier, market, mode):
    tradier.modify_advanced_leg, tradier.modify_gives_new_id = MODES[mode]
    in_place = MODES[mode][0] == "in_place"
    opened = _open(api_as, trader)
    trade_id = opened["id"]
    first_leg, first_oco = _stop_leg(tradier, trade_id)
    assert first_leg.stop == Decimal("3.00") and opened["sl_order_id"] == str(first_leg.id)

    trade = _cycle(tradier, market, trade_id, "4.60", "4.80")  # +7 %: not trailing yet
    assert trade.sl_price == Decimal("3.00") and tradier.requests_for("PUT") == []

    trade = _cycle(tradier, market, trade_id, "5.00", "5.20")  # +16 %: the stop goes to 5.00 - 0.50
    assert (trade.status, trade.sl_price) == (TradeStatus.OPEN, Decimal("4.50"))
    (put,) = tradier.requests_for("PUT", "/orders/")
    assert put.path == f"/accounts/{SANDBOX_ACCOUNT}/orders/{first_leg.id}" and put.form == {"stop": "4.50"}
    leg, oco = _stop_leg(tradier, trade_id)
    assert leg.stop == Decimal("4.50") and leg.status == "open" and trade.sl_order_id == str(leg.id)
    assert trade.bracket_order_id == str(oco.id)
    if in_place:  # the same OCO, nothing cancelled; the leg's id is new only where the broker replaced it
        assert oco is first_oco and tradier.requests_for("DELETE") == []
        assert (leg.id != first_leg.id) == MODES[mode][1]
    else:  # refused: the OCO was cancelled and placed again with the new stop
        assert oco is not first_oco and first_oco.status == "canceled"
        (cancel,) = tradier.requests_for("DELETE")
        assert cancel.path == f"/accounts/{SANDBOX_ACCOUNT}/orders/{first_oco.id}"
    [moved] = _moves(trade_id)
    assert moved.actor == Actor.SYSTEM and moved.payload["exit_policy"]["quote"]["bid"] == "5.00"
    assert moved.payload["exit_policy"]["why"] == "trailing" and moved.payload["to"]["sl_price"] == "4.50"
    assert moved.payload.get("in_place", False) is in_place

    trade = _cycle(tradier, market, trade_id, "4.80", "5.00")  # the bid falls back: the stop stays
    assert trade.sl_price == Decimal("4.50") and len(_moves(trade_id)) == 1
    trade = _cycle(tradier, market, trade_id, "5.40", "5.60")  # a new high: 4.90
    assert trade.sl_price == Decimal("4.90") and _stop_leg(tradier, trade_id)[0].stop == Decimal("4.90")
    # A broker that refused a leg's modification is not asked again: each move is one cancel and one OCO.
    puts, deletes = len(tradier.requests_for("PUT")), len(tradier.requests_for("DELETE"))
    assert (puts, deletes) == ((2, 0) if in_place else (1, 2))
    assert [m.payload["exit_policy"]["quote"]["bid"] for m in _moves(trade_id)] == ["5.00", "5.40"]

    trade = _cycle(tradier, market, trade_id, "4.85", "5.05")  # through the stop: Tradier sells at the bid
    assert (trade.status, trade.close_reason, trade.close_price) == (TradeStatus.CLOSED, CloseReason.SL_HIT,
                                                                     Decimal("4.85"))
    assert trade.realized_pnl == Decimal("110.00")  # (4.85 - 4.30) x 200
    stops = [Decimal(m.payload["to"]["sl_price"]) for m in _moves(trade_id)]
    assert stops == sorted(stops) and stops[0] > Decimal("3.00")  # never loosened
    _cycle(tradier, market, trade_id, "6.60", "6.80")  # the target's price passes: nothing else sells
    sells = [order for order in tradier.orders.values() if order.account_id == SANDBOX_ACCOUNT
             and order.side == "sell_to_close" and order.exec_quantity]
    assert [(order.type, order.exec_quantity) for order in sells] == [("stop", 2)]
    assert tradier.accounts[SANDBOX_ACCOUNT].positions == {}
    assert tradier.orders_tagged(f"to-{trade_id}-close") == []


# --- A modification whose answer never came (StopModifyOutcomeUnknown) --------------------------
# Tradier may have applied it or not (UNCONFIRMED either way): the runner reads the stop back and
# records what the broker holds, and never sends a second modification blind.


@pytest.fixture
def impatient_client(tradier, monkeypatch, tradier_budget_of_its_own):
    """The account's Tradier client gives up on an answer after half a second; the fake's hangs
    last a second."""
    from functools import lru_cache

    from brokers import factory
    from brokers.tradier import RetryPolicy, TradierClient

    factory._tradier_client.cache_clear()
    monkeypatch.setattr(factory, "_tradier_client", lru_cache(lambda base_url, token, account_id: TradierClient(
        base_url=base_url, token=token, account_id=account_id, timeout=(2.0, 0.5),
        retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02), limiter=tradier_budget_of_its_own(token))))
    tradier.hang_seconds = 1.0
    return tradier


def _events(trade_id, kind):
    with tenancy.system_context():
        return list(TradeEvent.objects.filter(trade_id=trade_id, actor_label="exit-policy", kind=kind).order_by("id"))


@pytest.mark.parametrize("new_id", [False, True], ids=["same-id", "new-id"])
def test_a_move_applied_but_unanswered_is_read_back_and_recorded(api_as, trader, impatient_client, market, new_id):
    tradier = impatient_client
    tradier.modify_gives_new_id = new_id
    trade_id = _open(api_as, trader)["id"]
    first_leg, oco = _stop_leg(tradier, trade_id)
    tradier.inject("hang_after", method="PUT")  # applied at the broker, the answer too late

    trade = _cycle(tradier, market, trade_id, "5.00", "5.20")

    leg, _ = _stop_leg(tradier, trade_id)
    assert leg.stop == Decimal("4.50") and (leg.id != first_leg.id) == new_id
    assert (trade.sl_price, trade.sl_order_id, trade.bracket_order_id) == (Decimal("4.50"), str(leg.id), str(oco.id))
    assert len(tradier.requests_for("PUT")) == 1
    [moved] = _moves(trade_id)
    assert moved.payload["read_back"] is True and moved.payload["exit_policy"]["quote"]["bid"] == "5.00"
    assert Decimal(moved.payload["to"]["sl_price"]) == Decimal("4.50")

    trade = _cycle(tradier, market, trade_id, "5.10", "5.30")  # 4.60: a tick step; the interval is over
    assert trade.sl_price == Decimal("4.60") and len(tradier.requests_for("PUT")) == 2
    assert tradier.requests_for("PUT")[-1].path.endswith(f"/orders/{leg.id}")  # the working stop, by its id


def test_a_move_unanswered_and_not_applied_is_read_back_and_asked_again_knowingly(api_as, trader, impatient_client,
                                                                                 market):
    tradier = impatient_client
    trade_id = _open(api_as, trader)["id"]
    tradier.inject("hang_before", method="PUT")  # the answer too late, and nothing done

    trade = _cycle(tradier, market, trade_id, "5.00", "5.20")

    assert trade.sl_price == Decimal("3.00") and _stop_leg(tradier, trade_id)[0].stop == Decimal("3.00")
    assert len(tradier.requests_for("PUT")) == 1 and _moves(trade_id) == []
    [looked] = _events(trade_id, EventKind.STATE_CHANGE)
    assert looked.payload["read_back"] is True and Decimal(looked.payload["to"]["sl_price"]) == Decimal("3.00")
    trade = _cycle(tradier, market, trade_id, "5.00", "5.20")  # the truth known: the next look asks again
    assert trade.sl_price == Decimal("4.50") and _stop_leg(tradier, trade_id)[0].stop == Decimal("4.50")
    assert len(tradier.requests_for("PUT")) == 2


def test_an_unanswered_move_that_cannot_be_read_back_is_read_again_never_sent_again(api_as, trader, impatient_client,
                                                                                   market):
    tradier = impatient_client
    trade_id = _open(api_as, trader)["id"]
    oco_id = _stop_leg(tradier, trade_id)[1].id
    tradier.inject("hang_after", method="PUT")
    tradier.inject("500", method="GET", path=f"/orders/{oco_id}", times=2)  # the read back fails too

    trade = _cycle(tradier, market, trade_id, "5.00", "5.20")

    assert trade.sl_price == Decimal("3.00")  # not known to have moved: the trade keeps what it knows
    [unknown] = _events(trade_id, EventKind.ATTENTION_NEEDED)
    assert unknown.payload["stop_move_unknown"]["asked"] == "4.50"
    trade = _cycle(tradier, market, trade_id, "5.10", "5.30")  # read first: it did move; and 4.60 now
    assert len(tradier.requests_for("PUT")) == 2
    assert [m.payload.get("read_back", False) for m in _moves(trade_id)] == [True, False]
    assert trade.sl_price == Decimal("4.60") and _stop_leg(tradier, trade_id)[0].stop == Decimal("4.60")


def test_a_trade_pointing_at_a_stop_the_broker_replaced_learns_the_working_one(api_as, trader, tradier, market,
                                                                              settings):
    """Should the trade still name a stop Tradier replaced (an answer lost before the read back
    existed), the modify of the dead order is refused as final; the bracket's working stop leg is
    read, and the next look moves it."""
    from brokers import factory

    settings.TRADIER_MODIFY_BUDGET_PER_MINUTE = 40  # three moves in seconds of wall time: within the burst
    factory._tradier_client.cache_clear()
    tradier.modify_gives_new_id = True
    trade_id = _open(api_as, trader)["id"]
    _cycle(tradier, market, trade_id, "5.00", "5.20")  # 4.50, under a new id
    with tenancy.system_context():
        dead = [str(o.id) for o in tradier.orders.values() if o.status == "canceled" and o.type == "stop"]
        PaperTrade.objects.filter(pk=trade_id).update(sl_order_id=dead[0])
    working = _stop_leg(tradier, trade_id)[0]

    trade = _cycle(tradier, market, trade_id, "5.40", "5.60")
    assert trade.sl_order_id == str(working.id) and trade.sl_price == Decimal("4.50")
    assert tradier.requests_for("PUT")[-1].path.endswith(f"/orders/{dead[0]}")
    trade = _cycle(tradier, market, trade_id, "5.40", "5.60")
    assert trade.sl_price == Decimal("4.90") and _stop_leg(tradier, trade_id)[0].stop == Decimal("4.90")
    assert trade.sl_order_id == str(_stop_leg(tradier, trade_id)[0].id)
