"""The Swagger page in a real Chromium against a live server, with no network but that server:
Swagger UI renders the API's operations under the page policy, with no CSP violation and no
error on the console, and "Try it out" calls the API with the session."""

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

WATCH_VIOLATIONS = """
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation",
        (event) => window.cspViolations.push(event.violatedDirective + " " + event.blockedURI));
"""


@pytest.fixture
def offline_page(browser, live_server):
    """A page that can reach the live server and nothing else; what it tried elsewhere, its console
    errors and its CSP violations are kept."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.elsewhere, page.problems = [], []

    def only_the_live_server(route):
        if route.request.url.startswith(live_server.url + "/"):
            return route.continue_()
        page.elsewhere.append(route.request.url)
        return route.abort()

    context.route("**/*", only_the_live_server)
    context.add_init_script(WATCH_VIOLATIONS)
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    yield page
    context.close()


def test_the_docs_render_swagger_ui_offline_under_the_page_policy(offline_page, live_server):
    page = offline_page
    UserFactory(username="alice")
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_url(f"{live_server.url}/login/?next=/api/docs/")  # a visitor signs in first
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/api/docs/")

    settings_read = page.locator(".opblock-get", has=page.locator(".opblock-summary-path[data-path='/api/settings']"))
    expect(settings_read).to_be_visible()
    expect(page.locator(".opblock-summary-path[data-path='/api/trades']").first).to_be_visible()
    # Try it out: the API answers the session, and Swagger UI shows the answer.
    settings_read.locator(".opblock-summary").click()
    settings_read.get_by_role("button", name="Try it out").click()
    settings_read.get_by_role("button", name="Execute").click()
    expect(settings_read.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")

    assert page.evaluate("window.cspViolations") == []
    assert page.problems == []
    assert page.elsewhere == []
