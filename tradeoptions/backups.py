"""The nightly backup as a job: is tonight's taken yet, and if not, take it.

The dump itself stays scripts/backup.sh (pg_dump as tradeoptions_backup, custom format, keeps the
newest KEEP), the one way a backup is made by hand, by `make backup` and by this job alike. The
job runs on the worker (beat sends it every few minutes), which `make run` and docker compose both
start, so a development machine backs itself up like production does.

A night's backup is due once its New York hour (BACKUP_HOUR) has passed and the backup directory
holds no dump taken since; the dumps' names carry their UTC time, so the directory is the whole
record, and a night missed while the worker was down is made up at its next run.
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings

SCRIPT = Path(settings.BASE_DIR) / "scripts" / "backup.sh"
_DUMP = re.compile(r"^tradeoptions-(\d{8}T\d{6}Z)\.dump$")
_WRITTEN = re.compile(r"^backup written: (.+) \(", re.MULTILINE)


class BackupFailed(Exception):
    """backup.sh exited non-zero: no dump was written (its partial file is removed)."""


def backups_taken(directory: Path) -> list[datetime]:
    """When each dump in `directory` was taken (UTC, from its name), oldest first."""
    if not directory.is_dir():
        return []
    return sorted(datetime.strptime(m[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                  for m in (_DUMP.match(path.name) for path in directory.iterdir()) if m)


def backup_due(*, at: datetime, directory: Path, hour: int) -> bool:
    """Is the latest night's backup (the most recent BACKUP_HOUR, New York) still to be taken?"""
    new_york = ZoneInfo(settings.MARKET_TIME_ZONE)
    local = at.astimezone(new_york)
    night = local.date() if local.hour >= hour else local.date() - timedelta(days=1)
    since = datetime.combine(night, time(hour), tzinfo=new_york)
    taken = backups_taken(directory)
    return not taken or taken[-1] < since


def backup_take(*, directory: Path, keep: int, database_url: str, timeout: float) -> Path:
    """Run scripts/backup.sh into `directory`, keeping the newest `keep` dumps; the dump's path."""
    environment = {**os.environ, "BACKUP_DATABASE_URL": database_url, "KEEP": str(keep)}
    result = subprocess.run(["bash", str(SCRIPT), str(directory)], capture_output=True, text=True,
                            env=environment, timeout=timeout, check=False)
    if result.returncode != 0:
        raise BackupFailed(result.stderr.strip()[-500:] or f"backup.sh exited {result.returncode}")
    written = _WRITTEN.search(result.stdout)
    return Path(written[1]) if written else directory
