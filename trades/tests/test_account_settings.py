"""Broker tokens are encrypted at rest, readable only through the vault, and rotatable."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from brokers.crypto import VaultError
from brokers.models import BrokerMode
from tradeoptions import tenancy
from trades import services
from trades.models import AccountSettings

TOKEN = "sandbox-token-Zq8x-KNOWN"
NEW_KEY = "sB-J1wgqRN6xLjMIZ8GOfRZ21rDZi4bomqW2fPIOGZE="  # a third Fernet key, made for these tests


@pytest.fixture
def settings_with_token(trader):
    account = services.account_settings_for(user=trader)
    account.set_broker_token(BrokerMode.TRADIER_SANDBOX, TOKEN)
    with tenancy.acting_as(trader.pk):
        account.save()
    return account


def _stored_ciphertext(owner_id: int) -> str:
    with tenancy.acting_as(owner_id), connection.cursor() as cursor:
        cursor.execute("SELECT tradier_sandbox_token_encrypted FROM trades_accountsettings WHERE owner_id = %s",
                       [owner_id])
        return cursor.fetchone()[0]


def test_a_new_trader_gets_the_default_settings(trader):
    account = services.account_settings_for(user=trader)
    assert account.broker_mode == BrokerMode.LOCAL_PAPER
    assert (account.account_balance, account.max_positions, account.daily_loss_limit) == (5000, 5, 150)
    assert account.heat_limit_pct == 6 and account.auto_refresh is True


def test_a_token_is_stored_encrypted_and_read_back_through_the_vault(settings_with_token, trader):
    stored = _stored_ciphertext(trader.pk)
    assert TOKEN not in stored and stored
    with tenancy.acting_as(trader.pk):
        assert AccountSettings.objects.get(owner=trader).broker_token(BrokerMode.TRADIER_SANDBOX) == TOKEN
    assert settings_with_token.has_broker_token(BrokerMode.TRADIER_SANDBOX)
    assert not settings_with_token.has_broker_token(BrokerMode.TRADIER_LIVE)


def test_rotation_re_encrypts_every_token_with_the_new_first_key(settings, settings_with_token, trader):
    old_key = settings.ENCRYPTION_KEYS[0]
    before = _stored_ciphertext(trader.pk)
    settings.ENCRYPTION_KEYS = [NEW_KEY, old_key]
    call_command("rotate_encryption_keys", "--apply", stdout=StringIO())
    call_command("rotate_encryption_keys", "--apply", stdout=StringIO())  # safe to re-run
    after = _stored_ciphertext(trader.pk)
    assert after != before
    with override_settings(ENCRYPTION_KEYS=[NEW_KEY]), tenancy.acting_as(trader.pk):
        assert AccountSettings.objects.get(owner=trader).broker_token(BrokerMode.TRADIER_SANDBOX) == TOKEN


def test_a_removed_key_gives_a_clear_error_without_token_material(settings, settings_with_token, trader):
    settings.ENCRYPTION_KEYS = [NEW_KEY]
    with tenancy.acting_as(trader.pk):
        account = AccountSettings.objects.get(owner=trader)
        with pytest.raises(VaultError, match="ENCRYPTION_KEYS") as raised:
            account.broker_token(BrokerMode.TRADIER_SANDBOX)
    assert TOKEN not in str(raised.value) and account.tradier_sandbox_token_encrypted not in str(raised.value)
    with pytest.raises(CommandError, match="ENCRYPTION_KEYS"):
        call_command("rotate_encryption_keys", "--apply")


def test_no_key_at_all_names_the_setting(settings, trader):
    settings.ENCRYPTION_KEYS = []
    account = services.account_settings_for(user=trader)
    with pytest.raises(VaultError, match="ENCRYPTION_KEYS is not set"):
        account.set_broker_token(BrokerMode.TRADIER_SANDBOX, TOKEN)
