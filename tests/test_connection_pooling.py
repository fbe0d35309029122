"""Reused connections and transaction-mode poolers never carry one tenant's context to another.

The row-level-security context is `set_config(..., true)`, local to a transaction, so it must not
matter which server session a transaction runs on, nor whether the process keeps its
connection between requests (CONN_MAX_AGE) or not. These scenarios go through Django's real
WSGI handler (which closes or keeps the connection at the end of each request, as gunicorn's
workers do) and through a hand-made pooler that gives every transaction another server session.
"""

import itertools
import json

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, transaction
from django.test.client import RequestFactory
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.factories import PaperTradeFactory, UserFactory
from tradeoptions import tenancy
from trades import services
from trades.models import IdempotencyKey, PaperTrade


def _server(method: str, path: str, token: str) -> tuple[int, bytes]:
    """One request through Django's WSGI handler, closed the way a WSGI server closes it (which
    fires request_finished, and so CONN_MAX_AGE's close-or-keep decision)."""
    environ = RequestFactory()._base_environ(PATH_INFO=path, REQUEST_METHOD=method,
                                            HTTP_AUTHORIZATION=f"Token {token}", SERVER_NAME="localhost")
    status = []
    response = WSGIHandler()(environ, lambda code, headers: status.append(code))
    try:
        body = b"".join(response)
    finally:
        response.close()
    return int(status[0].split()[0]), body


def _context_left_on(raw) -> tuple:
    """The tenant settings a server session holds outside any transaction."""
    with raw.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.user_id', true), current_setting('app.system', true)")
        return cursor.fetchone()


@pytest.fixture
def two_traders():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    trades = {user.pk: {PaperTradeFactory(owner=user).pk for _ in range(2)} for user in (alice, bob)}
    tokens = {user.pk: AuthToken.objects.create(user=user)[1] for user in (alice, bob)}
    return alice, bob, trades, tokens


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("max_age", "reused"), [(0, False), (600, True)])
def test_requests_never_see_another_tenant_s_rows_with_connections_closed_or_kept(two_traders, monkeypatch,
                                                                                  max_age, reused):
    alice, bob, trades, tokens = two_traders
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", max_age)
    kept = []
    for number in range(40):
        user = (alice, bob)[number % 2]
        code, body = _server("GET", "/api/trades", tokens[user.pk])
        assert code == 200 and {row["id"] for row in json.loads(body)["results"]} == trades[user.pk]
        kept.append(connection.connection.info.backend_pid if connection.connection is not None else None)
        if connection.connection is not None:  # kept for the next request: it must hold no context
            assert _context_left_on(connection.connection) in [(None, None), ("", "")]
        with tenancy.acting_as(user.pk):  # a task between requests, on whatever connection there is
            assert set(PaperTrade.objects.values_list("id", flat=True)) == trades[user.pk]
        assert PaperTrade.objects.count() == 0  # outside any tenant block: nothing
    if reused:
        assert None not in kept and len(set(kept)) == 1  # one server session served all 40 requests
    else:
        assert set(kept) == {None}  # closed at the end of every request


class TransactionPooler:
    """Hands every new transaction the next of several server sessions, as PgBouncer's
    `pool_mode = transaction` (or Neon's pooler) may: whatever a session kept from an earlier
    transaction shows up in someone else's next one."""

    def __init__(self, size: int) -> None:
        params = connection.get_connection_params()
        self.sessions = [connection.get_new_connection(params) for _ in range(size)]
        for raw in self.sessions:  # set up as Django sets up its own connection
            raw.autocommit = True
            connection._configure_connection(raw)
        self.used: set[int] = set()
        self._next = itertools.cycle(self.sessions)
        self._set_autocommit = connection._set_autocommit

    def __enter__(self):
        connection.ensure_connection()
        self.own = connection.connection
        connection._set_autocommit = self._begin_or_end
        return self

    def _begin_or_end(self, autocommit: bool) -> None:
        if not autocommit:  # a transaction begins: it gets the next server session
            connection.connection = next(self._next)
            self.used.add(connection.connection.info.backend_pid)
        self._set_autocommit(autocommit)

    def __exit__(self, *exc):
        del connection._set_autocommit
        connection.connection = self.own
        for raw in self.sessions:
            raw.close()


@pytest.mark.django_db(transaction=True)
def test_behind_a_transaction_pooler_no_context_or_claim_depends_on_the_server_session(two_traders):
    alice, bob, trades, tokens = two_traders
    clients = {}
    for user in (alice, bob):
        clients[user.pk] = APIClient()
        clients[user.pk].credentials(HTTP_AUTHORIZATION=f"Token {tokens[user.pk]}")

    with TransactionPooler(size=3) as pooler:
        for number in range(30):
            user, other = ((alice, bob), (bob, alice))[number % 2]
            response = clients[user.pk].get("/api/trades")
            assert {row["id"] for row in response.json()["results"]} == trades[user.pk]
            with tenancy.acting_as(other.pk):
                assert set(PaperTrade.objects.values_list("id", flat=True)) == trades[other.pk]
            for raw in pooler.sessions:
                assert _context_left_on(raw) in [(None, None), ("", "")]

        # An Idempotency-Key claimed in one transaction is seen as in flight from every session,
        # and answered from another.
        claim = services.idempotency_claim(user=alice, key="pooled", fingerprint="f" * 64)
        for _ in pooler.sessions:
            with pytest.raises(services.IdempotencyKeyInFlight):
                services.idempotency_claim(user=alice, key="pooled", fingerprint="f" * 64)
        services.idempotency_store(claim=claim, status=201, body={"id": 1}, trade=None)
        assert services.idempotency_claim(user=alice, key="pooled", fingerprint="f" * 64).replay.body == {"id": 1}
        with tenancy.acting_as(bob.pk):
            assert not IdempotencyKey.objects.exists()
    assert len(pooler.used) == 3


@pytest.mark.django_db(transaction=True)
def test_a_tenant_setting_ends_with_its_transaction_even_when_nobody_puts_the_old_one_back():
    """A tenant block marked for rollback (an API error answer) skips putting the old setting
    back: only a transaction-local setting keeps it off the session that the pooler hands to the
    next client."""
    alice = UserFactory(username="alice")
    with transaction.atomic(), tenancy.acting_as(alice.pk):
        assert tenancy.current_user_id() == alice.pk
        transaction.set_rollback(True)
        session = connection.connection
    assert _context_left_on(session) in [(None, None), ("", "")]
