"""The exit-policy engine (trades.services.exit_policies): pure, so driven here without a database."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from trades.services import InvalidTradeInput
from trades.services.exit_policies import (
    CloseWhy,
    ExitPolicy,
    ExitState,
    Observation,
    exit_policy_checked,
    exit_policy_evaluate,
    on_tick,
    price_tick,
)

OPENED = datetime(2026, 12, 1, 15, tzinfo=UTC)  # Tuesday 10:00 in New York
CLOSE = datetime(2026, 12, 1, 21, tzinfo=UTC)  # its 16:00 close
EXPIRY = date(2026, 12, 18)
D = Decimal


def _state(**changes) -> ExitState:
    base = ExitState(entry=D("2.00"), stop=D("1.40"), option_type="CALL", opened_at=OPENED, expiry=EXPIRY)
    return replace(base, **changes)


def _seen(bid, *, underlying=None, at=OPENED + timedelta(minutes=5), session_close=CLOSE) -> Observation:
    return Observation(bid=D(bid) if bid is not None else None, underlying=D(underlying) if underlying else None,
                       now=at, today=at.date(), session_close=session_close)


def test_the_tick_grid_is_pennies_under_three_dollars_and_nickels_from_three_up():
    assert (price_tick(D("2.99")), price_tick(D("3.00"))) == (D("0.01"), D("0.05"))
    assert (on_tick(D("3.07")), on_tick(D("2.987")), on_tick(D("3.01"), "ROUND_CEILING")) == (
        D("3.05"), D("2.98"), D("3.05"))


def test_a_trailing_stop_waits_for_its_activation_then_follows_the_best_bid():
    policy = ExitPolicy(trail_pct=D("10"), trail_after_pct=D("20"))
    assert exit_policy_evaluate(policy, _state(), _seen("2.30")).stop is None  # +15 %: not yet
    decision = exit_policy_evaluate(policy, _state(), _seen("2.50"))  # +25 %: 2.50 - 10 % = 2.25
    assert (decision.stop, decision.high_water, decision.why) == (D("2.25"), D("2.50"), "trailing")


def test_a_dollar_trail_above_three_dollars_lands_on_a_nickel():
    decision = exit_policy_evaluate(ExitPolicy(trail_amount=D("0.33")), _state(entry=D("3.10"), stop=D("2.50")),
                                    _seen("3.80"))
    assert decision.stop == D("3.45")  # 3.47 rounded down to the nickel grid


def test_the_stop_never_loosens_when_the_price_falls_back():
    policy = ExitPolicy(trail_amount=D("0.20"))
    state = _state(stop=D("2.30"), high_water=D("2.50"))
    decision = exit_policy_evaluate(policy, state, _seen("2.35"))
    assert (decision.stop, decision.high_water) == (None, D("2.50"))


def test_breakeven_moves_the_stop_to_the_entry_plus_commissions_rounded_up():
    policy = ExitPolicy(breakeven_after_pct=D("30"))
    state = _state(commission_per_share=D("0.013"))
    assert exit_policy_evaluate(policy, state, _seen("2.50")).stop is None  # +25 %
    assert exit_policy_evaluate(policy, state, _seen("2.60")).stop == D("2.02")


def test_a_move_that_would_be_marketable_is_capped_one_tick_under_the_bid():
    policy = ExitPolicy(breakeven_after_pct=D("0"))
    decision = exit_policy_evaluate(policy, _state(commission_per_share=D("0.05")), _seen("2.03"))
    assert decision.stop == D("2.02") and "under the bid" in decision.why


def test_small_moves_and_moves_inside_the_interval_are_not_sent():
    policy = ExitPolicy(trail_amount=D("0.20"), min_step=D("0.10"))
    state = _state(stop=D("2.30"), high_water=D("2.50"))
    assert exit_policy_evaluate(policy, state, _seen("2.55")).stop is None  # 2.35: a 5-cent step
    assert exit_policy_evaluate(policy, state, _seen("2.60")).stop == D("2.40")
    moved = replace(state, last_moved_at=OPENED + timedelta(minutes=4))
    assert exit_policy_evaluate(policy, moved, _seen("2.60"), min_interval=timedelta(minutes=2)).stop is None


@pytest.mark.parametrize(("policy", "seen", "why"), [
    (ExitPolicy(close_minutes_before_close=15), _seen("2.0", at=CLOSE - timedelta(minutes=15)), CloseWhy.SESSION_END),
    # The day after Thanksgiving closes at 13:00: the caller passes that close, the engine counts from it.
    (ExitPolicy(close_minutes_before_close=15), _seen("2.0", at=datetime(2026, 11, 27, 17, 45, tzinfo=UTC),
                                                      session_close=datetime(2026, 11, 27, 18, tzinfo=UTC)),
     CloseWhy.SESSION_END),
    (ExitPolicy(close_days_to_expiry=2), _seen("2.0", at=datetime(2026, 12, 16, 15, tzinfo=UTC)),
     CloseWhy.DAYS_TO_EXPIRY),
    (ExitPolicy(close_after_hours=4), _seen("2.0", at=OPENED + timedelta(hours=4)), CloseWhy.HOURS_HELD),
    (ExitPolicy(underlying_trail_pct=D("1")), _seen("2.0", underlying="593.99"), CloseWhy.UNDERLYING),
])
def test_each_stop_that_closes_fires_at_its_moment(policy, seen, why):
    state = _state(underlying_extreme=D("600"))
    assert exit_policy_evaluate(policy, state, seen).close == why
    assert exit_policy_evaluate(policy, replace(state, exit_requested=True), seen).close is None
    early = replace(seen, now=seen.now - timedelta(minutes=1), today=(seen.now - timedelta(days=1)).date(),
                    underlying=D("594.01") if seen.underlying else None)
    assert exit_policy_evaluate(policy, state, early).close is None


def test_a_puts_stock_stop_trails_the_low_and_fires_on_the_way_up():
    policy = ExitPolicy(underlying_trail_amount=D("2"))
    state = _state(option_type="PUT", underlying_extreme=D("600"))
    lower = exit_policy_evaluate(policy, state, _seen("2.0", underlying="590"))
    assert (lower.close, lower.underlying_extreme) == (None, D("590"))
    assert exit_policy_evaluate(policy, replace(state, underlying_extreme=D("590")),
                                _seen("2.0", underlying="592")).close == CloseWhy.UNDERLYING


def test_a_policy_is_stored_as_exact_decimal_text():
    assert exit_policy_checked({"trail_pct": 15, "trail_after_pct": "20.0", "close_minutes_before_close": "10"}) == {
        "trail_pct": "15", "trail_after_pct": "20", "close_minutes_before_close": "10"}
    assert exit_policy_checked(None) == {} and exit_policy_checked({}) == {}


@pytest.mark.parametrize(("raw", "words"), [
    ({"trail_pct": "10", "trail_amount": "0.5"}, "as a percentage or as a dollar distance, not both"),
    ({"trail_pct": "abc"}, "The trailing stop's percentage must be a number"),
    ({"trail_pct": "150"}, "between 0.1 and 99"),
    ({"close_after_hours": "1.5"}, "The hours held must be a whole number."),
    ({"trail_after_pct": "20"}, "needs a trailing stop"),
    ({"sl": "1"}, "Unknown exit policy settings: sl."),
    ("tight", "Give the exit policy as its settings"),
])
def test_a_bad_policy_is_refused_in_trader_words(raw, words):
    with pytest.raises(InvalidTradeInput) as refused:
        exit_policy_checked(raw)
    assert any(words in text for text in refused.value.field_errors["exit_policy"])


def test_a_typo_in_the_trailing_stop_is_told_once_not_again_as_a_missing_trailing_stop():
    with pytest.raises(InvalidTradeInput) as refused:
        exit_policy_checked({"trail_pct": "0", "trail_after_pct": "10"})
    assert refused.value.field_errors["exit_policy"] == ["The trailing stop's percentage must be between 0.1 and 99."]


prices = st.integers(min_value=5, max_value=900).map(lambda cents: D(cents) / 100)


class RandomPricePath(RuleBasedStateMachine):
    """A trade with a policy watched along a random path of bids, stock prices and minutes."""

    @initialize(policy=st.builds(
        ExitPolicy,
        trail_pct=st.none() | st.sampled_from([D("5"), D("12.5"), D("30")]),
        trail_after_pct=st.none() | st.sampled_from([D("0"), D("10"), D("50")]),
        min_step=st.none() | st.sampled_from([D("0.01"), D("0.05"), D("0.25")]),
        breakeven_after_pct=st.none() | st.sampled_from([D("0"), D("15")]),
        underlying_trail_pct=st.none() | st.sampled_from([D("0.5"), D("2")]),
        close_minutes_before_close=st.none() | st.sampled_from([5, 30]),
        close_after_hours=st.none() | st.sampled_from([1, 3]),
        scale_out_at_pct=st.none() | st.sampled_from([D("5"), D("40")]),
        scale_out_pct=st.sampled_from([D("1"), D("50"), D("99")]),
    ), entry=prices, commission=st.sampled_from([D("0"), D("0.013")]), held=st.integers(1, 12))
    def open_trade(self, policy, entry, commission, held):
        self.policy, self.interval = policy, timedelta(minutes=2)
        self.state = ExitState(entry=entry, stop=on_tick(entry / 2), option_type="CALL", opened_at=OPENED,
                               expiry=EXPIRY, commission_per_share=commission, held=held)
        self.now, self.underlying, self.closes, self.time_stop_due = OPENED, D("600"), 0, False
        self.bought, self.scale_outs = held, 0

    @rule(bid=prices, stock_move=st.integers(min_value=-300, max_value=300), minutes=st.integers(0, 45))
    def quote(self, bid, stock_move, minutes):
        self.now += timedelta(minutes=minutes)
        self.underlying += D(stock_move) / 100
        session_close = CLOSE if self.now < CLOSE else None
        seen = Observation(bid=bid, underlying=self.underlying, now=self.now, today=self.now.date(),
                           session_close=session_close)
        before = self.state
        decision = exit_policy_evaluate(self.policy, before, seen, min_interval=self.interval)
        if decision.stop is not None:
            assert decision.stop > before.stop, "the stop never loosens"
            assert decision.stop < bid, "a stop move is never marketable at once"
            assert decision.stop - before.stop >= max(self.policy.min_step or D("0.01"), price_tick(decision.stop))
            assert decision.stop == on_tick(decision.stop), "a stop is on the tick grid"
            assert before.last_moved_at is None or self.now - before.last_moved_at >= self.interval
        if decision.close is not None:
            assert decision.stop is None and decision.scale_out == 0
            self.closes += 1
        if decision.scale_out:
            assert 1 <= decision.scale_out < before.held, "a scale-out sells part, never all"
            assert bid >= before.entry * (1 + self.policy.scale_out_at_pct / 100)
            self.scale_outs += 1
        self.time_stop_due |= self._time_stop_due(session_close)
        self.state = replace(before, stop=decision.stop or before.stop, high_water=decision.high_water,
                             underlying_extreme=decision.underlying_extreme,
                             last_moved_at=self.now if decision.stop is not None else before.last_moved_at,
                             exit_requested=before.exit_requested or decision.close is not None,
                             held=before.held - decision.scale_out, scaled_out=before.scaled_out or bool(
                                 decision.scale_out))

    def _time_stop_due(self, session_close) -> bool:
        before_close = self.policy.close_minutes_before_close
        held = self.policy.close_after_hours
        return bool((before_close is not None and session_close is not None
                     and self.now >= session_close - timedelta(minutes=before_close))
                    or (held is not None and self.now - OPENED >= timedelta(hours=held)))

    @invariant()
    def closes_at_most_once_and_a_due_time_stop_has_fired(self):
        assert self.closes <= 1
        assert self.scale_outs <= 1 and 1 <= self.state.held <= self.bought
        if self.time_stop_due:
            assert self.closes == 1


def test_random_price_paths_keep_every_promise():
    run_state_machine_as_test(RandomPricePath, settings=settings(max_examples=150, stateful_step_count=40,
                                                                 deadline=None))


# --- Scale-out -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("held", "share", "sold"), [
    (10, "50", 5), (5, "50", 2), (3, "10", 1), (2, "99", 1), (4, "75", 3), (1, "50", 0)])
def test_a_scale_out_sells_whole_contracts_at_least_one_and_never_all(held, share, sold):
    assert ExitPolicy(scale_out_at_pct=D("20"), scale_out_pct=D(share)).scale_out_quantity(held) == sold


def test_a_scale_out_fires_at_its_gain_once_and_the_trailing_stop_still_moves():
    policy = ExitPolicy(scale_out_at_pct=D("25"), scale_out_pct=D("50"), trail_amount=D("0.30"))
    assert exit_policy_evaluate(policy, _state(held=4), _seen("2.49")).scale_out == 0  # +24.5 %
    decision = exit_policy_evaluate(policy, _state(held=4), _seen("2.50"))
    assert (decision.scale_out, decision.stop) == (2, D("2.20"))
    assert decision.why == "scale-out: 2 of 4 at +25%"
    assert exit_policy_evaluate(policy, _state(held=2, scaled_out=True), _seen("3.00")).scale_out == 0
    assert exit_policy_evaluate(policy, _state(held=1), _seen("3.00")).scale_out == 0


def test_a_close_comes_before_a_scale_out():
    policy = ExitPolicy(scale_out_at_pct=D("10"), scale_out_pct=D("50"), close_after_hours=1)
    decision = exit_policy_evaluate(policy, _state(held=4), _seen("3.00", at=OPENED + timedelta(hours=2)))
    assert (decision.close, decision.scale_out) == (CloseWhy.HOURS_HELD, 0)


@pytest.mark.parametrize(("raw", "quantity", "words"), [
    ({"scale_out_at_pct": "20"}, None, "needs both the gain that sells the first part and the share"),
    ({"scale_out_pct": "50"}, None, "needs both"),
    ({"scale_out_at_pct": "20", "scale_out_pct": "100"}, None, "The share of contracts sold there must be between "
                                                              "1 and 99."),
    ({"scale_out_at_pct": "20", "scale_out_pct": "50"}, 1, "it needs at least 2 contracts, this trade has 1."),
])
def test_a_bad_scale_out_is_refused_in_trader_words(raw, quantity, words):
    with pytest.raises(InvalidTradeInput) as refused:
        exit_policy_checked(raw, quantity=quantity)
    assert any(words in text for text in refused.value.field_errors["exit_policy"])


def test_a_scale_out_on_two_contracts_is_accepted():
    assert exit_policy_checked({"scale_out_at_pct": "20.0", "scale_out_pct": "50"}, quantity=2) == {
        "scale_out_at_pct": "20", "scale_out_pct": "50"}


def test_a_typo_in_the_scale_out_share_is_told_once_not_as_a_missing_half():
    with pytest.raises(InvalidTradeInput) as refused:
        exit_policy_checked({"scale_out_at_pct": "20", "scale_out_pct": "100"}, quantity=4)
    assert refused.value.field_errors["exit_policy"] == ["The share of contracts sold there must be between 1 and 99."]


# --- A multi-leg trade's policy follows its held price, in its direction (docs/spreads.md) -----------


def _credit(**changes) -> ExitState:
    """A credit spread sold for 0.90 with its stop at 1.50 (buying it back for 1.50), priced in cents."""
    base = ExitState(entry=D("0.90"), stop=D("1.50"), option_type="PUT", opened_at=OPENED, expiry=EXPIRY,
                     direction="credit", cent_grid=True)
    return replace(base, **changes)


def test_a_credit_trades_trailing_stop_trails_down_as_the_cost_to_close_falls_and_never_rises():
    policy = ExitPolicy(trail_amount=D("0.20"))
    first = exit_policy_evaluate(policy, _credit(), _seen("0.70"))
    assert (first.stop, first.high_water, first.why) == (D("0.90"), D("0.70"), "trailing")  # 0.70 + 0.20
    lower = exit_policy_evaluate(policy, _credit(stop=D("0.90"), high_water=D("0.70")), _seen("0.50"))
    assert (lower.stop, lower.high_water) == (D("0.70"), D("0.50"))  # the best is the lowest cost seen
    back_up = exit_policy_evaluate(policy, _credit(stop=D("0.70"), high_water=D("0.50")), _seen("0.65"))
    assert (back_up.stop, back_up.high_water) == (None, D("0.50"))  # never loosens, the best stays


def test_a_credit_trades_percentage_trail_waits_for_its_gain_and_rounds_away_from_the_price():
    policy = ExitPolicy(trail_pct=D("15"), trail_after_pct=D("30"))
    assert exit_policy_evaluate(policy, _credit(), _seen("0.70")).stop is None  # 22 % of the credit kept
    decision = exit_policy_evaluate(policy, _credit(), _seen("0.61"))  # 32 %: 0.61 + 15 % = 0.7015
    assert decision.stop == D("0.71")  # up to the cent: the stop is never tighter than the policy says


def test_a_credit_trades_stop_stays_a_cent_over_the_held_mid():
    decision = exit_policy_evaluate(ExitPolicy(trail_amount=D("0.01")), _credit(), _seen("0.40"))
    assert (decision.stop, decision.why) == (D("0.41"), "trailing")
    capped = exit_policy_evaluate(ExitPolicy(breakeven_after_pct=D("10")),
                                  _credit(entry=D("0.90"), commission_per_share=D("0")), _seen("0.80"))
    assert capped.stop == D("0.90")  # breakeven: the credit itself, still above the mid


def test_a_credit_trades_breakeven_keeps_the_commissions():
    decision = exit_policy_evaluate(ExitPolicy(breakeven_after_pct=D("30")),
                                    _credit(commission_per_share=D("0.026")), _seen("0.60"))
    assert (decision.stop, decision.why) == (D("0.87"), "breakeven")  # 0.90 − 0.026, down to the cent


def test_a_debit_spread_trails_on_cents_even_above_three_dollars():
    state = ExitState(entry=D("3.50"), stop=D("2.50"), option_type="CALL", opened_at=OPENED, expiry=EXPIRY,
                      cent_grid=True)
    assert exit_policy_evaluate(ExitPolicy(trail_amount=D("0.33")), state, _seen("4.20")).stop == D("3.87")


@pytest.mark.parametrize("policy, words", [
    ({"scale_out_at_pct": "50", "scale_out_pct": "50"}, "A spread closes whole"),
    ({"underlying_trail_pct": "2"}, "trail the spread's own price"),
])
def test_a_spread_refuses_the_single_option_rules_on_its_exit_policy(policy, words):
    with pytest.raises(InvalidTradeInput) as refused:
        exit_policy_checked(policy, quantity=4, multi_leg=True)
    assert set(refused.value.field_errors) == {"exit_policy"} and words in " ".join(
        refused.value.field_errors["exit_policy"])
    assert exit_policy_checked(policy, quantity=4)  # a single option's are still fine
