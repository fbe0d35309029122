"""The signed tenant context's database half: the key's home and app_user_id().

app_user_id() returns `app.user_id` only when `app.user_sig` is HMAC-SHA256(key, "<user id>:<backend
pid>:<transaction start in microseconds>"), else NULL; each app's policies compare owner_id with
it. HMAC is built from sha256() and the key's two precomputed pads (pgcrypto is not available
everywhere): sha256(outer_pad || sha256(inner_pad || message)). The pads live in a schema that only
the schema owner can reach; `migrate` writes them (tradeoptions.db.store_tenant_context_key).

The function is SECURITY DEFINER (to read the key) with a fixed search_path, so no caller can
shadow what it calls; a malformed setting gives NULL, never an error.
"""

from django.db import migrations


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.RunSQL(
            sql="""
                DO $$
                BEGIN
                    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tradeoptions_system') THEN
                        RAISE EXCEPTION 'The database role tradeoptions_system does not exist.'
                            USING HINT = 'Run deploy/postgres/roles.sql as a superuser (it is safe to run '
                                         'again), then migrate again.';
                    END IF;
                END $$;
            """,
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            sql="""
                CREATE SCHEMA tenancy_private;
                REVOKE ALL ON SCHEMA tenancy_private FROM PUBLIC;
                CREATE TABLE tenancy_private.hmac_key (
                    id smallint PRIMARY KEY CHECK (id = 1),
                    inner_pad bytea NOT NULL CHECK (length(inner_pad) = 64),
                    outer_pad bytea NOT NULL CHECK (length(outer_pad) = 64)
                );
                REVOKE ALL ON tenancy_private.hmac_key FROM PUBLIC;

                CREATE FUNCTION public.app_user_id() RETURNS bigint
                    LANGUAGE plpgsql STABLE SECURITY DEFINER
                    SET search_path = pg_catalog, pg_temp
                AS $function$
                DECLARE
                    claimed text := current_setting('app.user_id', true);
                    signature text := current_setting('app.user_sig', true);
                    pads record;
                    message bytea;
                BEGIN
                    IF claimed IS NULL OR claimed !~ '^[1-9][0-9]{0,17}$'
                       OR signature IS NULL OR signature !~ '^[0-9a-f]{64}$' THEN
                        RETURN NULL;
                    END IF;
                    SELECT inner_pad, outer_pad INTO pads FROM tenancy_private.hmac_key WHERE id = 1;
                    IF NOT FOUND THEN
                        RETURN NULL;
                    END IF;
                    message := convert_to(
                        claimed || ':' || pg_backend_pid()::text || ':'
                        || ((extract(epoch FROM now()) * 1000000)::bigint)::text,
                        'UTF8');
                    IF sha256(pads.outer_pad || sha256(pads.inner_pad || message)) = decode(signature, 'hex') THEN
                        RETURN claimed::bigint;
                    END IF;
                    RETURN NULL;
                END
                $function$;
                COMMENT ON FUNCTION public.app_user_id() IS
                    'The tenant whose rows this transaction may see: app.user_id, if app.user_sig signs it '
                    'for this backend and transaction (tradeoptions/tenancy.py); else NULL.';
            """,
            reverse_sql="""
                DROP FUNCTION IF EXISTS public.app_user_id();
                DROP SCHEMA IF EXISTS tenancy_private CASCADE;
            """,
        ),
    ]
