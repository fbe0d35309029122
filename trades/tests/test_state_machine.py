"""The one gate for a trade's state: allowed moves only, one event and one version per move."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.factories import PaperTradeFactory
from tradeoptions import tenancy
from trades import services
from trades.models import ALLOWED_TRANSITIONS, Actor, CloseReason, PaperTrade, TradeEvent, TradeStatus

FILL = {"entry_price": Decimal("4.30"), "entry_date": datetime(2026, 12, 1, 15, tzinfo=UTC)}
CLOSE = {"close_price": Decimal("5.00"), "close_date": datetime(2026, 12, 2, 15, tzinfo=UTC)}


@pytest.fixture
def pending(trader):
    return PaperTradeFactory(owner=trader, status=TradeStatus.PENDING, entry_price=None, entry_date=None)


def _move(trade, to, **kwargs):
    with tenancy.acting_as(trade.owner_id):
        return services.trade_transition(trade_id=trade.pk, to=to, actor=Actor.SYSTEM, actor_label="test", **kwargs)


def test_every_state_has_a_row_and_final_states_lead_nowhere():
    assert set(ALLOWED_TRANSITIONS) == set(TradeStatus.values)
    for final in (TradeStatus.CLOSED, TradeStatus.CANCELED, TradeStatus.REJECTED):
        assert ALLOWED_TRANSITIONS[final] == frozenset()


def test_a_move_bumps_the_version_and_writes_one_event(pending):
    trade = _move(pending, TradeStatus.OPEN, changes=FILL, payload={"why": "filled"})
    assert (trade.status, trade.version) == (TradeStatus.OPEN, 2)
    with tenancy.acting_as(pending.owner_id):
        stored = PaperTrade.objects.get(pk=pending.pk)
        (event,) = TradeEvent.objects.filter(trade=pending)
    assert (stored.status, stored.version, stored.entry_price) == (TradeStatus.OPEN, 2, Decimal("4.30"))
    assert (event.old_status, event.new_status, event.actor) == ("PENDING", "OPEN", "SYSTEM")
    assert event.payload["why"] == "filled" and event.payload["changes"]["entry_price"] == "4.30"


@pytest.mark.parametrize(("to", "changes", "message"), [
    (TradeStatus.CLOSED, {**FILL, **CLOSE, "close_reason": CloseReason.TP_HIT}, "cannot become"),
    (TradeStatus.OPEN, {}, "needs entry_price, entry_date"),
    (TradeStatus.CANCELED, {"close_reason": CloseReason.MANUAL_CLOSE}, "set once"),
])
def test_a_refused_move_changes_nothing(pending, to, changes, message):
    with pytest.raises(services.InvalidTransition, match=message):
        _move(pending, to, changes=changes)
    with tenancy.acting_as(pending.owner_id):
        assert PaperTrade.objects.get(pk=pending.pk).version == 1
        assert not TradeEvent.objects.filter(trade=pending).exists()


def test_a_stale_version_is_refused_with_the_current_trade(pending):
    _move(pending, TradeStatus.OPEN, changes=FILL)
    with pytest.raises(services.VersionConflict) as conflict:
        _move(pending, TradeStatus.CLOSING, expected_version=1)
    assert conflict.value.trade.version == 2 and conflict.value.trade.status == TradeStatus.OPEN


def test_the_close_reason_is_set_exactly_once(pending):
    _move(pending, TradeStatus.OPEN, changes=FILL)
    with pytest.raises(services.InvalidTransition, match="exactly one close reason"):
        _move(pending, TradeStatus.CLOSED, changes=CLOSE)
    _move(pending, TradeStatus.CLOSED, changes={**CLOSE, "close_reason": CloseReason.SL_HIT})
    with pytest.raises(services.InvalidTransition):
        _move(pending, TradeStatus.CLOSED, changes={"close_reason": CloseReason.TP_HIT})


def test_the_machine_sets_status_and_version_itself(pending):
    with pytest.raises(ValueError, match="version"):
        _move(pending, TradeStatus.OPEN, changes={**FILL, "version": 9})


class TradeLifecycle(RuleBasedStateMachine):
    """Random sequences of moves, some allowed, some not, some with missing data or a stale
    version: the stored trade always matches a model of the machine, and no event is lost."""

    owner = None

    def __init__(self):
        super().__init__()
        self.trade = PaperTradeFactory(owner=self.owner, status=TradeStatus.PENDING, entry_price=None,
                                       entry_date=None)
        self.status, self.version, self.moves, self.reason = TradeStatus.PENDING, 1, 0, None
        self.has_fill = False

    @rule(to=st.sampled_from(TradeStatus.values), with_data=st.booleans(),
          reason=st.sampled_from([None, *CloseReason.values]), stale=st.booleans())
    def move(self, to, with_data, reason, stale):
        changes = {}
        if with_data:
            changes.update(FILL if to != TradeStatus.CLOSED else {**FILL, **CLOSE})
        if reason:
            changes["close_reason"] = reason
        expected = self.version - 1 if stale else self.version
        allowed = (
            not stale
            and to in ALLOWED_TRANSITIONS[self.status]
            and (bool(reason) == (to == TradeStatus.CLOSED and self.status != TradeStatus.CLOSED))
            and (to not in (TradeStatus.OPEN, TradeStatus.CLOSING) or with_data or self.has_fill)
            and (to != TradeStatus.CLOSED or with_data)  # the close price and date come with the move
        )
        try:
            _move(self.trade, to, changes=changes, expected_version=expected)
        except (services.InvalidTransition, services.VersionConflict):
            assert not allowed, f"{self.status} -> {to} was refused"
            return
        assert allowed, f"{self.status} -> {to} went through"
        self.status, self.version, self.moves = to, self.version + 1, self.moves + 1
        self.has_fill = self.has_fill or bool(changes.get("entry_price"))
        self.reason = reason or self.reason

    @invariant()
    def stored_trade_matches_the_model(self):
        with tenancy.acting_as(self.owner.pk):
            stored = PaperTrade.objects.get(pk=self.trade.pk)
            events = list(TradeEvent.objects.filter(trade=self.trade).values_list("old_status", "new_status"))
        assert stored.status == self.status and stored.version == self.version
        assert stored.close_reason == self.reason
        assert (stored.close_reason is not None) == (stored.status == TradeStatus.CLOSED)
        assert len(events) == self.moves
        assert all(new in ALLOWED_TRANSITIONS[old] for old, new in events)
        if events:
            assert events[-1][1] == self.status


def test_no_sequence_of_moves_reaches_an_undefined_state_or_loses_an_event(trader):
    TradeLifecycle.owner = trader
    run_state_machine_as_test(TradeLifecycle, settings=settings(
        max_examples=25, stateful_step_count=12, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
