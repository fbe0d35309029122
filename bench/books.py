"""The benchmarks' book of open trades, and their OCO brackets at the local paper broker, loaded
in a few statements: the monitor benchmarks need 10,000 to 100,000 trades (and three paper orders
each), and building those one model at a time through the ORM (`bulk_create`, then `bulk_update`
of every trade's bracket id) takes minutes where INSERT ... SELECT over `generate_series` takes
seconds.

Every column the SQL does not compute is the value Django would write for a template instance
(`_insert_select`), so a new model field with a default needs no change here.

Trade n belongs to user n % users and holds contract n % contracts; contract i is on ticker
i % underlyings (so ticker n % underlyings, as before), its strike, expiry and side the
(i // underlyings)-th of `contract_variants`. With the default single variant (a call 2 % out of
the money, one expiry) every underlying has one contract, the shape the snapshot and stop-latency
benchmarks were first measured on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import connection, models

from brokers.models import PaperOrder
from brokers.occ import build_symbol
from tradeoptions import tenancy
from trades.models import PaperTrade, TradeStatus


@dataclass(frozen=True)
class Variant:
    """One contract per underlying: the strike as a multiple of the spot, the expiry and side."""

    moneyness: Decimal
    expiry: date
    option_type: str = "CALL"


def tickers(count: int) -> list[str]:
    """`count` made-up tickers (AAX, ABX, ...): the simulated market quotes any symbol."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [letters[i // 26 % 26] + letters[i % 26] + "X" for i in range(count)]


def users_create(count: int, prefix: str = "bench") -> list[int]:
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"{prefix}{i}") for i in range(count)], batch_size=5000)
    return [user.pk for user in users]


Contract = tuple[str, str, Decimal, date, str]  # ticker, side, strike, expiry, OCC symbol


def whole_dollars(spot: Decimal) -> Decimal:
    return Decimal("1")


def listed_step(spot: Decimal) -> Decimal:
    """Strike spacing as chains list it: 50 cents under $25, a dollar under $250, then $5. (Whole
    dollars on a $6 stock put 3 % out of the money strikes 15 % away: bids of zero.)"""
    return Decimal("0.5") if spot < 25 else Decimal("1") if spot < 250 else Decimal("5")


def contracts_list(provider, underlyings: int, variants: Sequence[Variant],
                   step: Callable[[Decimal], Decimal] = whole_dollars) -> list[Contract]:
    """(ticker, side, strike, expiry, OCC symbol) for contract i = ticker i % underlyings, variant
    i // underlyings; strikes are the nearest multiple of `step(spot)` to the variant's share of the
    provider's spot now (nearby variants may share a strike on a cheap stock)."""
    names = tickers(underlyings)
    spots = {t: q.last for t, q in provider.underlying_quotes(names).items()}
    contracts = []
    for variant in variants:
        for ticker in names:
            spacing = step(spots[ticker])
            strike = (spots[ticker] * variant.moneyness / spacing).quantize(Decimal("1")) * spacing
            contracts.append((ticker, variant.option_type, strike, variant.expiry,
                              build_symbol(ticker, variant.expiry, variant.option_type, strike)))
    return contracts


def trades_open(*, user_ids: Sequence[int], contracts: Sequence[Contract], start: int, end: int,
                at: datetime) -> None:
    """Open trades start..end-1 (see the module's docstring for who holds what): qty 1 + n % 3,
    bought at $2.00 with a $1 stop and a $4 target, no bracket yet."""
    template = PaperTrade(owner_id=user_ids[0], ticker="", option_type="CALL", strike=Decimal("1"),
                          expiry=date(2000, 1, 1), option_symbol="", qty=1, entry_price=Decimal("2.00"),
                          entry_date=at, sl_price=Decimal("1"), tp_price=Decimal("4"), status=TradeStatus.OPEN)
    tickers_, sides, strikes, expiries, symbols = (list(column) for column in zip(*contracts, strict=True))
    source = ("generate_series(%s::int, %s::int) AS n "
              "JOIN unnest(%s::text[], %s::text[], %s::numeric[], %s::date[], %s::text[]) "
              "WITH ORDINALITY AS c(ticker, side, strike, expiry, symbol, k) ON c.k = n %% %s + 1 "
              "JOIN unnest(%s::bigint[]) WITH ORDINALITY AS u(id, k) ON u.k = n %% %s + 1")
    params = [start, end - 1, tickers_, sides, strikes, expiries, symbols, len(contracts), list(user_ids),
              len(user_ids)]
    computed = {"owner_id": "u.id", "ticker": "c.ticker", "option_type": "c.side", "strike": "c.strike",
                "expiry": "c.expiry", "option_symbol": "c.symbol", "qty": "1 + n %% 3"}
    with tenancy.system_context():
        _insert_select(PaperTrade, template, computed, source, params)


def brackets_attach(*, at: datetime) -> None:
    """Give every open trade without a bracket a working OCO at the local paper broker: a stop at
    a cent and a take-profit at $9,999, so that a cycle measures looking, not filling."""
    trade = PaperTrade._meta.db_table
    head = PaperOrder(owner_id=0, order_class="oco", tag="", option_symbol="", underlying="", duration="gtc",
                      created_at=at, updated_at=at)
    leg = PaperOrder(owner_id=0, order_class="option", tag="", option_symbol="", underlying="", side="sell_to_close",
                     duration="gtc", quantity=1, created_at=at, updated_at=at)
    with tenancy.system_context():
        made = _insert_select(PaperOrder, head, {"owner_id": "t.owner_id", "tag": "'to-' || t.id || '-sl'",
                                                 "option_symbol": "t.option_symbol", "underlying": "t.ticker"},
                              f"{trade} t WHERE t.status = %s AND t.bracket_order_id = ''", [TradeStatus.OPEN],
                              returning="id, tag")
        # Joined by primary key from here on: a join on the tag's text is a nested loop over both
        # tables for the planner of a freshly loaded table (minutes at 10,000 trades).
        heads = [head_id for head_id, _ in made]
        trades = [int(tag.split("-")[1]) for _, tag in made]
        pairs = f"unnest(%s::bigint[], %s::bigint[]) AS v(trade_id, head_id) JOIN {trade} t ON t.id = v.trade_id"
        _insert_select(PaperOrder, leg, {"owner_id": "t.owner_id", "parent_id": "v.head_id",
                                         "leg_index": "l.leg_index", "order_type": "l.order_type",
                                         "stop_price": "l.stop_price", "limit_price": "l.limit_price",
                                         "option_symbol": "t.option_symbol", "underlying": "t.ticker",
                                         "quantity": "t.qty"},
                       f"{pairs} CROSS JOIN (VALUES (0, 'stop', 0.01::numeric, NULL::numeric), (1, 'limit', NULL, "
                       "9999)) AS l(leg_index, order_type, stop_price, limit_price)", [trades, heads])
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {trade} t SET bracket_order_id = v.head_id::text "
                           "FROM unnest(%s::bigint[], %s::bigint[]) AS v(trade_id, head_id) WHERE t.id = v.trade_id",
                           [trades, heads])


def _insert_select(model: type[models.Model], template: models.Model, computed: dict[str, str], source: str,
                   params: list, *, returning: str = "") -> list[tuple]:
    """INSERT INTO model's table SELECT ... FROM `source`: the `computed` columns (by attname) are
    SQL over the source, every other one the template's value as Django would save it."""
    columns, values, constants = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key or getattr(field, "generated", False):
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.attname in computed:
            values.append(computed.pop(field.attname))
        else:
            values.append("%s")
            constants.append(field.get_db_prep_save(field.pre_save(template, add=True), connection))
    assert not computed, f"no such columns: {sorted(computed)}"
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
                       f"SELECT {', '.join(values)} FROM {source}" + (f" RETURNING {returning}" if returning else ""),
                       [*constants, *params])
        return cursor.fetchall() if returning else []
