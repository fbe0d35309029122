"""The backup role sees past row-level security, so a dump holds every tenant's rows."""

import os
import runpy
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from monitoring import tasks
from tests.factories import PaperTradeFactory, PriceSnapshotFactory, UserFactory
from tradeoptions import backups

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


@pytest.mark.django_db(transaction=True)
def test_the_restore_drill_counts_the_partitioned_price_history_whole_and_by_month():
    """Snapshots in this month's partition (the database's month: the migration made it) and one in
    the default partition: the drill counts the parent and each partition on both sides, and
    compares the partitions' bounds."""
    if "PG_DUMP" not in os.environ:
        pytest.skip("needs the embedded server's pg_dump and roles (make test without DATABASE_URL)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT date_trunc('month', now() AT TIME ZONE 'UTC')")
        this_month = cursor.fetchone()[0].replace(tzinfo=UTC)
    trade = PaperTradeFactory(owner=UserFactory(username="alice"))
    for minutes in (0, 5, 10):
        PriceSnapshotFactory(trade=trade, timestamp=this_month + timedelta(days=2, minutes=minutes))
    PriceSnapshotFactory(trade=trade, timestamp=datetime(2000, 1, 3, 15, tzinfo=UTC))  # no month of its own
    month = f"monitoring_pricesnapshot_y{this_month:%Y}m{this_month:%m}"
    scratch = f"drill_{os.getpid()}"
    result = subprocess.run([sys.executable, str(ROOT / "scripts/restore_drill.py"), "--scratch", scratch],
                            capture_output=True, text=True, env=_drill_environment(connection.settings_dict),
                            timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert rows["monitoring_pricesnapshot"] == ["4", "4"]
    assert rows[month] == ["3", "3"] and rows["monitoring_pricesnapshot_default"] == ["1", "1"]
    assert "every bound matches" in result.stdout


def test_the_drill_names_each_partition_missing_or_bounded_otherwise(capsys):
    drill = runpy.run_path(str(ROOT / "scripts/restore_drill.py"))
    live = {"snap_y2026m11": "snap FOR VALUES FROM ('2026-11-01') TO ('2026-12-01')", "snap_default": "snap DEFAULT",
            "snap_y2026m12": "snap FOR VALUES FROM ('2026-12-01') TO ('2027-01-01')"}
    restored = {"snap_y2026m11": live["snap_y2026m11"], "snap_y2026m12": "snap DEFAULT"}
    assert drill["compare_partitions"](live, restored) == ["snap_default", "snap_y2026m12"]
    assert drill["compare_partitions"](live, dict(live)) == []
    assert "MISMATCH" in capsys.readouterr().out


def _dump_named(directory: Path, taken: datetime) -> Path:
    path = directory / f"tradeoptions-{taken:%Y%m%dT%H%M%SZ}.dump"
    path.write_text("dump")
    return path


NIGHT = datetime(2027, 3, 16, 5, 0, tzinfo=UTC)  # 1:00 in New York (EDT) on a Tuesday


@pytest.mark.parametrize(("at", "newest", "due"), [
    (NIGHT, None, True),  # never backed up
    (NIGHT - timedelta(minutes=1), NIGHT - timedelta(hours=23), False),  # 0:59: last night's is taken
    (NIGHT, NIGHT - timedelta(hours=23), True),  # 1:00: tonight's is due
    (NIGHT + timedelta(minutes=10), NIGHT + timedelta(minutes=2), False),  # taken at 1:02
    (NIGHT + timedelta(hours=20), NIGHT + timedelta(minutes=2), False),  # all day long
    (NIGHT + timedelta(days=3), NIGHT + timedelta(minutes=2), True),  # the worker was down: made up
])
def test_a_nights_backup_is_due_from_its_new_york_hour_until_a_dump_is_taken(tmp_path, settings, at, newest, due):
    if newest:
        _dump_named(tmp_path, newest)
    (tmp_path / "notes.txt").write_text("not a dump")
    assert backups.backup_due(at=at, directory=tmp_path, hour=1) is due
    assert backups.backup_due(at=at, directory=tmp_path / "missing", hour=1)


@pytest.mark.django_db(transaction=True)
def test_the_nightly_job_dumps_as_the_backup_role_and_keeps_the_newest(tmp_path, settings):
    if "PG_DUMP" not in os.environ:
        pytest.skip("needs the embedded server's pg_dump and roles (make test without DATABASE_URL)")
    PriceSnapshotFactory(trade=PaperTradeFactory(owner=UserFactory(username="alice")))
    old = [_dump_named(tmp_path, datetime(2000, 1, day, tzinfo=UTC)) for day in (1, 2, 3)]
    for number, path in enumerate(old):
        os.utime(path, (1_000_000_000 + number, 1_000_000_000 + number))
    database = connection.settings_dict
    settings.BACKUP_DATABASE_URL = (f"postgresql://tradeoptions_backup@/{database['NAME']}"
                                    f"?host={quote(database['HOST'], safe='')}")
    settings.BACKUP_DIR, settings.BACKUP_KEEP = tmp_path, 2
    outcome = tasks.back_up_database.apply().get()
    assert outcome.startswith("backup written: ")
    dump = Path(outcome.removeprefix("backup written: "))
    assert sorted(tmp_path.iterdir()) == sorted([old[2], dump])  # the newest old one and tonight's
    restore = Path(os.environ["PG_DUMP"]).with_name("pg_restore")
    listing = subprocess.run([str(restore), "--list", str(dump)], capture_output=True, text=True, check=True).stdout
    assert "TABLE DATA public monitoring_pricesnapshot_default" in listing
    taken = backups.backups_taken(tmp_path)[-1]
    assert not backups.backup_due(at=taken + timedelta(minutes=1), directory=tmp_path, hour=settings.BACKUP_HOUR)


def test_the_nightly_job_without_the_backup_role_says_so(db, tmp_path, settings, caplog):
    settings.BACKUP_DATABASE_URL, settings.BACKUP_DIR = "", tmp_path
    assert tasks.back_up_database.apply().get() == "not configured"
    assert "BACKUP_DATABASE_URL is not set" in caplog.text
    assert list(tmp_path.iterdir()) == []
    settings.SCHEDULE_BACK_UP_DATABASE = False
    assert tasks.back_up_database.apply().get() == "disabled"
