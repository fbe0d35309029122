"""Production settings refuse to start without real secrets, and pass Django's deploy checks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
REAL_SECRET = "p" + "Xq8-r7Tz_Lm2Nv9Ws4Yb6Hc1Jd3Kf5Gh0Qe" * 2
WEB_URL = "postgres://tradeoptions_app:pw@db.example.com:5432/tradeoptions"
WORKER_URL = "postgres://tradeoptions_worker:pw@db.example.com:5432/tradeoptions"


def _environment(**env) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("SECRET_KEY", "ENCRYPTION_KEYS", "ENCRYPTION_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE",
                                  "DATABASE_WORKER_URL", "TRADEOPTIONS_PROCESS", "TRUSTED_PROXY_COUNT")}
    # The production server's two roles on one database (the checks compare host, port and name).
    # Real quotes, which a server that allows Tradier trades needs (monitoring.E001, monitoring/tests/test_checks.py).
    environment.update({"DJANGO_SETTINGS_MODULE": "tradeoptions.settings.production", "DATABASE_URL": WEB_URL,
                        "MARKET_DATA_SOURCE": "tradier", "TRADIER_MARKET_DATA_TOKEN": "a-market-data-token", **env})
    return environment


def _manage(*args, **env):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=_environment(**env),
                          capture_output=True, text=True, timeout=120)


def test_deploy_checks_are_clean_with_real_secrets():
    result = _manage("check", "--deploy", "--fail-level", "WARNING",
                     SECRET_KEY=REAL_SECRET, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
                     ALLOWED_HOSTS="trade.example.com", DATABASE_WORKER_URL=WORKER_URL, TRUSTED_PROXY_COUNT="1")
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize(("proxies", "refused"), [("", True), ("0", True), ("1", False), ("2", False)])
def test_deploy_checks_want_the_proxies_counted(proxies, refused):
    """Production settings trust the proxy's X-Forwarded-Proto; read without a proxy count, every
    client would have the proxy's address and a few wrong passwords from anyone would lock a
    username for everybody (tradeoptions/lockout.py)."""
    result = _manage("check", "--deploy", SECRET_KEY=REAL_SECRET, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
                     ALLOWED_HOSTS="trade.example.com", DATABASE_WORKER_URL=WORKER_URL,
                     **({"TRUSTED_PROXY_COUNT": proxies} if proxies else {}))
    output = result.stderr + result.stdout
    assert ("tradeoptions.E006" in output) is refused, output
    assert (result.returncode != 0) is refused, output
    if refused:
        assert "Set TRUSTED_PROXY_COUNT" in output


@pytest.mark.parametrize(("worker_url", "error"), [
    ("", "E004"),
    ("postgres://tradeoptions_app:pw@db.example.com:5432/tradeoptions", "E004"),
    ("postgres://tradeoptions_worker:pw@db.example.com:5432/another", "E005"),
    ("postgres://tradeoptions_worker:pw@postgres:5432/tradeoptions", "E005"),  # compose's default, beside Neon
    ("postgres://tradeoptions_worker:pw@db.example.com:6432/tradeoptions", "E005"),
])
def test_deploy_checks_want_a_worker_role_of_its_own_on_the_same_database(worker_url, error):
    """Without it the workers would run as the web role, which may not enter the system context."""
    result = _manage("check", "--deploy", SECRET_KEY=REAL_SECRET, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
                     DATABASE_URL=WEB_URL,
                     DATABASE_WORKER_URL=worker_url)
    assert result.returncode != 0
    assert f"tradeoptions.{error}" in result.stderr + result.stdout


def _role_of(command: list[str]) -> str:
    """The database role a process started this way connects as (production settings)."""
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env=_environment(
        SECRET_KEY=REAL_SECRET, ENCRYPTION_KEYS=Fernet.generate_key().decode(), DATABASE_WORKER_URL=WORKER_URL,
        DATABASE_URL=WEB_URL))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_each_entry_point_connects_as_its_own_role():
    show = "from django.conf import settings; print('role=' + settings.DATABASES['default']['USER'])"
    # gunicorn imports the WSGI module (after the package, which imports the Celery app too).
    assert "role=tradeoptions_app" in _role_of([sys.executable, "-c", f"import tradeoptions.wsgi; {show}"])
    # Ops commands.
    assert "role=tradeoptions_worker" in _role_of([sys.executable, "manage.py", "shell", "-c", show])
    # The celery command line (workers and beat): its report prints the settings.
    report = _role_of([str(Path(sys.executable).parent / "celery"), "-A", "tradeoptions", "report"])
    assert "TRADEOPTIONS_PROCESS: 'worker'" in report and "'USER': 'tradeoptions_worker'" in report


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ENCRYPTION_KEYS": Fernet.generate_key().decode()}, "SECRET_KEY"),
        ({"SECRET_KEY": "short", "ENCRYPTION_KEYS": Fernet.generate_key().decode()}, "SECRET_KEY"),
        ({"SECRET_KEY": REAL_SECRET}, "ENCRYPTION_KEYS"),
        ({"SECRET_KEY": REAL_SECRET, "ENCRYPTION_KEYS": "not-a-key"}, "ENCRYPTION_KEYS entry 1"),
    ],
)
def test_production_refuses_to_start_without_real_secrets(env, message):
    result = _manage("check", **env)
    assert result.returncode != 0
    assert message in result.stderr
    assert "not-a-key" not in result.stderr.replace("ENCRYPTION_KEYS=not-a-key", "")


def test_a_single_encryption_key_is_accepted():
    result = _manage("check", "--deploy", SECRET_KEY=REAL_SECRET, ENCRYPTION_KEY=Fernet.generate_key().decode(),
                     DATABASE_WORKER_URL=WORKER_URL, TRUSTED_PROXY_COUNT="1")
    assert result.returncode == 0, result.stderr


def _database_settings(**env) -> dict:
    script = "import json; from django.conf import settings; print(json.dumps(settings.DATABASES['default']))"
    result = _manage("shell", "-c", script, SECRET_KEY=REAL_SECRET, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
                     TRADEOPTIONS_PROCESS="web", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_neon_s_tls_is_asked_for_in_the_url_or_by_setting():
    neon = "postgres://tradeoptions_app:pw@ep-cool-42.us-east-2.aws.neon.tech/tradeoptions"
    assert _database_settings(DATABASE_URL=neon + "?sslmode=require")["OPTIONS"]["sslmode"] == "require"
    assert _database_settings(DATABASE_URL=neon, DATABASE_SSLMODE="verify-full")["OPTIONS"]["sslmode"] == "verify-full"
    assert "sslmode" not in _database_settings(DATABASE_URL=neon, DATABASE_SSLMODE="")["OPTIONS"]


def test_behind_a_transaction_pooler_nothing_outlives_a_transaction_on_the_server_session():
    pooled = _database_settings(DATABASE_TRANSACTION_POOLER="true")
    assert pooled["DISABLE_SERVER_SIDE_CURSORS"] is True and pooled["OPTIONS"]["prepare_threshold"] is None
    assert _database_settings(DATABASE_TRANSACTION_POOLER="false").get("DISABLE_SERVER_SIDE_CURSORS") is not True
