"""Write monitoring.schedules.JOBS into django-celery-beat's tables; safe to run any number of times."""

from django.core.management.base import BaseCommand

from monitoring.services import schedules_install


class Command(BaseCommand):
    help = "Install or update the periodic jobs (monitoring/schedules.py) for Celery beat. Idempotent."

    def handle(self, *args, **options):
        for line in schedules_install():
            self.stdout.write(line)
