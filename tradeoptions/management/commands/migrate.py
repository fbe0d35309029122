"""`migrate`, run as the schema owner (DATABASE_OWNER_URL) rather than the app role."""

from django.core.management.commands.migrate import Command as DjangoMigrate

from tradeoptions.db import as_schema_owner


class Command(DjangoMigrate):
    help = DjangoMigrate.help + " Connects as DATABASE_OWNER_URL's role, which owns the schema."

    def handle(self, *args, **options):
        with as_schema_owner(options["database"]):
            return super().handle(*args, **options)
