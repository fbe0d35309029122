#!/bin/sh
# docker-entrypoint-initdb.d hook: creates the tradeoptions roles and database on first start.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$TRADEOPTIONS_OWNER_PASSWORD" \
  -v app_password="$TRADEOPTIONS_APP_PASSWORD" \
  -v backup_password="$TRADEOPTIONS_BACKUP_PASSWORD" \
  -f /docker-entrypoint-initdb.d/roles.sql.in
