#!/usr/bin/env python3
"""Restore drill: prove that last night's kind of backup can actually be restored, and is whole.

1. Count the rows of every table of the live database, as the backup role (BYPASSRLS, so every
   tenant's rows), inside one REPEATABLE READ snapshot...
2. ...and dump exactly that snapshot with pg_dump (`--snapshot`), as scripts/backup.sh does
   (custom format, no owners, no privileges): the counts and the dump describe the same instant,
   however busy the live database is.
3. Drop the scratch database if a previous drill left it, create it afresh, and pg_restore the
   dump into it.
4. Count again in the restored copy, in the restored policies' system context, and compare table
   by table: a partitioned table (the price history, by month) counts once whole and once per
   partition, and its partitions must come back with the same bounds. Exit 0 only when every
   table is there with the same number of rows and every partition with its bounds.
5. Drop the scratch database (unless --keep).

    BACKUP_DATABASE_URL=postgresql://tradeoptions_backup:PW@db:5432/tradeoptions \\
    DRILL_DATABASE_URL=postgresql://tradeoptions_owner:PW@drill-host:5432/postgres \\
        scripts/restore_drill.py [--scratch NAME] [--keep]

DRILL_DATABASE_URL: a role that may CREATE DATABASE on the server to restore on (another server
than production is best: the drill then also proves the dump does not depend on it), connected
to any existing database there. PG_DUMP names the pg_dump binary (pg_restore is taken from the
same directory; both at least as new as the server). `make restore-drill` runs it against the
embedded development server. Passwords reach the tools through PGPASSWORD, never argv.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_SCRATCH = "tradeoptions_restore_drill"


def without_password(url: str) -> tuple[str, str]:
    """(the URL without its password, the password): tools get the first in argv, the second in env."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = quote(unquote(parts.username or ""), safe="")
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host)), unquote(parts.password or "")


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(name, safe="")))


def table_counts(connection: psycopg.Connection) -> dict[str, int]:
    """Rows per table of the public schema, in the connection's current transaction."""
    tables = [row[0] for row in connection.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
    counts = {}
    for table in tables:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table))
        counts[table] = connection.execute(query).fetchone()[0]
    return counts


def partition_layout(connection: psycopg.Connection) -> dict[str, str]:
    """Each partition of the public schema: its parent and bounds, in UTC whatever the server's zone."""
    connection.execute("SELECT set_config('TimeZone', 'UTC', true)")
    return {name: f"{parent} {bound}" for name, parent, bound in connection.execute(
        "SELECT c.relname, p.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE c.relispartition AND c.relnamespace = 'public'::regnamespace ORDER BY c.relname")}


def compare_partitions(source: dict[str, str], restored: dict[str, str]) -> list[str]:
    """The partitions missing from the restored copy or bounded differently there."""
    bad = sorted(name for name in source | restored if source.get(name) != restored.get(name))
    for name in bad:
        print(f"partition {name}: live {source.get(name, '-')}, restored {restored.get(name, '-')}   MISMATCH")
    return bad


def run_tool(binary: str, url: str, *args: str) -> None:
    bare, password = without_password(url)
    environment = {**os.environ, "PGPASSWORD": password} if password else dict(os.environ)
    subprocess.run([binary, *args, f"--dbname={bare}"], check=True, env=environment)


def dump_with_counts(source_url: str, dump: Path, pg_dump: str) -> tuple[dict[str, int], dict[str, str]]:
    with psycopg.connect(source_url) as source:
        source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with source.transaction():
            snapshot = source.execute("SELECT pg_export_snapshot()").fetchone()[0]
            counts, layout = table_counts(source), partition_layout(source)
            run_tool(pg_dump, source_url, "--format=custom", "--no-owner", "--no-privileges",
                     f"--snapshot={snapshot}", f"--file={dump}")
    return counts, layout


def restore_and_count(drill_url: str, scratch: str, dump: Path,
                      pg_restore: str) -> tuple[dict[str, int], dict[str, str]]:
    with psycopg.connect(drill_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(scratch)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    scratch_url = with_database(drill_url, scratch)
    run_tool(pg_restore, scratch_url, "--no-owner", "--exit-on-error", str(dump))
    with psycopg.connect(scratch_url) as restored:
        # The restored tables keep FORCE ROW LEVEL SECURITY; their own system-context policy lets
        # the drill see every tenant's rows (and proves the policies came back too).
        restored.execute("SELECT set_config('app.system', 'on', true)")
        return table_counts(restored), partition_layout(restored)


def drop(drill_url: str, scratch: str) -> None:
    with psycopg.connect(drill_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(scratch)))


def compare(source: dict[str, int], restored: dict[str, int]) -> list[str]:
    """One line per table; mismatches are marked. Returns the mismatched tables' names."""
    width = max(map(len, source | restored), default=5)
    print(f"{'table':<{width}}  {'live':>10}  {'restored':>10}")
    bad = []
    for table in sorted(source | restored):
        live, back = source.get(table), restored.get(table)
        mark = "" if live == back else "   MISMATCH"
        if mark:
            bad.append(table)
        print(f"{table:<{width}}  {'-' if live is None else live:>10}  {'-' if back is None else back:>10}{mark}")
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scratch", default=DEFAULT_SCRATCH, help="scratch database name (dropped first!)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    options = parser.parse_args()
    source_url, drill_url = os.environ.get("BACKUP_DATABASE_URL"), os.environ.get("DRILL_DATABASE_URL")
    if not source_url or not drill_url:
        parser.error("set BACKUP_DATABASE_URL (the backup role) and DRILL_DATABASE_URL (a CREATEDB role)")
    if options.scratch == urlsplit(source_url).path.lstrip("/") and \
            urlsplit(source_url).hostname == urlsplit(drill_url).hostname:
        parser.error("the scratch database is the live one: pick another --scratch")
    pg_dump = os.environ.get("PG_DUMP", "pg_dump")
    pg_restore = str(Path(pg_dump).with_name("pg_restore")) if os.sep in pg_dump else "pg_restore"

    with tempfile.TemporaryDirectory(prefix="restore-drill-") as work:
        os.chmod(work, 0o700)  # the dump holds every tenant's data
        dump = Path(work) / "drill.dump"
        live, live_layout = dump_with_counts(source_url, dump, pg_dump)
        if not live:  # a drill that restores nothing proves nothing (wrong database? not migrated?)
            print("restore drill FAILED: the live database has no tables", file=sys.stderr)
            return 1
        print(f"dumped {len(live)} tables, {sum(live.values())} rows ({dump.stat().st_size} bytes)")
        try:
            restored, restored_layout = restore_and_count(drill_url, options.scratch, dump, pg_restore)
            bad = compare(live, restored) + compare_partitions(live_layout, restored_layout)
        finally:
            if not options.keep:
                drop(drill_url, options.scratch)
    if bad:
        print(f"restore drill FAILED: {len(bad)} table(s) or partition(s) differ: {', '.join(bad)}",
              file=sys.stderr)
        return 1
    print(f"restore drill passed: {len(live)} tables, every row count matches; "
          f"{len(live_layout)} partitions, every bound matches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
