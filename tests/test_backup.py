"""The backup role sees past row-level security, so a dump holds every tenant's rows."""

import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from tests.factories import PaperTradeFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db(transaction=True)
def test_a_backup_contains_every_tenants_trades(tmp_path):
    if "PG_DUMP" not in os.environ:
        pytest.skip("needs the embedded server's pg_dump and roles (make test without DATABASE_URL)")
    for name in ("alice", "bob"):
        PaperTradeFactory(owner=UserFactory(username=name), ticker="AAPL" if name == "alice" else "NVDA")
    database = connection.settings_dict
    url = f"postgresql://tradeoptions_backup@/{database['NAME']}?host={quote(database['HOST'], safe='')}"
    result = subprocess.run(["bash", str(ROOT / "scripts/backup.sh"), str(tmp_path)], capture_output=True,
                            text=True, env={**os.environ, "BACKUP_DATABASE_URL": url}, timeout=120)
    assert result.returncode == 0, result.stderr
    [dump] = tmp_path.glob("tradeoptions-*.dump")
    restore = Path(os.environ["PG_DUMP"]).with_name("pg_restore")
    listing = subprocess.run([str(restore), "--data-only", "--table=trades_papertrade", "-f", "-", str(dump)],
                             capture_output=True, text=True, check=True).stdout
    assert "AAPL" in listing and "NVDA" in listing
