"""Idempotency-Key: one key, one trade, one broker order, one answer — also under concurrency."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from brokers.models import PaperOrder
from tradeoptions import tenancy
from trades import services
from trades.models import IdempotencyKey, PaperTrade


def _count(user, model):
    with tenancy.acting_as(user.pk):
        return model.objects.count()


def test_the_same_key_and_body_replays_the_first_answer(api_as, trader, market, open_body):
    client = api_as(trader)
    first = client.post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="scan-42")
    market.set_quote("SPY261218C00570000", "5.00", "5.20")  # the world moved on; the answer must not
    again = client.post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="scan-42")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert _count(trader, PaperTrade) == 1
    assert _count(trader, PaperOrder) == 4  # one entry; one OCO: its parent row and two legs


def test_the_key_may_come_in_the_body_too(api_as, trader, market, open_body):
    client = api_as(trader)
    first = client.post("/api/trades", open_body(idempotency_key="body-key"), format="json")
    again = client.post("/api/trades", open_body(idempotency_key="body-key"), format="json")
    assert again.json()["id"] == first.json()["id"] and _count(trader, PaperTrade) == 1


def test_a_refusal_is_replayed_too_once_a_trade_was_written(api_as, trader, market, open_body):
    account = services.account_settings_for(user=trader)
    account.heat_limit_pct = 100
    with tenancy.acting_as(trader.pk):
        account.save()
    client = api_as(trader)
    first = client.post("/api/trades", open_body(qty=20), format="json", HTTP_IDEMPOTENCY_KEY="big")
    again = client.post("/api/trades", open_body(qty=20), format="json", HTTP_IDEMPOTENCY_KEY="big")
    assert first.status_code == again.status_code == 422 and again.json() == first.json()
    assert _count(trader, PaperTrade) == 1


def test_the_same_key_with_another_body_is_422(api_as, trader, market, open_body):
    client = api_as(trader)
    client.post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="scan-42")
    response = client.post("/api/trades", open_body(qty=1), format="json", HTTP_IDEMPOTENCY_KEY="scan-42")
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "idempotency_key_reused"
    assert _count(trader, PaperTrade) == 1


def test_keys_are_per_user(api_as, trader, other_trader, market, open_body):
    mine = api_as(trader).post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="k")
    theirs = api_as(other_trader).post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert mine.status_code == theirs.status_code == 201 and mine.json()["id"] != theirs.json()["id"]


def test_validation_failures_are_not_stored_so_a_corrected_retry_is_judged_afresh(api_as, trader, market,
                                                                                open_body):
    client = api_as(trader)
    bad = client.post("/api/trades", open_body(sl_price="9"), format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert bad.status_code == 400 and _count(trader, IdempotencyKey) == 0
    again = client.post("/api/trades", open_body(sl_price="9"), format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert again.status_code == 400


def test_keys_are_kept_at_least_a_day_then_purged(api_as, trader, market, open_body):
    api_as(trader).post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="old")
    assert services.idempotency_keys_purge(older_than=timedelta(hours=1)) == 0  # never less than 24 h
    with tenancy.system_context():
        IdempotencyKey.objects.update(created_at=timezone.now() - services.IDEMPOTENCY_KEY_TTL - timedelta(1))
    assert services.idempotency_keys_purge() == 1
    # The trade still carries its key: reusing it is refused rather than opening a second trade.
    response = api_as(trader).post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="old")
    assert response.status_code == 422 and _count(trader, PaperTrade) == 1


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_sent_while_the_first_is_in_flight_gets_409(api_as, trader, market, open_body, broker_held):
    """Two real requests on two connections: the first is held inside its broker call while the
    duplicate arrives. Exactly one trade and one entry order result."""
    broker_held.arm()
    entered, release = broker_held.entered, broker_held.release
    clients = [api_as(trader), api_as(trader)]
    answers = {}

    def send(index):
        try:
            answers[index] = clients[index].post("/api/trades", open_body(), format="json",
                                                 HTTP_IDEMPOTENCY_KEY="scan-7")
        finally:
            connection.close()

    first = threading.Thread(target=send, args=(0,))
    first.start()
    assert entered.wait(10)
    second = threading.Thread(target=send, args=(1,))
    second.start()
    second.join(10)
    release.set()
    first.join(10)
    assert answers[1].status_code == 409
    assert answers[1].json()["errors"][0]["code"] == "idempotency_key_in_flight"
    assert answers[0].status_code == 201
    assert _count(trader, PaperTrade) == 1
    with tenancy.acting_as(trader.pk):
        assert PaperOrder.objects.filter(tag__endswith="-entry").count() == 1
    replay = api_as(trader).post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="scan-7")
    assert replay.json() == answers[0].json()


@pytest.mark.django_db(transaction=True)
def test_many_parallel_duplicates_make_one_trade(api_as, trader, market, open_body):
    clients = [api_as(trader) for _ in range(6)]
    barrier = threading.Barrier(len(clients))
    answers = []

    def send(client):
        try:
            barrier.wait(10)
            answers.append(client.post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="burst"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(answers) == 6 and {answer.status_code for answer in answers} <= {201, 409}
    created = [answer.json()["id"] for answer in answers if answer.status_code == 201]
    assert created and len(set(created)) == 1  # replays answer with the one trade
    assert _count(trader, PaperTrade) == 1
    with tenancy.acting_as(trader.pk):
        assert PaperOrder.objects.filter(tag__endswith="-entry").count() == 1
