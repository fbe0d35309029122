"""A broker token, once stored, shows up in no page, API response, log line or error message."""

import json
import logging
from decimal import Decimal

import pytest

from brokers.base import BrokerAuthError, OrderRequest, order_tag
from brokers.factory import broker_for
from brokers.models import BrokerMode
from tests.factories import PaperTradeFactory
from tradeoptions import tenancy
from trades import services
from trades.models import AccountSettings

TOKEN = "sbx-SECRET-7c41e2d9f0a3"
CONTRACT = "SPY261218C00570000"


def test_a_full_flow_never_reveals_the_token(client, ops_user, trader, fake_tradier, caplog, json_lines,
                                             tradier_budget_of_its_own):  # not about the limiter
    caplog.set_level(logging.DEBUG)
    fake_tradier.add_account(token=TOKEN, account_id="VA7", cash=Decimal("10000"))
    fake_tradier.set_quote(CONTRACT, "4.10", "4.30")
    account = services.account_settings_for(user=trader)
    PaperTradeFactory(owner=trader)
    seen = []

    # Staff store the token through the admin (the only place it is typed in today).
    client.force_login(ops_user)
    url = f"/admin/trades/accountsettings/{account.pk}/change/"
    form = {"broker_mode": BrokerMode.TRADIER_SANDBOX, "tradier_account_id": "VA7", "account_balance": "5000",
            "max_positions": "5", "daily_loss_limit": "150", "heat_limit_pct": "6", "new_sandbox_token": TOKEN}
    seen.append(client.post(url, form).content)
    seen += [client.get(url).content, client.get("/admin/trades/accountsettings/").content]

    # The trader trades through the sandbox with it, and reads her pages and API.
    with tenancy.acting_as(trader.pk):
        broker = broker_for(AccountSettings.objects.get(owner=trader))
        order = broker.place_order(OrderRequest(option_symbol=CONTRACT, side="buy_to_open", quantity=1,
                                                order_type="market", tag=order_tag(1, "entry")))
        seen.append(repr(order).encode())
    client.force_login(trader)
    seen += [client.get("/").content, client.get("/api/trades").content]

    # A refused token produces an error message, which must not carry it either.
    fake_tradier.accounts["VA7"].token = "rotated-by-broker"
    with tenancy.acting_as(trader.pk), pytest.raises(BrokerAuthError) as refused:
        broker_for(AccountSettings.objects.get(owner=trader)).get_account_balance()
    seen.append(str(refused.value).encode())

    everything = b"\n".join(seen) + caplog.text.encode() + json.dumps(json_lines()).encode()
    assert order.status == "filled"
    assert TOKEN.encode() not in everything


def test_the_run_wide_guard_catches_a_token_in_a_response_or_a_log_line(client, trader, caplog):
    """tests/secrecy_guard.py watches every test; here it is shown catching leaks, then reset."""
    from tests import secrecy_guard

    account = services.account_settings_update(user=trader, changes={}, sandbox_token="sbx-GUARD-1f2e3d4c",
                                               live_token=None, confirmation="")
    ciphertext = getattr(account, account.TOKEN_FIELDS[BrokerMode.TRADIER_SANDBOX])
    logging.getLogger("tests.guard_selftest").error("oops: %s", "sbx-GUARD-1f2e3d4c")
    client.force_login(trader)
    client.get("/login/", {"next": ciphertext})  # the login page echoes `next`
    caught, secrecy_guard._leaks[:] = list(secrecy_guard._leaks), []
    assert any("log record of tests.guard_selftest: token sbx-GU" in leak for leak in caught)
    assert any("response to GET /login/: ciphertext gAAAA" in leak for leak in caught)
