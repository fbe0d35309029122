"""The trades app's ops commands write only with --apply, and say what they would do without it."""

from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from brokers.models import BrokerMode
from tradeoptions import tenancy
from trades import services

NEW_KEY = "sB-J1wgqRN6xLjMIZ8GOfRZ21rDZi4bomqW2fPIOGZE="


def _run(name, *args):
    out = StringIO()
    call_command(name, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_demo_user_without_apply_creates_nobody(db):
    out = _run("create_demo_user", "--username", "demo")
    assert "Demo user demo would be created" in out and "Dry run: nothing was written" in out
    assert not get_user_model().objects.filter(username="demo").exists()
    assert "Demo user created" in _run("create_demo_user", "--username", "demo", "--apply")
    assert "Demo user demo exists" in _run("create_demo_user", "--username", "demo")


def _ciphertext(owner_id: int) -> str:
    with tenancy.acting_as(owner_id), connection.cursor() as cursor:
        cursor.execute("SELECT tradier_sandbox_token_encrypted FROM trades_accountsettings WHERE owner_id = %s",
                       [owner_id])
        return cursor.fetchone()[0]


def test_rotating_keys_without_apply_checks_every_token_and_rewrites_none(settings, trader):
    account = services.account_settings_for(user=trader)
    account.set_broker_token(BrokerMode.TRADIER_SANDBOX, "sandbox-token-dry-run")
    with tenancy.acting_as(trader.pk):
        account.save()
    before = _ciphertext(trader.pk)
    with override_settings(ENCRYPTION_KEYS=[NEW_KEY, *settings.ENCRYPTION_KEYS]):
        out = _run("rotate_encryption_keys")
        assert "Would rotate 1 secret(s)" in out
        assert _ciphertext(trader.pk) == before
        assert "Rotated 1 secret(s)" in _run("rotate_encryption_keys", "--apply")
        assert _ciphertext(trader.pk) != before
