"""The trades API answers only with the caller's own trades; anyone else's id is a 404."""

import pytest

from tests.factories import PaperTradeFactory
from tradeoptions.api import OwnedViewSetMixin


def test_a_trader_lists_only_her_own_trades(api_as, trader, other_trader):
    mine = PaperTradeFactory.create_batch(2, owner=trader)
    PaperTradeFactory(owner=other_trader)
    response = api_as(trader).get("/api/trades")
    assert response.status_code == 200
    assert sorted(row["id"] for row in response.json()["results"]) == sorted(trade.pk for trade in mine)


def test_another_traders_trade_answers_404_not_403(api_as, trader, other_trader):
    theirs = PaperTradeFactory(owner=other_trader)
    assert api_as(trader).get(f"/api/trades/{theirs.pk}").status_code == 404
    assert api_as(other_trader).get(f"/api/trades/{theirs.pk}").status_code == 200


def test_a_missing_trade_answers_the_same_404(api_as, trader, other_trader):
    theirs = PaperTradeFactory(owner=other_trader)
    missing = api_as(trader).get("/api/trades/999999999")
    foreign = api_as(trader).get(f"/api/trades/{theirs.pk}")
    assert missing.status_code == foreign.status_code == 404
    assert missing.json() == foreign.json()


def test_the_session_user_can_read_the_api_too(client, trader):
    PaperTradeFactory(owner=trader)
    client.force_login(trader)
    assert client.get("/api/trades").json()["count"] == 1


def test_anonymous_callers_are_refused(client, db):
    assert client.get("/api/trades").status_code == 401


def test_status_narrows_the_list(api_as, trader):
    PaperTradeFactory(owner=trader, status="OPEN")
    PaperTradeFactory(owner=trader, status="PENDING", entry_price=None, entry_date=None)
    assert api_as(trader).get("/api/trades?status=PENDING").json()["count"] == 1


def test_a_viewset_cannot_replace_the_sealed_queryset():
    with pytest.raises(TypeError, match="owned_queryset"):

        class Leaky(OwnedViewSetMixin):
            def get_queryset(self):
                return None
