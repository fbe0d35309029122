"""Where a webhook may point, address by address, and a resolver that hangs.

In production (WEBHOOK_ALLOW_PRIVATE_TARGETS off) a webhook goes to public addresses only. An
IPv6 address that carries an IPv4 one (mapped, compatible, SIIT, NAT64, 6to4, Teredo) is refused
whatever it carries; IPv4 written as one number, in octal or in hex is read by the resolver and
checked as the address it is.
"""

import socket
import threading
import time
from decimal import Decimal

import pytest

from tests.factories import PaperTradeFactory
from tradeoptions import tenancy
from trades import services
from trades.models import CloseReason, TradeStatus, WebhookDelivery, WebhookEvent, WebhookEventStatus
from trades.services import notifications

pytestmark = pytest.mark.usefixtures("production_guard")

REFUSED = {
    # IPv4 inside our network, written every way the resolver reads
    "127.0.0.1": "loopback", "2130706433": "loopback as one decimal number", "0x7f000001": "loopback in hex",
    "0x7f.0.0.1": "loopback, first part hex", "0177.0.0.1": "loopback, first part octal",
    "017700000001": "loopback as one octal number", "127.1": "loopback, short form", "0x7f.1": "short, hex",
    "0xa9fea9fe": "cloud metadata (169.254.169.254) in hex", "3232235777": "192.168.1.1 as a number",
    "10.0.0.1": "private", "100.64.0.1": "shared address space (CGNAT)", "0.0.0.0": "unspecified",
    # IPv6 inside our network
    "[::1]": "loopback", "[::]": "unspecified", "[fe80::1]": "link-local", "[fc00::1]": "unique local",
    "[2001:db8::1]": "documentation",
    # IPv6 that carries IPv4: refused whatever it carries
    "[2002:7f00:1::]": "6to4 of 127.0.0.1", "[2002:a00:1::1]": "6to4 of 10.0.0.1",
    "[2002:5db8:d822::1]": "6to4 of a public address",
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]": "Teredo", "[2001::1]": "Teredo, bare",
    "[64:ff9b::7f00:1]": "NAT64 of 127.0.0.1", "[64:ff9b::a9fe:a9fe]": "NAT64 of 169.254.169.254",
    "[64:ff9b::808:808]": "NAT64 of a public address", "[64:ff9b:1::a00:1]": "NAT64, local-use prefix",
    "[::ffff:127.0.0.1]": "IPv4-mapped loopback", "[::ffff:10.0.0.1]": "IPv4-mapped private",
    "[::ffff:8.8.8.8]": "IPv4-mapped public", "[::127.0.0.1]": "IPv4-compatible loopback",
    "[::8.8.8.8]": "IPv4-compatible public", "[::ffff:0:a00:1]": "IPv4-translated (SIIT) private",
}
ALLOWED = {
    "93.184.216.34": "public IPv4", "1572395042": "the same, as one decimal number",
    "[2606:2800:220:1:248:1893:25c8:1946]": "public IPv6",
    "[2001:4860:4860::8888]": "public IPv6 in 2001::/23, outside Teredo's 2001::/32",
}


@pytest.fixture
def production_guard(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False


@pytest.mark.parametrize("host", sorted(REFUSED))
def test_an_address_inside_our_network_or_carrying_ipv4_is_refused(host):
    with pytest.raises(notifications.UnsafeWebhookTarget, match="public addresses only"):
        services.webhook_url_check(f"https://{host}/hook")


@pytest.mark.parametrize("host", sorted(ALLOWED))
def test_a_public_address_is_allowed(host):
    services.webhook_url_check(f"https://{host}/hook")


def test_a_name_resolving_to_6to4_is_refused_when_saved(api_as, trader, dns):
    """The reported hole: 2002::/16 passed as global (it embeds 127.0.0.1 here)."""
    dns["hooks.example.com"] = "2002:7f00:1::"
    response = api_as(trader).put("/api/settings", {"webhook_url": "https://hooks.example.com/h"}, format="json")
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["attr"] == "webhook_url" and "public addresses only" in error["detail"]


# --- A resolver that hangs -----------------------------------------------------------------------


@pytest.fixture
def hanging_dns(monkeypatch, settings):
    """getaddrinfo that never answers for names under example.com until the test ends."""
    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = 0.3
    released = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host.endswith("example.com"):
            released.wait(30)
            raise socket.gaierror("released")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(notifications.socket, "getaddrinfo", getaddrinfo)
    yield
    released.set()


def test_a_hanging_resolver_is_a_clear_refusal_within_the_timeout_when_saved(api_as, trader, hanging_dns):
    client = api_as(trader)
    started = time.monotonic()
    response = client.put("/api/settings", {"webhook_url": "https://slow.example.com/h"}, format="json")
    elapsed = time.monotonic() - started
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["attr"] == "webhook_url" and "did not resolve in time (0.3 s)" in error["detail"]
    assert elapsed < 2, elapsed


def test_more_hanging_lookups_than_threads_are_all_refused_in_time(hanging_dns):
    """The lookups queued behind hung ones time out too: nothing waits for a thread forever."""
    started = time.monotonic()
    for index in range(notifications.DNS_THREADS + 2):
        with pytest.raises(notifications.WebhookHostUnknown, match="did not resolve in time"):
            services.webhook_url_check(f"https://slow{index}.example.com/h")
    assert time.monotonic() - started < (notifications.DNS_THREADS + 2) * 0.3 + 2


def test_a_hanging_resolver_at_send_time_is_a_retried_attempt_not_a_hung_worker(
        trader, settings, dns, tasks_run_at_once, django_capture_on_commit_callbacks, monkeypatch):
    dns["hooks.example.com"] = "93.184.216.34"
    services.account_settings_update(user=trader, changes={"webhook_url": "https://hooks.example.com/h"})
    services.webhook_secret_rotate(user=trader)
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    released = threading.Event()
    monkeypatch.setattr(notifications.socket, "getaddrinfo", lambda *args, **kwargs: released.wait(30))
    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = 0.3
    trade = PaperTradeFactory(owner=trader)
    started = time.monotonic()
    try:
        with django_capture_on_commit_callbacks(execute=True), tenancy.acting_as(trader.pk):
            services.trade_transition(trade_id=trade.pk, to=TradeStatus.CLOSED, actor="SYSTEM", changes={
                "close_reason": CloseReason.MANUAL_CLOSE, "close_price": trade.entry_price,
                "close_date": trade.entry_date, "realized_pnl": Decimal("0")})
    finally:
        released.set()
    assert time.monotonic() - started < 5
    with tenancy.acting_as(trader.pk):
        (event,) = WebhookEvent.objects.filter(owner=trader)
        attempts = list(WebhookDelivery.objects.filter(event=event).order_by("attempt"))
    # Not refused for good, as an address inside our network is: tried again, then given up on.
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, None), (2, None)]
    assert all("did not resolve in time" in attempt.error for attempt in attempts)
    assert event.status == WebhookEventStatus.FAILED
