#!/usr/bin/env bash
# Back up the tradeoptions database with pg_dump as the backup role.
#
# The backup role has BYPASSRLS and pg_read_all_data: row-level security would otherwise hide
# every tenant's rows from pg_dump (it has no tenant context), and the dump would be silently
# empty. Nothing else uses this role.
#
#   BACKUP_DATABASE_URL=postgres://tradeoptions_backup:PASSWORD@host:5432/tradeoptions scripts/backup.sh [DIR]
#
# Writes DIR/tradeoptions-YYYYMMDDTHHMMSSZ.dump (custom format, compressed), keeps the newest
# $KEEP dumps (default 14). PG_DUMP names another pg_dump binary (it must be at least as new as
# the server; `make backup` passes the embedded server's own). Restore: pg_restore --dbname=... --role=tradeoptions_owner FILE
set -euo pipefail
: "${BACKUP_DATABASE_URL:?set BACKUP_DATABASE_URL to the URL of the tradeoptions_backup role}"
dir=${1:-./backups}
keep=${KEEP:-14}
mkdir -p "$dir"
file="$dir/tradeoptions-$(date -u +%Y%m%dT%H%M%SZ).dump"
"${PG_DUMP:-pg_dump}" --format=custom --no-owner --no-privileges \
  --dbname="$BACKUP_DATABASE_URL" --file="$file.partial"
mv "$file.partial" "$file"
echo "backup written: $file ($(du -h "$file" | cut -f1))"
ls -1t "$dir"/tradeoptions-*.dump | tail -n +$((keep + 1)) | xargs -r rm --
