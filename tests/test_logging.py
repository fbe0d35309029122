"""Every log line says which request, task and trade it belongs to; production writes JSON.

`json_lines` (conftest.py) captures what the production formatter writes."""

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet
from django.core.cache import cache

from monitoring import clock, tasks
from tests.factories import PaperTradeFactory
from tradeoptions import tenancy
from tradeoptions.logs import ContextTextFormatter
from trades.models import Actor, TradeStatus
from trades.services import trade_transition

ROOT = Path(__file__).resolve().parent.parent


def test_a_request_s_log_line_carries_the_request_id_it_was_sent_and_returns_it(client, db, settings, json_lines):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # the probe logs the failed check
    response = client.get("/healthz", HTTP_X_REQUEST_ID="lb-1234.abc")
    assert response["X-Request-ID"] == "lb-1234.abc"
    line = next(line for line in json_lines() if "health check redis failed" in line["message"])
    assert line["request_id"] == "lb-1234.abc" and line["level"] == "WARNING"
    assert line["logger"] == "tradeoptions.health"


def test_each_request_writes_one_access_line_with_its_id_status_and_time(client, trader, json_lines, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: datetime(2026, 12, 5, 17, 0, tzinfo=UTC))  # a Saturday: healthy
    client.force_login(trader)
    response = client.get("/api/trades?page=1", HTTP_X_REQUEST_ID="abc-1")
    [access] = [line for line in json_lines() if line["logger"] == "tradeoptions.access"]
    assert access["request_id"] == "abc-1" == response["X-Request-ID"]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/api/trades", 200)
    assert access["duration_ms"] >= 0
    assert client.get("/healthz").status_code == 200  # a healthy probe is not news
    assert len([line for line in json_lines() if line["logger"] == "tradeoptions.access"]) == 1


def test_a_request_without_an_id_or_with_a_forged_one_gets_a_new_one(client, db):
    made = client.get("/healthz")["X-Request-ID"]
    forged = client.get("/healthz", HTTP_X_REQUEST_ID="x\nFAKE LOG LINE")["X-Request-ID"]
    assert len(made) == len(forged) == 32 and made != forged and "\n" not in forged


def test_lines_outside_any_request_carry_no_request_id(json_lines):
    logging.getLogger("tradeoptions.test").warning("between requests")
    assert json_lines()[-1]["request_id"] is None


def test_a_task_s_log_line_carries_its_task_id(db, json_lines):
    cache.clear()
    with tasks.exclusive("monitoring.take_bookends", ttl=30):
        result = tasks.take_bookends.apply()
    line = next(line for line in json_lines() if "skipped" in line["message"])
    assert line["task_id"] == result.id and line["request_id"] is None


def test_a_lifecycle_line_carries_the_trade_id(trader, json_lines):
    trade = PaperTradeFactory(owner=trader, status=TradeStatus.OPEN)
    with tenancy.acting_as(trader.pk):
        trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, actor=Actor.SYSTEM,
                         changes={"attention_reason": "checked"})
    line = next(line for line in json_lines() if line["logger"] == "trades.services.lifecycle")
    assert line["trade_id"] == trade.pk
    logging.getLogger("trades").info("after the transition")
    assert json_lines()[-1]["trade_id"] is None


def test_production_settings_log_json_and_local_settings_readable_text():
    environment = {key: value for key, value in os.environ.items() if key not in ("LOG_FORMAT",)}
    script = "import logging; logging.getLogger('tradeoptions.ops').warning('hello ops')"

    def run(module, **extra):
        env = {**environment, "DJANGO_SETTINGS_MODULE": module, **extra}
        return subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    production = run("tradeoptions.settings.production", SECRET_KEY="pXq8-r7Tz_Lm2Nv9Ws4Yb6Hc1Jd3Kf5Gh0Qe" * 2,
                     ENCRYPTION_KEYS=Fernet.generate_key().decode())
    line = json.loads(production.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello ops" and line["level"] == "WARNING" and "request_id" in line
    local = run("tradeoptions.settings.local")
    assert local.stderr.strip().splitlines()[-1].endswith("WARNING tradeoptions.ops hello ops")  # no ids known


def test_local_lines_name_only_the_ids_that_are_known():
    formatter = ContextTextFormatter("%(name)s %(context)s%(message)s")
    record = logging.LogRecord("trades", logging.INFO, __file__, 1, "closed", None, None)
    record.request_id, record.task_id, record.trade_id = "r-1", None, 42
    assert formatter.format(record) == "trades [req=r-1 trade=42] closed"
