"""The suite runs as the application's role, and that role cannot sidestep row-level security."""

from django.core.management import call_command


def test_the_app_role_is_neither_superuser_nor_bypassrls(app_cursor):
    app_cursor.execute("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    user, superuser, bypass = app_cursor.fetchone()
    assert user == "tradeoptions_app"
    assert superuser is False
    assert bypass is False


def test_the_app_role_owns_no_tables(app_cursor):
    app_cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user")
    assert app_cursor.fetchone()[0] == 0


def test_the_app_role_cannot_change_the_schema(app_cursor):
    app_cursor.execute("SELECT has_schema_privilege(current_user, 'public', 'CREATE')")
    assert app_cursor.fetchone()[0] is False


def test_system_check_passes_for_the_app_role(db):
    call_command("check", "--database", "default", "--fail-level", "ERROR")
