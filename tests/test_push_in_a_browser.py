"""Push to this device, in a real Chromium against a live server: nothing asks for permission or
subscribes until the trader ticks the box; ticking it asks (permission granted through the
browser context), registers the service worker at /sw.js and subscribes with the server's VAPID
key; the subscription reaches the server, a fill is pushed to it (the push service stand-in reads
it), the service worker shows a pushed message as a notification; unticking removes it.

Headless Chromium has no push service to subscribe at (its real pushManager.subscribe() fails: it
would need Google's FCM). The page's call is made and recorded with its arguments, and when the
real one fails, the browser's answer is a subscription at the local push service stand-in, with
keys the test holds (what a real browser would hand the page). Everything else is the browser's
own: the permission, the service worker, its registration, the push event and the notification.
"""

import json

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD, UserFactory
from tests.fakes.push_service import Browser, PushService, vapid_claims
from tests.in_a_browser import PHONE, fits, page_overflow, screenshot_folder, shoot
from tradeoptions import tenancy
from trades import services
from trades.models import ChannelMessage, NotificationChannel, NotificationEvent, PushSubscription

pytestmark = pytest.mark.django_db(transaction=True)

# Counts the permission requests and subscriptions the page makes, and answers a subscribe() that
# the headless browser cannot make with one at the stand-in (window.__pushStandIn).
WATCH = """
(() => {
  const calls = window.__pushCalls = { permission: 0, subscribe: [], realSubscribeError: null, unsubscribed: 0 };
  if (!("Notification" in window) || !("PushManager" in window)) return;
  const askPermission = Notification.requestPermission.bind(Notification);
  Notification.requestPermission = (...args) => { calls.permission += 1; return askPermission(...args); };
  const subscribe = PushManager.prototype.subscribe;
  const getSubscription = PushManager.prototype.getSubscription;
  // The stand-in lives as long as the tab (a reload keeps it, as a browser keeps a subscription).
  const makeStandIn = () => {
    const json = window.__pushStandIn;
    return { endpoint: json.endpoint, expirationTime: null, toJSON: () => json,
             unsubscribe: async () => {
               calls.unsubscribed += 1;
               sessionStorage.removeItem("push-stand-in");
               return true;
             } };
  };
  PushManager.prototype.subscribe = async function (options) {
    calls.subscribe.push({ userVisibleOnly: options.userVisibleOnly,
                           key: btoa(String.fromCharCode(...new Uint8Array(options.applicationServerKey)))
                             .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "") });
    try {
      return await subscribe.call(this, options);
    } catch (error) {
      calls.realSubscribeError = `${error.name}: ${error.message}`;
      sessionStorage.setItem("push-stand-in", "on");
      return makeStandIn();
    }
  };
  PushManager.prototype.getSubscription = async function () {
    return sessionStorage.getItem("push-stand-in") ? makeStandIn() : getSubscription.call(this);
  };
})();
"""


@pytest.fixture
def push_service():
    running = PushService().start()
    yield running
    running.stop()


@pytest.fixture
def phone(push_service):
    return Browser(endpoint=push_service.endpoint("chromium-device-7"))


@pytest.fixture
def signed_in(browser, live_server, phone):
    """Alice on the settings page, in a browser that grants this site notifications when asked."""
    alice = UserFactory(username="alice")
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=live_server.url)
    context.add_init_script(WATCH + f"\nwindow.__pushStandIn = {json.dumps(phone.subscription_json())};")
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda message: message.type == "error"
            and not message.text.startswith("Failed to load resource") and page.problems.append(message.text))
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/settings/")
    page.alice = alice
    yield page
    context.close()


# What Chromium says on the console whenever a page calls subscribe() in a context without push.
NO_PUSH_IN_INCOGNITO = "Chrome currently does not support the Push API in incognito mode"


def _problems(page) -> list[str]:
    return [problem for problem in page.problems if not problem.startswith(NO_PUSH_IN_INCOGNITO)]


def _devices(user) -> list[PushSubscription]:
    with tenancy.acting_as(user.pk):
        return list(PushSubscription.objects.select_related("channel"))


def test_opting_in_subscribes_this_device_and_opting_out_removes_it(signed_in, push_service, phone, settings):
    page = signed_in
    expect(page.locator("#push-state")).to_have_text("off")
    assert page.evaluate("window.__pushCalls") == {"permission": 0, "subscribe": [], "realSubscribeError": None,
                                                   "unsubscribed": 0}  # nothing asked before the trader opts in
    assert page.evaluate("navigator.serviceWorker.getRegistration('/').then((r) => r === undefined)")

    page.check("#push-toggle")
    expect(page.locator("#push-state")).to_have_text("on")
    calls = page.evaluate("window.__pushCalls")
    assert calls["permission"] == 1
    assert calls["subscribe"] == [{"userVisibleOnly": True, "key": settings.VAPID_PUBLIC_KEY}]
    # Headless Chromium's own subscribe() has no push service to go to (a Playwright context is
    # incognito-like, where Chrome has no Push API): the stand-in answered it.
    assert calls["realSubscribeError"] and calls["realSubscribeError"].startswith("AbortError")
    scope = page.evaluate("navigator.serviceWorker.getRegistration('/').then((r) => r.scope)")
    assert scope == f"{page.url.split('/settings/')[0]}/"
    expect(page.locator("#channel-list tbody tr")).to_contain_text("push://127.0.0.1")
    [device] = _devices(page.alice)
    assert device.subscription() == {"endpoint": phone.endpoint, "keys": phone.subscription_json()["keys"]}
    assert device.channel.name.startswith("Push: Chrome")

    # A fill on the server reaches the device through the push service, readable only with its keys.
    with tenancy.acting_as(page.alice.pk):
        message = services.channel_messages_write(owner_id=page.alice.pk, kind=NotificationEvent.TP_HIT,
                                                  data={"trade": {"ticker": "SPY", "strike": "570",
                                                                  "option_type": "CALL", "quantity": 1}})[0]
    assert services.channel_message_deliver(owner_id=page.alice.pk, message_id=str(message.pk)).status == "DELIVERED"
    [request] = push_service.requests
    assert vapid_claims(request, public_key=settings.VAPID_PUBLIC_KEY)["sub"] == settings.VAPID_SUBJECT
    pushed = phone.read(request)
    assert pushed["title"] == "SPY 570C: Take-profit hit"

    page.reload()  # the page knows this device is on, from the server's list
    expect(page.locator("#push-state")).to_have_text("on")
    expect(page.locator("#push-toggle")).to_be_checked()
    page.uncheck("#push-toggle")
    expect(page.locator("#push-state")).to_have_text("off")
    assert _devices(page.alice) == []
    with tenancy.acting_as(page.alice.pk):
        assert not NotificationChannel.objects.exists() and not ChannelMessage.objects.exists()
    assert page.evaluate("window.__pushCalls.unsubscribed") == 1  # the browser's subscription went too
    assert _problems(page) == []


def test_the_service_worker_shows_a_push_as_a_notification(signed_in, live_server):
    """The browser's own push event (delivered through the DevTools protocol, as a push service
    would) reaches /sw.js, which shows the message."""
    page = signed_in
    page.check("#push-toggle")
    expect(page.locator("#push-state")).to_have_text("on")
    assert page.evaluate("navigator.serviceWorker.ready.then((registration) => Boolean(registration.active))")
    session = page.context.new_cdp_session(page)
    registrations = []
    session.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    session.send("ServiceWorker.enable")
    for _ in range(50):
        if registrations:
            break
        page.wait_for_timeout(100)
    [registration_id] = {entry["registrationId"] for entry in registrations
                         if entry["scopeURL"] == f"{live_server.url}/" and not entry["isDeleted"]}
    payload = {"title": "SPY 570C: Stop-loss hit", "body": "1 contract\nexit 2.10", "tag": "m-1", "url": "/"}
    session.send("ServiceWorker.deliverPushMessage", {"origin": live_server.url, "registrationId": registration_id,
                                                      "data": json.dumps(payload)})
    shown = None
    for _ in range(50):  # the worker shows it as soon as its push event has run
        shown = page.evaluate("""async () => {
            const registration = await navigator.serviceWorker.ready;
            const notes = await registration.getNotifications();
            return notes.map((note) => [note.title, note.body, note.tag]);
        }""")
        if shown:
            break
        page.wait_for_timeout(100)
    assert shown == [["SPY 570C: Stop-loss hit", "1 contract\nexit 2.10", "m-1"]]
    assert _problems(page) == []


def test_a_blocked_browser_says_so_and_offers_nothing(browser, live_server):
    """On a phone's width, too: the toggle and its words fit."""
    UserFactory(username="alice")
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.add_init_script("Object.defineProperty(Notification, 'permission', { get: () => 'denied' });")
    page.goto(f"{live_server.url}/settings/")
    expect(page.locator("#push-state")).to_contain_text("blocked")
    expect(page.locator("#push-toggle")).to_be_disabled()
    assert page_overflow(page) == 0 and fits(page, "#push-device", within="#channels")
    shoot(page, "push-blocked-phone", screenshot_folder("PUSH_SCREENSHOTS", "push-screens"))
    context.close()
