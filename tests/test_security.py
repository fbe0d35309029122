"""Security checks that run with every test run: production settings pass `check --deploy`, CSRF
guards every session-authenticated write (login included), repeated failed logins lock the
account even when they arrive in parallel, every response carries the security headers and a
Content-Security-Policy, and the pinned dependencies have no known vulnerability."""

import json
import os
import secrets
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.test import Client

from tests.factories import PASSWORD, UserFactory
from tradeoptions.csp import DATA_POLICY, POLICY

ROOT = Path(__file__).resolve().parent.parent
IGNORE_FILE = ROOT / "docs" / "pip-audit-ignore.txt"
NETWORK_ERRORS = ("ConnectionError", "NameResolutionError", "Max retries exceeded", "timed out",
                  "Temporary failure in name resolution", "Network is unreachable")


# --- deployment settings ---------------------------------------------------------------------------


def test_production_settings_pass_the_deploy_checks():
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""),
        "DJANGO_SETTINGS_MODULE": "tradeoptions.settings.production", "DJANGO_READ_DOT_ENV": "false",
        "SECRET_KEY": secrets.token_urlsafe(60), "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "trade.example.com", "CSRF_TRUSTED_ORIGINS": "https://trade.example.com",
        "DATABASE_WORKER_URL": "postgres://tradeoptions_worker@127.0.0.1:5432/tradeoptions",
        "TRUSTED_PROXY_COUNT": "1",  # behind the TLS proxy that SECURE_PROXY_SSL_HEADER trusts (E006)
        # Real quotes, as Tradier trades need (monitoring.E001).
        "MARKET_DATA_SOURCE": "tradier", "TRADIER_MARKET_DATA_TOKEN": "a-market-data-token",
    }
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


# --- CSRF ----------------------------------------------------------------------------------------------


@pytest.fixture
def browser_client():
    """A client that checks CSRF as a browser's requests are checked (Django's test client skips it)."""
    return Client(enforce_csrf_checks=True)


def _csrf_token(client) -> str:
    client.get("/login/")
    return client.cookies["csrftoken"].value


def test_the_login_form_needs_its_csrf_token(browser_client, trader):
    refused = browser_client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert refused.status_code == 403
    token = _csrf_token(browser_client)
    signed_in = browser_client.post("/login/", {"username": "alice", "password": PASSWORD,
                                               "csrfmiddlewaretoken": token})
    assert signed_in.status_code == 302


@pytest.mark.parametrize(("method", "path", "body"), [
    ("put", "/api/settings", {"max_positions": 3}),
    ("post", "/api/trades/validate", {}),
    ("post", "/api/trades", {}),
    ("post", "/api/auth/token", {}),
    ("post", "/logout/", {}),
])
def test_session_writes_need_the_csrf_token(browser_client, trader, method, path, body):
    browser_client.force_login(trader)
    send = getattr(browser_client, method)
    refused = send(path, json.dumps(body), content_type="application/json")
    assert refused.status_code == 403, (path, refused.content[:200])
    token = browser_client.cookies["csrftoken"].value if "csrftoken" in browser_client.cookies else _csrf_token(
        browser_client)
    accepted = send(path, json.dumps(body), content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code != 403, (path, accepted.content[:200])


def test_token_authenticated_writes_need_no_csrf_token(api_as, trader):
    """A knox token is not sent by browsers on their own, so it cannot be ridden by another site."""
    client = api_as(trader)
    client.enforce_csrf_checks = True
    assert client.put("/api/settings", {"max_positions": 3}, format="json").status_code == 200


# --- login lockout ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_parallel_failures_from_separate_connections_cannot_outrun_the_lockout(settings):
    """Sixteen wrong guesses at once, from eight threads (each its own database connection): they
    cannot all slip through before the count catches up, and afterwards even the right password is
    refused. (One guess after another: tests/test_accounts.py.)"""
    UserFactory(username="carol")
    start = threading.Barrier(8)
    answers: list[int] = []

    def guess():
        client = Client()
        start.wait(timeout=10)
        for _ in range(2):
            answers.append(client.post("/login/", {"username": "carol", "password": "wrong"}).status_code)
        from django.db import connection

        connection.close()

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(set(answers)) <= [200, 429] and len(answers) == 16
    # At most the allowed failures were judged; every later guess met the lock.
    assert answers.count(200) <= settings.AXES_FAILURE_LIMIT + len(threads) - 1
    assert Client().post("/login/", {"username": "carol", "password": PASSWORD}).status_code == 429
    from django_redis import get_redis_connection  # where the failures are counted (tradeoptions/lockout.py)

    redis = get_redis_connection(settings.AXES_CACHE)
    (counted,) = redis.mget(list(redis.scan_iter(match=f"{settings.LOGIN_FAILURES_PREFIX}:pair:*")))
    assert int(counted) >= settings.AXES_FAILURE_LIMIT


# --- headers ---------------------------------------------------------------------------------------


SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                    "Referrer-Policy": "same-origin", "Cross-Origin-Opener-Policy": "same-origin"}


@pytest.mark.parametrize(("path", "policy"), [
    ("/", POLICY), ("/settings/", POLICY), ("/login/", POLICY), ("/account/password/", POLICY),
    ("/api/docs/", POLICY), ("/api/trades", DATA_POLICY), ("/api/schema/", DATA_POLICY),
    ("/api/settings", DATA_POLICY), ("/api/analytics/performance", DATA_POLICY),
    ("/api/trades/export", DATA_POLICY), ("/market-status", DATA_POLICY), ("/api/trades/999999", DATA_POLICY),
])
def test_pages_and_api_carry_the_security_headers_and_a_policy(client, trader, path, policy):
    client.force_login(trader)
    response = client.get(path)
    assert response.status_code in (200, 404), path
    for header, value in SECURITY_HEADERS.items():
        assert response[header] == value, (path, header)
    assert response["Content-Security-Policy"] == policy


# --- dependency audit --------------------------------------------------------------------------------


def _accepted_vulnerabilities() -> set[str]:
    accepted = set()
    for line in IGNORE_FILE.read_text().splitlines():
        entry, _, reason = line.partition("#")
        if entry.strip():
            assert reason.strip(), f"{IGNORE_FILE.name}: {entry.strip()} is ignored without a reason"
            accepted.add(entry.strip())
    return accepted


def test_pinned_dependencies_have_no_known_vulnerability(tmp_path):
    report = tmp_path / "audit.json"
    audit = [sys.executable, "-m", "pip_audit", "--no-deps", "--disable-pip", "--progress-spinner", "off",
             "-r", str(ROOT / "requirements/base.txt"), "-r", str(ROOT / "requirements/dev.txt"),
             "--format", "json", "--output", str(report), "--timeout", "20"]
    done = subprocess.run(audit, cwd=ROOT, capture_output=True, text=True, timeout=240)
    if not report.exists():
        if any(error in done.stderr for error in NETWORK_ERRORS):
            pytest.skip("pip-audit could not reach the vulnerability service (network error): "
                        + done.stderr.strip().splitlines()[-1][:200])
        pytest.fail(f"pip-audit failed:\n{done.stderr[-2000:]}")
    dependencies = json.loads(report.read_text())["dependencies"]
    accepted = _accepted_vulnerabilities()
    findings = [f"{dep['name']} {dep.get('version')}: {vuln['id']} (fixed in {vuln.get('fix_versions')})"
                for dep in dependencies for vuln in dep.get("vulns", [])
                if vuln["id"] not in accepted and not accepted & set(vuln.get("aliases", []))]
    assert not findings, "Known vulnerabilities (upgrade, or accept in docs/pip-audit-ignore.txt with a reason):\n" + \
        "\n".join(findings)
    unaudited = sorted(dep["name"] for dep in dependencies if dep.get("skip_reason"))
    if len(unaudited) == len(dependencies):
        pytest.skip(f"The vulnerability service knows none of the pinned versions (e.g. {unaudited[:3]}): "
                    "nothing could be audited")
    if unaudited:
        warnings.warn(f"pip-audit could not audit: {', '.join(unaudited)}", stacklevel=1)
