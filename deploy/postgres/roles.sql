-- The database roles of tradeoptions. Run once as a superuser; safe to run again:
--   TRADEOPTIONS_OWNER_PASSWORD=... TRADEOPTIONS_APP_PASSWORD=... TRADEOPTIONS_WORKER_PASSWORD=... \
--   TRADEOPTIONS_BACKUP_PASSWORD=... psql -f deploy/postgres/roles.sql
-- (passwords come from the environment, so they never show in `ps`; unset means no password,
-- for socket-only local servers).
--
-- tradeoptions_owner   owns the schema; migrations run as it (DATABASE_OWNER_URL). CREATEDB lets
--                      the test suite create its throwaway databases; a production server may
--                      revoke it (ALTER ROLE tradeoptions_owner NOCREATEDB) after this script.
-- tradeoptions_app     the web application (DATABASE_URL): not superuser, no BYPASSRLS, owns no
--                      tables, so row-level security applies to every query it makes. Never a
--                      member of tradeoptions_system: it sees one tenant's rows, and only through
--                      a signed tenant context (tradeoptions/tenancy.py), whatever SQL it runs.
-- tradeoptions_worker  Celery workers, beat and ops commands (DATABASE_WORKER_URL): like the app
--                      role, plus membership of tradeoptions_system.
-- tradeoptions_system  NOLOGIN group: the only roles whose `app.system` setting the policies heed
--                      (the monitor cycle, the staff admin, ops commands over every tenant).
-- tradeoptions_backup  BYPASSRLS + pg_read_all_data, for scripts/backup.sh only.
\set ON_ERROR_STOP on
\getenv owner_password TRADEOPTIONS_OWNER_PASSWORD
\getenv app_password TRADEOPTIONS_APP_PASSWORD
\getenv worker_password TRADEOPTIONS_WORKER_PASSWORD
\getenv backup_password TRADEOPTIONS_BACKUP_PASSWORD
\if :{?owner_password} \else \set owner_password '' \endif
\if :{?app_password} \else \set app_password '' \endif
\if :{?worker_password} \else \set worker_password '' \endif
\if :{?backup_password} \else \set backup_password '' \endif

SELECT 'CREATE ROLE tradeoptions_owner LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tradeoptions_owner') \gexec
SELECT 'CREATE ROLE tradeoptions_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tradeoptions_app') \gexec
SELECT 'CREATE ROLE tradeoptions_worker LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tradeoptions_worker') \gexec
SELECT 'CREATE ROLE tradeoptions_system NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tradeoptions_system') \gexec
SELECT 'CREATE ROLE tradeoptions_backup LOGIN NOSUPERUSER BYPASSRLS'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tradeoptions_backup') \gexec

-- Keep attributes right even if a role existed before with others.
ALTER ROLE tradeoptions_owner NOSUPERUSER NOBYPASSRLS CREATEDB;
ALTER ROLE tradeoptions_app NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
ALTER ROLE tradeoptions_worker NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
ALTER ROLE tradeoptions_system NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
ALTER ROLE tradeoptions_backup NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE;
SELECT format('ALTER ROLE tradeoptions_owner PASSWORD %L', NULLIF(:'owner_password', '')) \gexec
SELECT format('ALTER ROLE tradeoptions_app PASSWORD %L', NULLIF(:'app_password', '')) \gexec
SELECT format('ALTER ROLE tradeoptions_worker PASSWORD %L', NULLIF(:'worker_password', '')) \gexec
SELECT format('ALTER ROLE tradeoptions_backup PASSWORD %L', NULLIF(:'backup_password', '')) \gexec
GRANT pg_read_all_data TO tradeoptions_backup;
-- The system context: the worker, and the owner (data migrations that enter it). Never the app:
-- revoked here too, in case an older set-up granted it.
GRANT tradeoptions_system TO tradeoptions_worker, tradeoptions_owner;
SELECT 'REVOKE tradeoptions_system FROM tradeoptions_app'
 WHERE pg_has_role('tradeoptions_app', 'tradeoptions_system', 'member') \gexec

SELECT 'CREATE DATABASE tradeoptions OWNER tradeoptions_owner'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'tradeoptions') \gexec

\connect tradeoptions
ALTER SCHEMA public OWNER TO tradeoptions_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO tradeoptions_app, tradeoptions_worker, tradeoptions_backup;
