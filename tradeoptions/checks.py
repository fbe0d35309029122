"""System checks that catch a deployment in which row-level security would silently not apply
(or would silently hide every row), or one whose sign-in lockout would key every client on its proxy's
address."""

from django.core.checks import Error, Tags, register
from django.db import connections


@register(Tags.database)
def app_role_is_subject_to_rls(app_configs, databases=None, **kwargs):
    if not databases or "default" not in databases:
        return []
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        superuser, bypass = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user")
        owned = cursor.fetchone()[0]
    problems = []
    if superuser or bypass:
        problems.append(
            Error(
                "DATABASE_URL connects as a superuser or BYPASSRLS role: row-level security would not apply.",
                hint="Connect as the tradeoptions_app role; see deploy/postgres/roles.sql.",
                id="tradeoptions.E001",
            )
        )
    if owned:
        problems.append(
            Error(
                f"DATABASE_URL's role owns {owned} tables; the app role must own none.",
                hint="Run migrations through DATABASE_OWNER_URL (the schema owner role).",
                id="tradeoptions.E002",
            )
        )
    return problems


@register(Tags.database)
def tenant_context_key_matches(app_configs, databases=None, **kwargs):
    """A key that differs from the database's would not leak a row: every tenant would see none."""
    if not databases or "default" not in databases:
        return []
    from django.db import transaction

    from . import tenancy

    connection = connections["default"]
    with transaction.atomic(using="default"), connection.cursor() as cursor:
        cursor.execute("SELECT to_regprocedure('public.app_user_id()') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return []  # not migrated yet: `migrate` creates the function and stores the key
        with tenancy.acting_as(1):
            cursor.execute("SELECT app_user_id()")
            checked = cursor.fetchone()[0]
        transaction.set_rollback(True)
    if checked == 1:
        return []
    return [
        Error(
            "The database cannot check this process's tenant context signatures: every user would see no rows.",
            hint="TENANT_CONTEXT_KEY (or SECRET_KEY, from which it is derived) changed since the last migrate: "
                 "run `manage.py migrate` to store the current key.",
            id="tradeoptions.E003",
        )
    ]


@register(Tags.security, deploy=True)
def worker_role_is_set_apart(app_configs, **kwargs):
    """Production gives the system context to the worker processes' role only (docs/operations.md)."""
    from django.conf import settings

    if not settings.DATABASE_WORKER_URL_SET or settings.DATABASE_WORKER_ROLE == settings.DATABASE_APP_ROLE:
        return [
            Error(
                "DATABASE_WORKER_URL is not set, or connects as DATABASE_URL's role: Celery workers, beat and ops "
                "commands need their own role, the only one allowed the system context.",
                hint="Set DATABASE_WORKER_URL to the tradeoptions_worker role (deploy/postgres/roles.sql).",
                id="tradeoptions.E004",
            )
        ]
    where = ("HOST", "PORT", "NAME")
    if [settings.DATABASE_WORKER.get(key) for key in where] != [settings.DATABASE_APP.get(key) for key in where]:
        return [
            Error(
                "DATABASE_WORKER_URL names another database (host, port or name) than DATABASE_URL: the workers "
                "would not see the web's rows.",
                id="tradeoptions.E005",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def client_address_behind_the_proxy(app_configs, **kwargs):
    """Production settings trust the proxy's `X-Forwarded-Proto` (`SECURE_PROXY_SSL_HEADER`), so the app
    stands behind one; with `TRUSTED_PROXY_COUNT = 0` every client would have the proxy's address, and
    `AXES_FAILURE_LIMIT` wrong guesses from anyone would lock a username for everybody
    (tradeoptions/lockout.py, docs/operations.md "Client addresses behind proxies")."""
    from django.conf import settings

    if settings.SECURE_PROXY_SSL_HEADER and settings.TRUSTED_PROXY_COUNT <= 0:
        return [
            Error(
                "SECURE_PROXY_SSL_HEADER is set (the app runs behind a proxy) but TRUSTED_PROXY_COUNT is 0: every "
                "client would have the proxy's address, so a few wrong passwords from anyone would lock a "
                "username for everybody, and all clients would share one API throttle budget.",
                hint="Set TRUSTED_PROXY_COUNT to the number of proxies that append to X-Forwarded-For: 1 for one "
                     "reverse proxy or load balancer, 2 for a CDN in front of a load balancer "
                     "(docs/operations.md, \"Client addresses behind proxies\").",
                id="tradeoptions.E006",
            )
        ]
    return []
