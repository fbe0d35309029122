"""`make run` creates the demo trader once, with settings, and prints how to log in."""

from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command

from brokers.models import BrokerMode
from tradeoptions import tenancy
from trades.models import AccountSettings


def test_the_demo_user_is_created_once_and_can_log_in(db, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "demo-pass-123")
    monkeypatch.setenv("WEB_PORT", "8123")
    first, second = StringIO(), StringIO()
    call_command("create_demo_user", "--apply", stdout=first)
    call_command("create_demo_user", "--apply", stdout=second)
    assert "created" in first.getvalue() and "http://127.0.0.1:8123/" in first.getvalue()
    assert "exists" in second.getvalue()
    user = get_user_model().objects.get(username="demo")
    assert user.check_password("demo-pass-123")
    with tenancy.acting_as(user.pk):
        assert AccountSettings.objects.get(owner=user).broker_mode == BrokerMode.LOCAL_PAPER
