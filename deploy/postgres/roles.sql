-- The database roles of tradeoptions. Run once as a superuser; safe to run again:
--   psql -v owner_password=... -v app_password=... -v backup_password=... -f deploy/postgres/roles.sql
--
-- tradeoptions_owner   owns the schema; migrations run as it (DATABASE_OWNER_URL).
-- tradeoptions_app     the application (DATABASE_URL): not superuser, no BYPASSRLS, owns no
--                      tables, so row-level security applies to every query it makes.
-- tradeoptions_backup  BYPASSRLS + pg_read_all_data, for scripts/backup.sh only.
\set ON_ERROR_STOP on

SELECT 'CREATE ROLE tradeoptions_owner LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tradeoptions_owner') \gexec
SELECT 'CREATE ROLE tradeoptions_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tradeoptions_app') \gexec
SELECT 'CREATE ROLE tradeoptions_backup LOGIN NOSUPERUSER BYPASSRLS'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tradeoptions_backup') \gexec

-- Keep attributes right even if a role existed before with others.
ALTER ROLE tradeoptions_owner NOSUPERUSER NOBYPASSRLS CREATEDB;
ALTER ROLE tradeoptions_app NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
SELECT format('ALTER ROLE tradeoptions_owner PASSWORD %L', NULLIF(:'owner_password', '')) \gexec
SELECT format('ALTER ROLE tradeoptions_app PASSWORD %L', NULLIF(:'app_password', '')) \gexec
SELECT format('ALTER ROLE tradeoptions_backup PASSWORD %L', NULLIF(:'backup_password', '')) \gexec
GRANT pg_read_all_data TO tradeoptions_backup;

SELECT 'CREATE DATABASE tradeoptions OWNER tradeoptions_owner'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'tradeoptions') \gexec

\connect tradeoptions
ALTER SCHEMA public OWNER TO tradeoptions_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO tradeoptions_app, tradeoptions_backup;
