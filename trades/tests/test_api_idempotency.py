"""Idempotency-Key: one key, one trade, one broker order, one answer — also under concurrency."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from brokers.models import PaperOrder
from tests.factories import PaperTradeFactory
from tradeoptions import tenancy
from trades import services
from trades.models import IdempotencyKey, PaperTrade, TradeStatus


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


def _claim(user, key, body):
    return services.idempotency_claim(user=user, key=key, fingerprint=services.request_fingerprint(body))


@pytest.mark.django_db(transaction=True)
def test_a_claim_outlives_its_connection_as_behind_a_transaction_pooler(api_as, trader, market, open_body):
    """Behind PgBouncer or Neon's pooler in transaction mode, the server session changes hands
    between transactions: a claim must be a committed row, not a lock held by a session."""
    claim = _claim(trader, "pooled", open_body())
    connection.close()  # the next transaction runs on another server session
    duplicate = api_as(trader).post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="pooled")
    assert duplicate.status_code == 409 and _count(trader, PaperTrade) == 0
    services.idempotency_release(claim=claim)  # the first request was refused before writing a trade
    retry = api_as(trader).post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="pooled")
    assert retry.status_code == 201 and _count(trader, PaperTrade) == 1


def _expire_claims():
    with tenancy.system_context():
        IdempotencyKey.objects.filter(response_status__isnull=True).update(
            claimed_until=timezone.now() - timedelta(seconds=1))


def test_a_crashed_request_s_claim_runs_out_and_the_retry_opens_the_trade(api_as, trader, market, open_body):
    _claim(trader, "crashed", open_body())  # ... and its process died before any trade was written
    _expire_claims()
    retry = api_as(trader).post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="crashed")
    assert retry.status_code == 201 and _count(trader, PaperTrade) == 1
    again = api_as(trader).post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="crashed")
    assert again.json() == retry.json() and again["Idempotent-Replayed"] == "true"


def test_a_request_that_died_after_writing_its_trade_never_lets_the_key_open_a_second(api_as, trader, market,
                                                                                      open_body):
    _claim(trader, "half-done", open_body())
    trade = PaperTradeFactory(owner=trader, idempotency_key="half-done", status=TradeStatus.PENDING,
                              entry_price=None, entry_date=None)
    _expire_claims()
    retry = api_as(trader).post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="half-done")
    assert retry.status_code == 422 and f"trade {trade.pk}" in retry.json()["errors"][0]["detail"]
    assert _count(trader, PaperTrade) == 1


def test_a_request_whose_claim_was_taken_over_does_not_give_back_the_new_claim(trader, open_body):
    stale = _claim(trader, "slow", open_body())
    _expire_claims()
    current = _claim(trader, "slow", open_body())
    services.idempotency_release(claim=stale)  # the slow first request finally gives up
    with pytest.raises(services.IdempotencyKeyInFlight):
        _claim(trader, "slow", open_body())
    services.idempotency_release(claim=current)
    assert _claim(trader, "slow", open_body()).replay is None


@pytest.mark.django_db(transaction=True)
def test_a_keyed_answer_runs_once_and_a_refusal_is_judged_afresh(trader):
    """The service the create view delegates to: a refusal that wrote nothing gives the key back;
    the answer that wrote a trade runs once and is replayed to every duplicate."""
    runs = []
    trade = PaperTradeFactory(owner=trader)

    def refuse():
        runs.append("refused")
        return services.KeyedAnswer(400, {"type": "validation_error"})

    def open_it():
        runs.append("opened")
        return services.KeyedAnswer(201, {"id": trade.pk}, trade=trade)

    first = services.idempotent(user=trader, key="scan-7", body={"qty": 1}, answer=refuse)
    second = services.idempotent(user=trader, key="scan-7", body={"qty": 1}, answer=open_it)
    third = services.idempotent(user=trader, key="scan-7", body={"qty": 1}, answer=open_it)
    assert (first.status, first.replayed, second.status, second.replayed) == (400, False, 201, False)
    assert (third.status, third.body, third.replayed) == (201, {"id": trade.pk}, True)
    assert runs == ["refused", "opened"]
    with pytest.raises(services.IdempotencyKeyReused):
        services.idempotent(user=trader, key="scan-7", body={"qty": 2}, answer=open_it)
