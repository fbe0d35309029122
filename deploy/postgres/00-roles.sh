#!/bin/sh
# docker-entrypoint-initdb.d hook: creates the tradeoptions roles and database on first start.
# roles.sql reads the TRADEOPTIONS_*_PASSWORD variables from the environment (never from argv).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -f /docker-entrypoint-initdb.d/roles.sql.in
