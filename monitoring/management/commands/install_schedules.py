"""Write monitoring.schedules.JOBS into django-celery-beat's tables; safe to run any number of times."""

from django.db import DatabaseError

from monitoring.services import schedules_install
from tradeoptions.ops import OpsCommand, written_only_if


class Command(OpsCommand):
    help = (
        "Install or update the periodic jobs listed in monitoring/schedules.py in Celery beat's tables "
        "(django-celery-beat): creates missing ones, updates changed ones, switches off those disabled by their "
        "SCHEDULE_<NAME>=false setting and retires jobs no longer listed. Idempotent. Shows what it would do "
        "unless --apply."
    )
    writes = True
    expected_errors = (DatabaseError,)

    def run(self, *args, apply=False, **options):
        with written_only_if(apply):
            done = schedules_install()
        for line in done:
            self.stdout.write(line if apply else f"would have {line}")
        self.dry_run_note({"apply": apply})
