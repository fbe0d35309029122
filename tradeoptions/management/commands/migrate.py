"""`migrate`, run as the schema owner (DATABASE_OWNER_URL) rather than the app role."""

from django.conf import settings
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.test.utils import override_settings

from tradeoptions.db import as_schema_owner

# The tenant key check asks for a migrate (which stores the current key): it must not stop one.
KEY_CHECK = "tradeoptions.E003"


class Command(DjangoMigrate):
    help = DjangoMigrate.help + " Connects as DATABASE_OWNER_URL's role, which owns the schema."

    def handle(self, *args, **options):
        with as_schema_owner(options["database"]):
            return super().handle(*args, **options)

    def check(self, *args, **kwargs):
        with override_settings(SILENCED_SYSTEM_CHECKS=[*settings.SILENCED_SYSTEM_CHECKS, KEY_CHECK]):
            return super().check(*args, **kwargs)
