"""The suite runs as the worker role; neither it nor the web role can sidestep row-level security,
and only the worker role may enter the system context."""

import pytest
from django.conf import settings
from django.core.management import call_command

from tradeoptions import tenancy


@pytest.mark.parametrize("role", [settings.DATABASE_APP_ROLE, settings.DATABASE_WORKER_ROLE])
def test_neither_runtime_role_is_superuser_nor_bypassrls_nor_owns_tables(connect_as, role):
    with connect_as(role, autocommit=True) as raw:
        user, superuser, bypass = raw.execute(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
        assert (user, superuser, bypass) == (role, False, False)
        owned = raw.execute("SELECT count(*) FROM pg_tables WHERE tableowner = current_user").fetchone()[0]
        assert owned == 0
        assert raw.execute("SELECT has_schema_privilege(current_user, 'public', 'CREATE')").fetchone()[0] is False


def test_the_suite_runs_as_the_worker_role(app_cursor):
    app_cursor.execute("SELECT current_user")
    assert app_cursor.fetchone()[0] == settings.DATABASE_WORKER_ROLE == "tradeoptions_worker"


def test_only_the_worker_role_is_in_the_system_group(connect_as):
    with connect_as(settings.DATABASE_APP_ROLE, autocommit=True) as raw:
        members = raw.execute(
            "SELECT pg_has_role(%s, 'tradeoptions_system', 'member'), pg_has_role(%s, 'tradeoptions_system', 'member')",
            [settings.DATABASE_APP_ROLE, settings.DATABASE_WORKER_ROLE]).fetchone()
    assert members == (False, True)


@pytest.mark.django_db(transaction=True)
def test_the_system_context_refuses_a_role_outside_the_system_group(web_role):
    """Misconfiguration (a worker on DATABASE_URL) is an error, never a silent "no rows"."""
    with pytest.raises(tenancy.SystemContextRefused, match="DATABASE_WORKER_URL"):
        with tenancy.system_context():
            pass


def test_system_check_passes_for_the_worker_role(db):
    call_command("check", "--database", "default", "--fail-level", "ERROR")


def test_a_tenant_key_the_database_does_not_share_fails_the_system_check(db, settings):
    """Another key would not leak a row, but every user would see none: the check says so."""
    from tradeoptions.checks import tenant_context_key_matches

    assert tenant_context_key_matches(None, databases=["default"]) == []
    settings.TENANT_CONTEXT_KEY = "not-the-key-migrate-stored"
    assert [error.id for error in tenant_context_key_matches(None, databases=["default"])] == ["tradeoptions.E003"]


def test_the_key_and_its_checker_are_out_of_every_runtime_role_s_reach(connect_as):
    """The pads live in a schema neither runtime role may use; app_user_id() reads them as its
    owner, the schema owner, with a search_path no caller can change."""
    with connect_as(settings.DATABASE_WORKER_ROLE, autocommit=True) as raw:
        for role in (settings.DATABASE_APP_ROLE, settings.DATABASE_WORKER_ROLE):
            usage, select = raw.execute(
                "SELECT has_schema_privilege(%s, n.oid, 'USAGE'), has_table_privilege(%s, c.oid, 'SELECT') "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'tenancy_private' AND c.relname = 'hmac_key'", [role, role]).fetchone()
            assert (usage, select) == (False, False)
        owner, definer, config = raw.execute(
            "SELECT pg_get_userbyid(proowner), prosecdef, proconfig FROM pg_proc "
            "WHERE oid = 'public.app_user_id()'::regprocedure").fetchone()
        assert owner == settings.DATABASE_OWNER["USER"] and definer is True
        assert config == ["search_path=pg_catalog, pg_temp"]


@pytest.mark.parametrize("key", [b"short", b"k" * 64, b"a key longer than one SHA-256 block: " * 3])
def test_the_pads_the_database_gets_make_the_same_hmac_as_python(key):
    """app_user_id() computes sha256(outer || sha256(inner || message)) from the stored pads."""
    import hashlib
    import hmac

    inner, outer = tenancy.context_key_pads(key)
    message = b"42:4242:1796000000000000"
    by_pads = hashlib.sha256(outer + hashlib.sha256(inner + message).digest()).digest()
    assert len(inner) == len(outer) == 64
    assert by_pads == hmac.new(key, message, hashlib.sha256).digest()


@pytest.mark.django_db(transaction=True)
def test_migrate_stores_a_changed_tenant_key_though_the_key_check_fails_until_it_does(settings):
    """The remedy E003 names must not be stopped by E003 (migrate runs the system checks first)."""
    from tradeoptions.checks import tenant_context_key_matches

    original = settings.TENANT_CONTEXT_KEY
    settings.TENANT_CONTEXT_KEY = "a-rotated-tenant-context-key"
    try:
        assert [error.id for error in tenant_context_key_matches(None, databases=["default"])] == ["tradeoptions.E003"]
        call_command("migrate", "--noinput", skip_checks=False, verbosity=0)
        assert tenant_context_key_matches(None, databases=["default"]) == []
    finally:
        settings.TENANT_CONTEXT_KEY = original
        call_command("migrate", "--noinput", verbosity=0)  # the suite's key again, for every later test
    assert tenant_context_key_matches(None, databases=["default"]) == []
