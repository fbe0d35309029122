"""System checks that catch a deployment in which row-level security would silently not apply."""

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
