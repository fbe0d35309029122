"""`/healthz` tells a load balancer whether this process can reach PostgreSQL and Redis."""

from django.db import connection
from django.db.utils import OperationalError


def test_healthy_when_database_and_redis_answer(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"], body["redis"]) == ("ok", "ok", "ok")
    assert body["market"]["forced"] is False


def test_a_forced_open_market_is_shown(client, db, settings):
    settings.FORCE_MARKET_OPEN = True
    market = client.get("/healthz").json()["market"]
    assert market == {**market, "open": True, "forced": True}


def test_unavailable_when_redis_is_down(client, db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["redis"] == "unavailable" and response.json()["database"] == "ok"


def test_unavailable_when_the_database_is_down(client, db, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patched:
        patched.setattr(connection, "cursor", refuse)
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"
