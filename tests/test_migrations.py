"""The schema in migrations matches the models, and the RLS migrations can be reversed."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection


def _rls_state(table):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relrowsecurity, relforcerowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) "
            "FROM pg_class c WHERE relname = %s",
            [table],
        )
        return cursor.fetchone()


def test_models_and_migrations_agree(db):
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_row_level_security_migrations_reverse_and_reapply():
    call_command("migrate", "monitoring", "0001", stdout=StringIO())
    assert _rls_state("monitoring_pricesnapshot") == (False, False, 0)
    call_command("migrate", stdout=StringIO())
    assert _rls_state("monitoring_pricesnapshot") == (True, True, 2)
