"""The backup role sees past row-level security, so a dump holds every tenant's rows."""

import os
import runpy
import subprocess
import sys
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
    _restore_and_read_as_the_app(dump, database)


def _restore_and_read_as_the_app(dump: Path, database: dict) -> None:
    """Restore into a new database as the schema owner, migrate (which re-grants the runtime roles
    and stores the tenant key), and read back through row-level security as the worker role (an
    ops command): the documented restore works."""
    bin_dir = Path(os.environ["PG_DUMP"]).parent
    name = f"restore_{os.getpid()}"
    owner = f"postgresql://tradeoptions_owner@/{{}}?host={quote(database['HOST'], safe='')}"
    subprocess.run([str(bin_dir / "psql"), "-q", "-c", f"CREATE DATABASE {name}", owner.format("postgres")],
                   check=True, capture_output=True)
    try:
        subprocess.run([str(bin_dir / "pg_restore"), "--no-owner", "--exit-on-error", "-d", owner.format(name),
                        str(dump)], check=True, capture_output=True)
        socket = quote(database["HOST"], safe="")
        environment = {**os.environ, "DATABASE_URL": f"postgres://tradeoptions_app@/{socket}/{name}",
                       "DATABASE_WORKER_URL": f"postgres://tradeoptions_worker@/{socket}/{name}",
                       "DATABASE_OWNER_URL": f"postgres://tradeoptions_owner@/{socket}/{name}"}
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=environment, check=True,
                       capture_output=True, timeout=120)
        script = ("from tradeoptions import tenancy; from trades.models import PaperTrade\n"
                  "with tenancy.system_context(): print(sorted(PaperTrade.objects.values_list('ticker', flat=True)))\n"
                  "print(PaperTrade.objects.count())")
        result = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=environment,
                                capture_output=True, text=True, timeout=120)
        assert result.stdout.strip().splitlines()[-2:] == ["['AAPL', 'NVDA']", "0"], result.stderr
    finally:
        subprocess.run([str(bin_dir / "psql"), "-q", "-c", f"DROP DATABASE IF EXISTS {name}",
                        owner.format("postgres")], capture_output=True)


def _backup(*args, **env):
    return subprocess.run(["bash", str(ROOT / "scripts/backup.sh"), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_the_backup_script_explains_itself():
    result = _backup("--help")
    assert result.returncode == 0 and "BACKUP_DATABASE_URL" in result.stdout and "--dry-run" in result.stdout


def test_a_dry_run_names_the_dump_and_the_pruning_and_touches_nothing(tmp_path):
    old = [tmp_path / f"tradeoptions-2026010{day}T000000Z.dump" for day in (1, 2, 3)]
    for number, path in enumerate(old):
        path.write_text("old dump")
        os.utime(path, (1_700_000_000 + number, 1_700_000_000 + number))
    result = _backup("--dry-run", str(tmp_path), BACKUP_DATABASE_URL="postgresql://nobody@/nowhere", KEEP="2",
                     PG_DUMP="/bin/false")
    assert result.returncode == 0, result.stderr
    assert "would write" in result.stdout
    assert f"would delete {old[0]}" in result.stdout and f"would delete {old[1]}" in result.stdout
    assert str(old[2]) not in result.stdout
    assert sorted(tmp_path.iterdir()) == old


def test_a_failed_dump_leaves_no_partial_file_and_exits_non_zero(tmp_path):
    result = _backup(str(tmp_path), BACKUP_DATABASE_URL="postgresql://nobody@/nowhere", PG_DUMP="/bin/false")
    assert result.returncode != 0 and "backup failed: no dump written" in result.stderr
    assert list(tmp_path.iterdir()) == []
    missing = _backup(str(tmp_path), BACKUP_DATABASE_URL="")
    assert missing.returncode != 0 and "set BACKUP_DATABASE_URL" in missing.stderr


def _drill_environment(database: dict) -> dict:
    socket = quote(database["HOST"], safe="")
    return {**os.environ, "BACKUP_DATABASE_URL": f"postgresql://tradeoptions_backup@/{database['NAME']}?host={socket}",
            "DRILL_DATABASE_URL": f"postgresql://tradeoptions_owner@/postgres?host={socket}"}


@pytest.mark.django_db(transaction=True)
def test_the_restore_drill_dumps_restores_and_finds_every_row_of_every_table():
    if "PG_DUMP" not in os.environ:
        pytest.skip("needs the embedded server's pg_dump and roles (make test without DATABASE_URL)")
    for name in ("alice", "bob"):
        PaperTradeFactory(owner=UserFactory(username=name))
    scratch = f"drill_{os.getpid()}"
    result = subprocess.run([sys.executable, str(ROOT / "scripts/restore_drill.py"), "--scratch", scratch],
                            capture_output=True, text=True, env=_drill_environment(connection.settings_dict),
                            timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert rows["trades_papertrade"] == ["2", "2"] and rows["auth_user"] == ["2", "2"]
    assert rows["django_migrations"][0] == rows["django_migrations"][1] != "0"
    assert "restore drill passed" in result.stdout
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [scratch])
        assert cursor.fetchone()[0] == 0  # the scratch database is gone again


def test_the_drill_names_each_table_whose_rows_did_not_come_back(capsys):
    drill = runpy.run_path(str(ROOT / "scripts/restore_drill.py"))
    bad = drill["compare"]({"trades_papertrade": 5, "trades_tradeevent": 9, "auth_user": 2},
                           {"trades_papertrade": 5, "trades_tradeevent": 7})
    assert bad == ["auth_user", "trades_tradeevent"]
    assert "MISMATCH" in capsys.readouterr().out
