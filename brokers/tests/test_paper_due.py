"""The matching cycle's bulk decision (`groups_due`, one statement over every working order) must
be the broker's own: over random books and quotes it picks exactly the groups that the per-group
reference (`group_may_change`, `fill_price` on copies) picks, in the same order, and notes exactly
the same orders as looked at this session. Books mix single orders of every type and side, OCO
brackets with triggered and untriggered stops, OTOCOs with armed and unarmed exits, spreads of
every price type, expired and unexpired day orders, orders seen this session or not yet, orders no
longer working, and quotes that are missing, one-sided or at zero."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokers.base import Quote
from brokers.models import PaperOrder
from brokers.paper import WORKING, DueGroup, FillRules, group_may_change, groups_due
from tests.factories import UserFactory
from tradeoptions import tenancy

NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
SESSION = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)  # this session's close
EARLIER = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)  # the last session's
CREATED = NOW - timedelta(days=1)
SYMBOLS = ["SPY261218C00570000", "SPY261218C00575000", "SPY261218P00560000"]


# An OCO whose stop ($2.00) and target ($4.00) a $3.00 bid reaches neither, last seen a session ago.
QUIET_BRACKET = ({"order_class": "oco", "option_symbol": SYMBOLS[0], "expires_at": None}, [
    {"order_class": "option", "option_symbol": SYMBOLS[0], "side": "sell_to_close", "order_type": "stop",
     "quantity": 1, "stop_price": Decimal("2.00"), "last_session_close": EARLIER},
    {"order_class": "option", "option_symbol": SYMBOLS[0], "side": "sell_to_close", "order_type": "limit",
     "quantity": 1, "limit_price": Decimal("4.00"), "last_session_close": EARLIER}])

# A coarse grid, so that quotes often sit exactly on, above and below the orders' prices (drawn
# uniformly: Hypothesis would otherwise lean to the grid's first value and to absent quotes).
GRID = [Decimal("0.50"), Decimal("1.00"), Decimal("1.50")]
prices = st.sampled_from(GRID)
sides = st.sampled_from(["buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close"])
statuses = st.sampled_from([*WORKING * 4, "filled", "canceled", "expired"])
expiries = st.sampled_from([None, None, NOW + timedelta(hours=4), NOW + timedelta(hours=4), NOW - timedelta(minutes=1),
                            NOW])
looks = st.sampled_from([None, EARLIER, SESSION])
# Most contracts quoted both ways; some not at all, some on one side only or at zero.
touches = st.sampled_from([*GRID, *GRID, Decimal(0), None])
quotes = st.fixed_dictionaries({symbol: st.sampled_from([True, True, True, False]).flatmap(
    lambda quoted: st.tuples(touches, touches) if quoted else st.none()) for symbol in SYMBOLS})
rules = st.builds(FillRules, commission_per_contract=st.just(Decimal("0.65")),
                  slippage_per_share=st.sampled_from([Decimal(0), Decimal("0.01"), Decimal("0.05")]),
                  spread_improvement_pct=st.sampled_from([Decimal(0), Decimal(50), Decimal(100)]))


@st.composite
def single(draw, *, side=None, order_type=None, active=None, symbol=None, expires=None):
    """One tradable order's fields (a leg of a group, or an order of its own)."""
    kind = order_type or draw(st.sampled_from(["market", "limit", "stop", "stop_limit"]))
    stop = draw(prices) if kind in ("stop", "stop_limit") else None
    return {
        "order_class": "option", "option_symbol": symbol or draw(st.sampled_from(SYMBOLS)),
        "side": side or draw(sides), "order_type": kind, "quantity": draw(st.integers(1, 3)),
        "limit_price": draw(prices) if kind in ("limit", "stop_limit") else None, "stop_price": stop,
        "triggered": kind in ("stop", "stop_limit") and draw(st.sampled_from([False, False, True])),
        "active": draw(st.sampled_from([True, True, False])) if active is None else active, "status": draw(statuses),
        "expires_at": draw(expiries) if expires is None else expires, "last_session_close": draw(looks),
    }


@st.composite
def group(draw):
    """(head fields, [leg fields]): an order of its own, an OCO, an OTOCO or a spread."""
    shape = draw(st.sampled_from(["option", "oco", "otoco", "multileg"]))
    symbol, expires = draw(st.sampled_from(SYMBOLS)), draw(expiries)
    if shape == "option":
        return draw(single()), []
    if shape == "oco":
        side = draw(st.sampled_from(["sell_to_close", "buy_to_close"]))
        legs = [draw(single(side=side, order_type=draw(st.sampled_from(["stop", "stop_limit"])), active=True,
                            symbol=symbol, expires=expires)),
                draw(single(side=side, order_type="limit", active=True, symbol=symbol, expires=expires))]
    elif shape == "otoco":
        armed = draw(st.booleans())
        entry_type = draw(st.sampled_from(["market", "limit"]))
        legs = [draw(single(side="buy_to_open", order_type=entry_type, active=True, symbol=symbol, expires=expires)),
                draw(single(side="sell_to_close", order_type="stop", active=armed, symbol=symbol, expires=expires)),
                draw(single(side="sell_to_close", order_type="limit", active=armed, symbol=symbol,
                            expires=expires))]
    else:
        units = draw(st.integers(1, 2))
        legs = [{"order_class": "option", "option_symbol": leg_symbol, "side": draw(sides), "order_type": "",
                 "quantity": units * draw(st.integers(1, 2)), "status": draw(statuses), "expires_at": expires,
                 "last_session_close": draw(looks)}
                for leg_symbol in draw(st.lists(st.sampled_from(SYMBOLS), min_size=2, max_size=3, unique=True))]
        price_type = draw(st.sampled_from(["market", "debit", "credit", "even"]))
        head = {"order_class": "multileg", "price_type": price_type, "quantity": units, "status": draw(statuses),
                "limit_price": draw(prices) if price_type in ("debit", "credit") else None, "expires_at": expires}
        return head, legs
    head = {"order_class": shape, "option_symbol": symbol, "status": draw(statuses), "expires_at": expires}
    return head, legs


def _book(owners, groups):
    """The groups as rows, each at one of the owners, created in id order (heads before legs)."""
    for owner, (head, legs) in zip(owners, groups, strict=True):
        parent = PaperOrder.objects.create(owner_id=owner, created_at=CREATED, updated_at=CREATED, **head)
        for index, leg in enumerate(legs):
            PaperOrder.objects.create(owner_id=owner, parent=parent, leg_index=index, created_at=CREATED,
                                      updated_at=CREATED, **leg)


def _quotes(drawn):
    return {symbol: Quote(symbol=symbol, bid=sides[0], ask=sides[1], last=None) for symbol, sides in drawn.items()
            if sides is not None}


def _reference(market_quotes, fill_rules, owner_of=lambda owner: True):
    """What the per-group reference decides: the groups due in order, and the orders to note as
    looked at this session (those not noted yet)."""
    groups: dict[int, list[PaperOrder]] = {}
    for order in PaperOrder.objects.filter(status__in=WORKING).order_by("id"):
        if owner_of(order.owner_id):
            groups.setdefault(order.parent_id or order.pk, []).append(order)
    due, looked = [], set()
    for head_id, members in groups.items():
        if group_may_change(members, market_quotes, NOW, fill_rules, SESSION):
            due.append(DueGroup(head_id, members[0].owner_id))
        else:
            looked |= {m.pk for m in members if m.order_type and m.active and m.option_symbol in market_quotes
                       and m.last_session_close != SESSION}  # noted already: not written again
    return due, looked


def _noted():
    return set(PaperOrder.objects.filter(updated_at=NOW, last_session_close=SESSION).values_list("pk", flat=True))


@pytest.mark.django_db
def test_the_bulk_decision_is_the_per_group_reference_over_random_books():
    owners = [UserFactory().pk for _ in range(3)]

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(groups=st.lists(group(), min_size=1, max_size=8), owner_picks=st.lists(st.integers(0, 2), min_size=8,
                                                                                    max_size=8),
           drawn=quotes, fill_rules=rules)
    def check(groups, owner_picks, drawn, fill_rules):
        market_quotes = _quotes(drawn)
        with transaction.atomic(), tenancy.system_context():
            _book([owners[pick] for pick in owner_picks[:len(groups)]], groups)
            expected, looked = _reference(market_quotes, fill_rules)
            with transaction.atomic():  # each shard alone, then undone: the union is the whole
                by_shard = [groups_due(quotes=market_quotes, now=NOW, session=SESSION, rules=fill_rules,
                                       shard=(index, 2)) for index in (0, 1)]
                sharded_noted = _noted()
                transaction.set_rollback(True)
            assert groups_due(quotes=market_quotes, now=NOW, session=SESSION, rules=fill_rules) == expected
            assert _noted() == looked
            assert sorted(by_shard[0] + by_shard[1], key=lambda due: due.head_id) == sorted(
                expected, key=lambda due: due.head_id)
            assert all(due.owner_id % 2 == index for index in (0, 1) for due in by_shard[index])
            assert sharded_noted == looked
            transaction.set_rollback(True)

    check()


@pytest.mark.django_db
def test_a_quiet_group_is_noted_as_seen_this_session_and_a_crossed_one_is_due():
    """The examples' two ends spelled out: a stop far from the bid is only noted; one the bid has
    reached is due, and is not noted (its match will note or fill it, under its lock)."""
    owner = UserFactory().pk
    quiet = QUIET_BRACKET
    crossed = ({"order_class": "option", "option_symbol": SYMBOLS[1], "side": "sell_to_close",
                "order_type": "stop", "quantity": 1, "stop_price": Decimal("2.00")}, [])
    market_quotes = _quotes({SYMBOLS[0]: (Decimal("3.00"), Decimal("3.10")),
                             SYMBOLS[1]: (Decimal("2.00"), Decimal("2.10"))})
    with tenancy.system_context():
        _book([owner, owner], [quiet, crossed])
        quiet_legs = set(PaperOrder.objects.filter(parent__isnull=False).values_list("pk", flat=True))
        crossed_id = PaperOrder.objects.get(option_symbol=SYMBOLS[1]).pk
        due = groups_due(quotes=market_quotes, now=NOW, session=SESSION,
                         rules=FillRules(commission_per_contract=Decimal(0), slippage_per_share=Decimal(0)))
        assert due == [DueGroup(crossed_id, owner)]
        assert _noted() == quiet_legs


@pytest.mark.django_db
def test_a_second_look_in_the_same_session_writes_no_row():
    """At 100,000 trades a steady cycle would otherwise rewrite 200,000 rows every 20 seconds: an
    order noted once this session keeps its row (and its `updated_at`) until something changes."""
    owner = UserFactory().pk
    quiet = QUIET_BRACKET
    market_quotes = _quotes({SYMBOLS[0]: (Decimal("3.00"), Decimal("3.10"))})
    rules = FillRules(commission_per_contract=Decimal(0), slippage_per_share=Decimal(0))
    with tenancy.system_context():
        _book([owner], [quiet])
        assert groups_due(quotes=market_quotes, now=NOW, session=SESSION, rules=rules) == []
        assert len(_noted()) == 2
        later = NOW + timedelta(seconds=20)
        assert groups_due(quotes=market_quotes, now=later, session=SESSION, rules=rules) == []
        assert not PaperOrder.objects.filter(updated_at=later).exists()
        assert len(_noted()) == 2


@pytest.mark.django_db
def test_the_statement_reads_and_notes_the_model_s_table(monkeypatch):
    """The bulk statement names `PaperOrder._meta.db_table`, not a table spelled out: pointed at a
    view that hides the crossed stop, it sees only the quiet bracket (and notes it there)."""
    owner = UserFactory().pk
    crossed = ({"order_class": "option", "option_symbol": SYMBOLS[1], "side": "sell_to_close",
                "order_type": "stop", "quantity": 1, "stop_price": Decimal("2.00")}, [])
    market_quotes = _quotes({SYMBOLS[0]: (Decimal("3.00"), Decimal("3.10")),
                             SYMBOLS[1]: (Decimal("2.00"), Decimal("2.10"))})
    rules = FillRules(commission_per_contract=Decimal(0), slippage_per_share=Decimal(0))
    with tenancy.system_context():
        _book([owner, owner], [QUIET_BRACKET, crossed])
        quiet_legs = set(PaperOrder.objects.filter(parent__isnull=False).values_list("pk", flat=True))
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMP VIEW orders_but_the_crossed AS SELECT * FROM {PaperOrder._meta.db_table} "
                           "WHERE option_symbol <> %s", [SYMBOLS[1]])
        monkeypatch.setattr(PaperOrder._meta, "db_table", "orders_but_the_crossed")
        assert groups_due(quotes=market_quotes, now=NOW, session=SESSION, rules=rules) == []
        monkeypatch.undo()
        assert _noted() == quiet_legs
