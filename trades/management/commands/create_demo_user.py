"""Creates (once) the demo trader of a local run and prints how to log in."""

import os

from django.core.management.base import BaseCommand

from trades.services import user_create


class Command(BaseCommand):
    help = "Create the demo user 'demo' (password from DEMO_PASSWORD) if missing, and print the login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")

    def handle(self, *args, username, **options):
        password = os.environ.get("DEMO_PASSWORD") or "demo-password"
        user, created = user_create(username=username, password=password, only_if_missing=True)
        state = "created" if created else "exists"
        port = os.environ.get("WEB_PORT", "8000")
        self.stdout.write(f"Demo user {state}: log in at http://127.0.0.1:{port}/ as {user.username} / {password}")
