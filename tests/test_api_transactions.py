"""The API's one transaction policy (`tradeoptions.api.OwnedViewSetMixin`), against real commits:
an action that fails after writing leaves nothing of its writes behind, whether the failure
becomes a DRF answer (400) or escapes as a server error (500)."""

import pytest
from django.db import connection
from rest_framework.exceptions import ValidationError

from tests.factories import PaperTradeFactory, UserFactory
from tradeoptions import tenancy
from trades import services
from trades.models import Actor, PaperTrade, TradeEvent, TradeStatus


def _writes_then_fails(error: Exception | None):
    """The adjust service, replaced: it writes (a moved stop-loss and its event), then fails with
    `error` (None: returns as the real one does)."""

    def brackets_adjust(*, user, trade_id, **kwargs):
        trade = services.trade_transition(trade_id=trade_id, to=TradeStatus.OPEN, actor=Actor.USER,
                                          actor_user=user, changes={"sl_price": kwargs["new_sl"],
                                                                    "attention_reason": "half-written"})
        if error is not None:
            raise error
        return services.TradeResult(trade)

    return brackets_adjust


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("error", "status"), [(ValidationError({"new_sl": ["refused late"]}), 400),
                                               (RuntimeError("bug after the write"), 500)])
def test_a_failing_api_write_leaves_nothing_half_written(api_as, monkeypatch, error, status):
    alice = UserFactory(username="alice")
    trade = PaperTradeFactory(owner=alice)
    monkeypatch.setattr(services, "brackets_adjust", _writes_then_fails(error))
    client = api_as(alice)
    client.raise_request_exception = False
    response = client.post(f"/api/trades/{trade.pk}/adjust", {"version": 1, "new_sl": "2.50"}, format="json")
    assert response.status_code == status
    with tenancy.acting_as(alice.pk):
        stored = PaperTrade.objects.get(pk=trade.pk)
        assert (stored.version, str(stored.sl_price), stored.attention_reason) == (1, "3.0000", "")
        assert not TradeEvent.objects.filter(trade=trade).exists()
    # and the connection is not left inside the failed request's transaction
    assert not connection.in_atomic_block


@pytest.mark.django_db(transaction=True)
def test_a_successful_api_write_commits(api_as, monkeypatch):
    """The same action, not failing: its writes are there for the next request."""
    alice = UserFactory(username="alice")
    trade = PaperTradeFactory(owner=alice)
    monkeypatch.setattr(services, "brackets_adjust", _writes_then_fails(None))
    response = api_as(alice).post(f"/api/trades/{trade.pk}/adjust", {"version": 1, "new_sl": "2.50"}, format="json")
    assert response.status_code == 200, response.json()
    with tenancy.acting_as(alice.pk):
        stored = PaperTrade.objects.get(pk=trade.pk)
        assert (stored.version, str(stored.sl_price), stored.attention_reason) == (2, "2.5000", "half-written")
        assert TradeEvent.objects.filter(trade=trade).count() == 1
