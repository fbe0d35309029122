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
#
# After a restore, run `manage.py migrate`: it re-grants the app role its privileges (the dump
# carries none, by design: roles differ between servers).
#
#   scripts/backup.sh --help       this text
#   scripts/backup.sh --dry-run    says which file it would write and which old dumps it would
#                                  delete, and does neither (pg_dump is not run)
set -euo pipefail
dry_run=false
case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  --dry-run) dry_run=true; shift ;;
esac
: "${BACKUP_DATABASE_URL:?set BACKUP_DATABASE_URL to the URL of the tradeoptions_backup role (see --help)}"
umask 077  # the dump holds every tenant's data: readable by its owner only
dir=${1:-./backups}
keep=${KEEP:-14}
file="$dir/tradeoptions-$(date -u +%Y%m%dT%H%M%SZ).dump"
if $dry_run; then
  echo "dry run: would write $file, then keep the newest $keep dumps in $dir"
  if [ -d "$dir" ]; then
    ls -1t "$dir"/tradeoptions-*.dump 2>/dev/null | tail -n +$((keep)) | sed 's/^/dry run: would delete /'
  fi
  exit 0
fi
mkdir -p "$dir"
trap 'rm -f "$file.partial"; echo "backup failed: no dump written" >&2' ERR
# Keep the password out of `ps`: libpq gets it from PGPASSWORD, the command line a URL without it.
{ read -r url; read -r PGPASSWORD; } < <(python3 -c '
import os, urllib.parse as parse
parts = parse.urlsplit(os.environ["BACKUP_DATABASE_URL"])
host = parts.netloc.rsplit("@", 1)[-1]
user = parse.quote(parse.unquote(parts.username or ""), safe="")
print(parts._replace(netloc=f"{user}@{host}" if user else host).geturl())
print(parse.unquote(parts.password or ""))')
export PGPASSWORD
"${PG_DUMP:-pg_dump}" --format=custom --no-owner --no-privileges --dbname="$url" --file="$file.partial"
mv "$file.partial" "$file"
echo "backup written: $file ($(du -h "$file" | cut -f1))"
ls -1t "$dir"/tradeoptions-*.dump | tail -n +$((keep + 1)) | xargs -r rm --
