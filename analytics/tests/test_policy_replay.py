"""The exit replay's policies: trailing stops, breakeven moves and time stops replayed with the
live engine on hand-computed recorded paths, net of commissions, against the trades' own
brackets replayed by the same rule."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import selectors
from tests.factories import ClosedTradeFactory, PriceSnapshotFactory, TradeEventFactory
from tradeoptions import tenancy
from trades.models import AccountSettings, Actor, EventKind, PaperTrade, TradeStatus

NOW = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)  # a Saturday after every path below
ENTRY = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York, a regular session to 16:00
EXPIRY = date(2026, 12, 18)
COSTS = {"entry_commission": Decimal("0.65"), "exit_commission": Decimal("0.65"),
         "commission_per_contract": Decimal("0.65")}


@pytest.fixture(autouse=True)
def pinned_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def _trade(owner, marks, *, entry=ENTRY, close_after=60, close="1.50", qty=1, strategy="momentum", **fields):
    """A closed trade: entry 2.00, stop 1.00, target 5.00 unless given; `marks` as {minutes: mark}."""
    values = {"qty": qty, "entry_price": Decimal("2.00"), "sl_price": Decimal("1.00"), "tp_price": Decimal("5.00"),
              "entry_date": entry, "close_date": entry + timedelta(minutes=close_after),
              "close_price": Decimal(close), "strategy": strategy, "expiry": EXPIRY, "ticker": "SPY",
              **{name: value * qty for name, value in COSTS.items() if name != "commission_per_contract"},
              "commission_per_contract": COSTS["commission_per_contract"], **fields}
    trade = ClosedTradeFactory(owner=owner, **values)
    for minutes, mark in marks.items():
        PriceSnapshotFactory(trade=trade, timestamp=entry + timedelta(minutes=minutes), mark_price=Decimal(mark))
    return trade


def _policies(api_as, user, strict_json, strategy="momentum"):
    body = strict_json(api_as(user).get("/api/analytics/exit-policy-replay"))
    (row,) = [row for row in body["strategies"] if row["strategy"] == strategy]
    return body, row, {candidate["key"]: candidate for candidate in row["candidates"]}


def test_a_trailing_stop_locks_a_gain_the_own_bracket_gave_back(api_as, trader, other_trader, strict_json):
    # 2.00 → 2.50 (+10') → 3.00 (+20') → 2.60 (+30') → 2.30 (+40') → closed by hand at 1.50 (+60').
    _trade(trader, {10: "2.50", 20: "3.00", 30: "2.60", 40: "2.30"})
    _trade(other_trader, {10: "4.00"}, strategy="momentum")  # never in alice's answer
    body, policies, rows = _policies(api_as, trader, strict_json)
    assert "live engine" in body["basis"] and "at that mark" in body["basis"] and body["hindsight"] is True
    assert (body["trades_replayed"], body["trades_left_out"], policies["trades"]) == (1, 0, 1)
    # Own 1.00 stop and 5.00 target untouched: out at 1.50, -$50 less $0.65 in and $0.65 out.
    assert policies["own_brackets"]["total_pnl"] == "-51.30" and policies["own_brackets"]["gross_pnl"] == "-50.00"
    # Trail 20 %: stop 2.00 at 2.50, 2.40 at 3.00; 2.30 is at or below it: sold there, +$30 - $1.30.
    trail = rows["trail_20"]
    assert (trail["total_pnl"], trail["gross_pnl"], trail["wins"], trail["trades"]) == ("28.70", "30.00", 1, 1)
    assert trail["vs_own_brackets"] == "80.00" and trail["verdict"] == "better"
    assert trail["sentence"] == "Would have made $80.00 more than your own brackets."
    assert trail["exits"] == {"stop": 1, "target": 0, "policy": 0, "closed": 0}
    assert trail["avg_hold_hours"] == round(40 / 60, 2) and trail["words"] == "trail 20 %"
    # Trail 10 %: 2.25, then 2.70 at 3.00; 2.60 sells: +$60 - $1.30. The best of the set.
    assert rows["trail_10"]["total_pnl"] == "58.70" and policies["best"] == "trail_10"
    assert rows["trail_20_after_20"]["total_pnl"] == "28.70"  # +25 % at the first look: trails at once
    # Trail 30 %: 1.75, then 2.10; only the 1.50 close is below it, at the close's own fill and commission.
    assert rows["trail_30"]["total_pnl"] == "-51.30" and rows["trail_30"]["verdict"] == "same"
    assert rows["trail_30"]["exits"]["stop"] == 1
    # No stock price recorded: the stock trailing stop never acts, and says how many trades it could not watch.
    assert rows["stock_trail_2"]["total_pnl"] == "-51.30" and rows["stock_trail_2"]["trades_without_stock_price"] == 1
    assert rows["close_after_24h"]["total_pnl"] == "-51.30" and rows["close_1_dte"]["total_pnl"] == "-51.30"
    assert policies["sentence"] == ("On the same recorded paths, \u201ctrail 10 %\u201d would have made $110.00 more "
                                    "than your own brackets, after commissions.")


def test_a_breakeven_move_saves_a_loss(api_as, trader, strict_json):
    # Two contracts, $0.65 each way: breakeven is 2.00 + (1.30 + 1.30) / 200 = 2.013, on the tick 2.02.
    # 2.50 (+25 %) moves the stop to 2.02; 2.02 at +20' sells there; the trade fell on to 1.10.
    _trade(trader, {10: "2.50", 20: "2.02", 30: "1.20"}, close="1.10", qty=2)
    _, policies, rows = _policies(api_as, trader, strict_json)
    assert policies["own_brackets"]["total_pnl"] == "-182.60"  # (1.10 - 2.00) × 200 - 2.60
    breakeven = rows["breakeven_20"]
    assert (breakeven["total_pnl"], breakeven["gross_pnl"], breakeven["wins"]) == ("1.40", "4.00", 1)
    assert breakeven["vs_own_brackets"] == "184.00" and breakeven["words"] == "breakeven at +20 %"
    assert rows["breakeven_50"]["total_pnl"] == "-182.60"  # +25 % never reached +50 %


def test_a_time_stop_before_an_early_close(api_as, trader, strict_json):
    # Friday 27 November 2026, the day after Thanksgiving: the session closes at 13:00 (18:00 UTC).
    # Entered 10:00; 12:20 (2.40) is 40 minutes before the bell, 12:30 (2.60) is 30: sold at 2.60.
    entry = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    _trade(trader, {140: "2.40", 150: "2.60", 170: "2.20"}, entry=entry, close_after=180, close="1.90")
    _, policies, rows = _policies(api_as, trader, strict_json)
    stop = rows["close_30_before_close"]
    assert (stop["total_pnl"], stop["exits"]["policy"], stop["avg_hold_hours"]) == ("58.70", 1, 2.5)
    assert policies["own_brackets"]["total_pnl"] == "-11.30"
    assert stop["words"] == "close 30 min before the bell"


def test_the_same_path_on_a_regular_day_is_not_near_the_close(api_as, trader, strict_json):
    # Tuesday 1 December closes at 16:00 (21:00 UTC): 12:30 is hours before it.
    _trade(trader, {140: "2.40", 150: "2.60", 170: "2.20"}, close_after=180, close="1.90")
    _, _, rows = _policies(api_as, trader, strict_json)
    assert rows["close_30_before_close"]["total_pnl"] == "-11.30"
    assert rows["close_30_before_close"]["exits"]["closed"] == 1


def test_days_to_expiry_and_hours_held(api_as, trader, strict_json):
    # Entered Tuesday 1 December for an expiry on Thursday 3 December; recorded each morning.
    _trade(trader, {24 * 60: "2.40", 25 * 60: "2.80"}, close_after=26 * 60, close="1.00", expiry=date(2026, 12, 3))
    _, _, rows = _policies(api_as, trader, strict_json)
    # Wednesday 2 December is 1 day to expiry: the first look that day sells at 2.40 (+40 - 1.30).
    assert rows["close_1_dte"]["total_pnl"] == "38.70"
    assert rows["close_after_24h"]["total_pnl"] == "38.70"  # held 24 h at that same look


def test_presets_and_the_trades_own_policy_join_the_candidates(api_as, trader, strict_json):
    with tenancy.acting_as(trader.pk):
        AccountSettings.objects.update_or_create(owner=trader, defaults={"strategy_presets": {
            "momentum": {"sl_pct": "50", "exit_policy": {"trail_pct": "15"}},
            "swing": {"exit_policy": {"trail_pct": "20"}}}})
    # The policy trailed this trade's stop live from 1.00 to 2.40; its own bracket is the 1.00 stop.
    trade = _trade(trader, {10: "2.50", 20: "3.00", 30: "2.60", 40: "2.30"}, sl_price=Decimal("2.40"),
                   exit_policy={"trail_pct": "10"})
    TradeEventFactory(trade=trade, kind=EventKind.BRACKET_ADJUSTED, actor=Actor.SYSTEM, old_status=TradeStatus.OPEN,
                      new_status=TradeStatus.OPEN, payload={"from": {"sl_price": "1.00"}, "to": {"sl_price": "2.25"},
                                                            "exit_policy": {"policy": {"trail_pct": "10"}}})
    _trade(trader, {10: "2.50"}, strategy="swing")
    _, policies, rows = _policies(api_as, trader, strict_json)
    assert policies["own_brackets"]["total_pnl"] == "-51.30"  # the 1.00 stop, not the trailed 2.40
    grid = strict_json(api_as(trader).get("/api/analytics/exit-replay"))["strategies"]
    assert [row["own_brackets_pnl"] for row in grid if row["strategy"] == "momentum"] == ["-50.00"]  # the same stop
    # Preset trail 15 %: 2.125 → 2.12, then 2.55 at 3.00; 2.30 sells (+30 - 1.30).
    assert rows["preset"]["policy"] == {"trail_pct": "15"} and rows["preset"]["preset"] is True
    assert rows["preset"]["total_pnl"] == "28.70" and rows["preset"]["words"] == "trail 15 %"
    # Its own trail 10 %, replayed from the entry: as the fixed 10 % candidate.
    assert rows["own"]["policy"] is None and rows["own"]["total_pnl"] == rows["trail_10"]["total_pnl"] == "58.70"
    assert not any(row["preset"] for key, row in rows.items() if key != "preset")
    _, swing, swing_rows = _policies(api_as, trader, strict_json, strategy="swing")
    assert swing_rows["trail_20"]["preset"] is True and "preset" not in swing_rows and "own" not in swing_rows


def test_a_policy_set_after_the_open_is_not_a_stop_move(api_as, trader, strict_json):
    """`exit_policy_set` writes a BRACKET_ADJUSTED event with an `exit_policy` key but no stop
    "from": the trader's own stop is the first real move's "from", not the last trailed stop."""
    trade = _trade(trader, {10: "2.50", 20: "3.00", 30: "2.60", 40: "2.30"}, sl_price=Decimal("2.40"),
                   exit_policy={"trail_pct": "10"})
    moves = [
        ({"exit_policy": {"from": {}, "to": {"trail_pct": "10"}}}, "exit-policy"),  # set after the open
        ({"from": {"sl_price": "1.00"}, "to": {"sl_price": "2.25"}, "exit_policy": {"policy": {"trail_pct": "10"}}},
         "exit-policy"),
        ({"from": {"sl_price": "2.25"}, "to": {"sl_price": "2.40"}, "exit_policy": {"policy": {"trail_pct": "10"}}},
         "exit-policy"),
    ]
    for payload, label in moves:
        TradeEventFactory(trade=trade, kind=EventKind.BRACKET_ADJUSTED, actor=Actor.SYSTEM, actor_label=label,
                          old_status=TradeStatus.OPEN, new_status=TradeStatus.OPEN, payload=payload)
    with tenancy.acting_as(trader.pk):
        assert selectors.stops_before_policy(PaperTrade.objects.filter(pk=trade.pk)) == {trade.pk: 10000}
    _, policies, _ = _policies(api_as, trader, strict_json)
    assert policies["own_brackets"]["total_pnl"] == "-51.30"  # the 1.00 stop, not the trailed 2.40


def test_the_replay_runs_the_live_engine(api_as, trader, strict_json, monkeypatch):
    # Teach the engine's time stops to close at every look: the replay sells trail 20 % at the first one.
    # (Reached by name, not imported: the engine's insides are private to trades, and only this proof
    # that the replay runs them, not a copy, has reason to touch them.)
    _trade(trader, {10: "2.50", 20: "3.00", 30: "2.60", 40: "2.30"})
    assert _policies(api_as, trader, strict_json)[2]["trail_20"]["total_pnl"] == "28.70"
    monkeypatch.setattr("trades.services.exit_policies._time_stop",
                        lambda policy, state, seen: ("hours_held", "always"))
    rows = _policies(api_as, trader, strict_json)[2]
    assert rows["trail_20"]["total_pnl"] == "48.70"  # 2.50 at +10': +50 - 1.30
    assert rows["trail_20"]["exits"]["policy"] == 1


def test_one_set_of_queries_for_any_number_of_trades(trader):
    def queries(trades: int) -> int:
        for _ in range(trades):
            _trade(trader, {10: "2.50", 20: "3.00"}, exit_policy={"trail_pct": "10"})
        with tenancy.acting_as(trader.pk), CaptureQueriesContext(connection) as captured:
            report = selectors.exit_policy_replay(user=trader)
        assert report["strategies"][0]["candidates"]
        return len(captured)

    assert queries(1) == queries(5) == 5  # trades, policy moves, snapshots, costs and policies, presets


def test_the_newest_closes_first_within_the_looks_replayed(api_as, trader, strict_json, monkeypatch):
    # Three trades of 4 looks each (entry, two snapshots, close), closed a day apart; room for 9 looks.
    monkeypatch.setattr(selectors, "POLICY_REPLAY_LOOKS", 9)
    for day in range(3):
        _trade(trader, {10: "2.50", 20: "3.00"}, entry=ENTRY - timedelta(days=day), close="2.00" if day else "3.00")
    body = strict_json(api_as(trader).get("/api/analytics/exit-policy-replay"))
    assert (body["max_looks"], body["trades_replayed"], body["trades_left_out"]) == (9, 2, 1)
    (momentum,) = body["strategies"]
    # The newest (closed at 3.00, +$100 - $1.30) and the next (2.00, -$1.30); the oldest left out.
    assert momentum["trades"] == 2 and momentum["own_brackets"]["total_pnl"] == "97.40"


def test_no_policy_is_named_best_for_doing_only_as_well(api_as, trader, strict_json):
    # Straight to the close at 2.40, nothing on the way: every policy leaves there, as the brackets do.
    _trade(trader, {}, close="2.40")
    _, policies, rows = _policies(api_as, trader, strict_json)
    assert {row["total_pnl"] for row in rows.values()} == {policies["own_brackets"]["total_pnl"]} == {"38.70"}
    assert policies["best"] is None and {row["verdict"] for row in rows.values()} == {"same"}
    assert policies["sentence"].startswith("None of these exit policies would have beaten your own brackets")


def test_no_trades_no_policies(api_as, trader, strict_json):
    body = strict_json(api_as(trader).get("/api/analytics/exit-policy-replay"))
    assert (body["strategies"], body["trades_replayed"], body["trades_left_out"]) == ([], 0, 0)


def test_a_bad_date_is_a_field_error(api_as, trader):
    response = api_as(trader).get("/api/analytics/exit-policy-replay", {"from": "2026-12-10", "to": "2026-12-01"})
    assert response.status_code == 400


# --- The walk itself, without a database ----------------------------------------------------------


def _walk(marks, *, exit_commission="0.65", close_mark="1.50", qty=1):
    """A one-contract trade entered 2.00 at ENTRY (stop 1.00, target 5.00), one look every 10
    minutes inside Tuesday's session, closed 10 minutes after the last at `close_mark`."""
    from analytics import policy_replay

    session_close = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    rows = [(ENTRY, Decimal("2.00"), None, 0)]
    rows += [(ENTRY + timedelta(minutes=10 * (n + 1)), Decimal(mark), None, 1) for n, mark in enumerate(marks)]
    rows.append((ENTRY + timedelta(minutes=10 * (len(marks) + 1)), Decimal(close_mark), None, 2))
    looks = policy_replay.looks_of(rows, lambda at: (date(2026, 12, 1), session_close))
    return policy_replay.ReplayTrade(
        id=1, strategy="s", option_type="CALL", expiry=EXPIRY, entry=Decimal("2.00"), stop=Decimal("1.00"),
        target=Decimal("5.00"), qty=qty, opened_at=ENTRY, entry_commission=Decimal("0.65"),
        exit_commission=Decimal(exit_commission), rate=Decimal("0.65"), fees=Decimal(0), looks=looks)


def test_a_moved_stop_counts_from_the_next_look_and_sells_at_its_mark():
    from analytics import policy_replay
    from trades.services import ExitPolicy

    trade = _walk(["2.50", "1.90"])
    leave = policy_replay.trade_replay(trade, ExitPolicy(trail_pct=Decimal(10)), min_interval=timedelta(0))
    # 2.50 moves the stop to 2.25; 1.90 gaps through it: sold at 1.90, not at 2.25.
    assert (leave.price, leave.how, leave.at_close) == (Decimal("1.90"), policy_replay.STOP, False)
    assert policy_replay.pnl(trade, leave) == (Decimal("-10.00"), Decimal("-11.30"))


def test_an_expiry_settlement_keeps_its_booked_exit_commission_only_where_it_left():
    # Expired worthless: no exit commission was booked. Left at the close, the replay books none
    # either; a policy that sells earlier pays the trade's rate for that sale.
    from analytics import policy_replay
    from trades.services import ExitPolicy

    trade = _walk(["2.50"], exit_commission="0", close_mark="0")
    held = policy_replay.trade_replay(trade, ExitPolicy(), min_interval=timedelta(0))
    assert held.at_close and policy_replay.pnl(trade, held) == (Decimal("-200.00"), Decimal("-200.65"))
    sold = policy_replay.trade_replay(trade, ExitPolicy(close_after_hours=None, trail_pct=Decimal(20)),
                                      min_interval=timedelta(0))
    # Trailing 20 % from 2.50 puts the stop at 2.00; the 0 close is below it, at the close's own look.
    assert sold.at_close and sold.how == policy_replay.STOP
    early = policy_replay.trade_replay(trade, ExitPolicy(close_minutes_before_close=390), min_interval=timedelta(0))
    assert (early.price, early.at_close) == (Decimal("2.50"), False)
    assert policy_replay.pnl(trade, early) == (Decimal("50.00"), Decimal("48.70"))


def test_a_scale_out_sells_its_share_at_the_mark_that_reached_it_and_the_rest_rides():
    from analytics import policy_replay
    from trades.services import ExitPolicy

    trade = _walk(["2.50", "3.00", "2.30"], qty=4)
    policy = ExitPolicy(scale_out_at_pct=Decimal(25), scale_out_pct=Decimal(50), trail_pct=Decimal(20))
    leave = policy_replay.trade_replay(trade, policy, min_interval=timedelta(0))
    # 2.50 is +25 %: 2 of 4 sell there (no stop move that look, as live); 3.00 trails the stop to
    # 2.40; 2.30 gaps through it and the other 2 sell at 2.30.
    assert leave.parts == (policy_replay.Part(2, Decimal("2.50"), ENTRY + timedelta(minutes=10)),)
    assert (leave.price, leave.how, leave.at_close) == (Decimal("2.30"), policy_replay.STOP, False)
    # 2 × 0.50 × 100 + 2 × 0.30 × 100; net less the entry's 0.65 and two sales of 2 at 0.65 each.
    assert policy_replay.pnl(trade, leave) == (Decimal("160.00"), Decimal("156.75"))
    # Left whole at the real close, the exit commission is the one booked; a scale-out makes it two sales.
    assert policy_replay.pnl(trade, policy_replay.trade_replay(trade, ExitPolicy(), min_interval=timedelta(0))) \
        == (Decimal("-200.00"), Decimal("-201.30"))


def test_a_scale_out_is_said_in_words():
    from analytics import policy_replay

    words = policy_replay.policy_words({"trail_pct": "20", "scale_out_pct": "50", "scale_out_at_pct": "25"})
    assert words == "trail 20 %, scale out 50 % at +25 %"
