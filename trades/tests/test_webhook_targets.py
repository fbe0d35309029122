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
        services.webhook_url_check(f"https://{host}/hook", owner_id=1)


@pytest.mark.parametrize("host", sorted(ALLOWED))
def test_a_public_address_is_allowed(host):
    services.webhook_url_check(f"https://{host}/hook", owner_id=1)


def test_a_name_resolving_to_6to4_is_refused_when_saved(api_as, trader, dns):
    """The reported hole: 2002::/16 passed as global (it embeds 127.0.0.1 here)."""
    dns["hooks.example.com"] = "2002:7f00:1::"
    response = api_as(trader).put("/api/settings", {"webhook_url": "https://hooks.example.com/h"}, format="json")
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["attr"] == "webhook_url" and "public addresses only" in error["detail"]


# --- A resolver that hangs -----------------------------------------------------------------------

HANG = 60  # seconds a hung lookup blocks, unless the test ends first: far beyond any bound asserted


class Resolver:
    """getaddrinfo as the test wants it: names under hung.example.com block until the test ends;
    other example.com names answer a public address once `meeting` lookups have arrived together;
    every other name resolves as usual."""

    def __init__(self):
        self.released = threading.Event()
        self.calls: list[str] = []
        self.meeting: threading.Barrier | None = None
        self.hung = "hung.example.com"  # the names (this one and those under it) that hang

    def getaddrinfo(self, host, port, *args, **kwargs):
        self.calls.append(host)
        if host.endswith(self.hung):
            self.released.wait(HANG)
            raise socket.gaierror("released")
        if host.endswith("example.com"):
            if self.meeting is not None:
                self.meeting.wait(HANG)  # broken (an error) unless all arrive: they ran at once
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)


REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def resolver(monkeypatch, settings):
    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = 0.3
    fake = Resolver()
    monkeypatch.setattr(notifications.socket, "getaddrinfo", fake.getaddrinfo)
    yield fake
    fake.released.set()
    if fake.meeting is not None:
        fake.meeting.abort()
    for _ in range(200):  # the lookup threads give their places back as they end
        if notifications.dns_lookups_in_flight() == 0:
            break
        time.sleep(0.05)


def test_a_hanging_resolver_is_a_clear_refusal_not_a_hung_request_when_saved(api_as, trader, resolver):
    client = api_as(trader)
    started = time.monotonic()
    response = client.put("/api/settings", {"webhook_url": "https://slow.hung.example.com/h"}, format="json")
    assert time.monotonic() - started < HANG / 3  # it answered; the lookup itself is still hung
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["attr"] == "webhook_url" and "did not resolve in time (0.3 s)" in error["detail"]
    assert notifications.dns_lookups_hung(trader.pk) == 1


def test_one_traders_hung_resolver_does_not_hold_up_anothers_lookups(trader, other_trader, resolver, settings):
    """Alice's webhook host never answers. Her lookups stay in flight, at most
    DNS_LOOKUPS_HUNG_PER_OWNER of them; beyond that hers are refused without a lookup. Bob's lookups
    meanwhile run, all at once (more of them than Alice holds), and resolve."""
    per_owner = notifications.DNS_LOOKUPS_HUNG_PER_OWNER
    for index in range(per_owner + 2):
        with pytest.raises(notifications.WebhookHostUnknown, match="did not resolve in time"):
            services.webhook_url_check(f"https://a{index}.hung.example.com/h", owner_id=trader.pk)
    assert notifications.dns_lookups_hung(trader.pk) == per_owner
    assert sum(host.endswith("hung.example.com") for host in resolver.calls) == per_owner  # the rest: refused

    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = HANG / 3  # generous: Bob's lookups wait for each other
    together = 8
    resolver.meeting = threading.Barrier(together)
    results = []

    def check(index):
        try:
            services.webhook_url_check(f"https://b{index}.example.com/h", owner_id=other_trader.pk)
            results.append("resolved")
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            results.append(repr(error))

    threads = [threading.Thread(target=check, args=(index,)) for index in range(together)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG)
    assert results == ["resolved"] * together
    assert notifications.dns_lookups_hung(trader.pk) == per_owner  # Alice's are still hung


def test_the_lookups_in_flight_of_all_owners_together_are_capped(resolver, monkeypatch):
    monkeypatch.setattr(notifications, "DNS_LOOKUPS_MAX", 3)
    for owner_id, host in ((1, "a"), (1, "b"), (2, "c")):
        with pytest.raises(notifications.WebhookHostUnknown, match=r"did not resolve in time \(0.3 s\)"):
            services.webhook_url_check(f"https://{host}.hung.example.com/h", owner_id=owner_id)
    with pytest.raises(notifications.WebhookHostUnknown, match="too many lookups pending"):
        services.webhook_url_check("https://d.example.com/h", owner_id=3)
    assert "d.example.com" not in resolver.calls


def test_a_hanging_resolver_at_send_time_is_retried_without_using_up_attempts_until_its_own_bound(
        trader, settings, tasks_run_at_once, django_capture_on_commit_callbacks, monkeypatch, resolver):
    """The host resolved when the URL was saved, and never answers since: each try is recorded
    and retried, none counts against WEBHOOK_MAX_ATTEMPTS (2 here), and the DNS_TIMEOUTS_MAX-th
    (4 here) ends the event. Past the first DNS_LOOKUPS_HUNG_PER_OWNER, the tries are refused without
    a lookup (the earlier ones are still hung)."""
    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = HANG / 3  # the save's lookup answers: however slowly, it is no timeout
    services.account_settings_update(user=trader, changes={"webhook_url": "https://hooks.example.com/h"})
    services.webhook_secret_rotate(user=trader)
    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = 0.3
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    monkeypatch.setattr(notifications, "DNS_TIMEOUTS_MAX", 4)
    resolver.hung = "hooks.example.com"
    trade = PaperTradeFactory(owner=trader)
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True), tenancy.acting_as(trader.pk):
        services.trade_transition(trade_id=trade.pk, to=TradeStatus.CLOSED, actor="SYSTEM", changes={
            "close_reason": CloseReason.MANUAL_CLOSE, "close_price": trade.entry_price,
            "close_date": trade.entry_date, "realized_pnl": Decimal("0")})
    assert time.monotonic() - started < HANG / 3  # not a hung worker
    with tenancy.acting_as(trader.pk):
        (event,) = WebhookEvent.objects.filter(owner=trader)
        attempts = list(WebhookDelivery.objects.filter(event=event).order_by("attempt"))
    # Not refused for good, as an address inside our network is: tried again, then given up on.
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, None), (2, None), (3, None), (4, None)]
    assert all("did not resolve in time" in attempt.error for attempt in attempts)
    assert event.status == WebhookEventStatus.FAILED
