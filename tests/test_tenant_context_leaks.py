"""The tenant context never outlives its request or task, even on one reused connection."""

import pytest
from django.db import connection
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.factories import PaperTradeFactory, UserFactory
from tradeoptions import tenancy
from trades.models import PaperTrade


def _settings_outside_any_transaction():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.user_id', true), current_setting('app.system', true)")
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
def test_a_thousand_alternating_requests_and_tasks_never_see_each_others_rows():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    trades = {user.pk: {PaperTradeFactory(owner=user).pk for _ in range(3)} for user in (alice, bob)}
    clients = {}
    for user in (alice, bob):
        clients[user.pk] = APIClient()
        clients[user.pk].credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=user)[1]}")
    connection.ensure_connection()
    backend_pid = connection.connection.info.backend_pid

    for request_number in range(1000):
        user = (alice, bob)[request_number % 2]
        response = clients[user.pk].get("/api/trades")
        assert {row["id"] for row in response.json()["results"]} == trades[user.pk]
        if request_number % 10 == 0:
            # A task on the same connection acts for the other user, then ends.
            other = bob if user is alice else alice
            with tenancy.acting_as(other.pk):
                assert set(PaperTrade.objects.values_list("id", flat=True)) == trades[other.pk]
        assert _settings_outside_any_transaction() in [(None, None), ("", "")]
        assert PaperTrade.objects.count() == 0  # autocommit, no context: nothing

    assert connection.connection.info.backend_pid == backend_pid, "the test must reuse one connection"
