"""Creates (once) the demo trader of a local run and prints how to log in."""

import os

from tradeoptions.ops import OpsCommand, written_only_if
from trades.services import user_create


class Command(OpsCommand):
    help = (
        "Create the demo trader (default username 'demo', password from DEMO_PASSWORD, else 'demo-password') "
        "with default account settings if it does not exist yet, and print how to log in. Safe to re-run. "
        "Shows what it would do unless --apply."
    )
    writes = True

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo", help="Username of the demo trader (default: demo).")

    def run(self, *args, username, apply=False, **options):
        password = os.environ.get("DEMO_PASSWORD") or "demo-password"
        with written_only_if(apply):
            user, created = user_create(username=username, password=password, only_if_missing=True)
        if not apply:
            state = "would be created" if created else "exists"
            self.stdout.write(f"Demo user {username} {state}.")
            self.dry_run_note({"apply": apply})
            return
        state = "created" if created else "exists"
        port = os.environ.get("WEB_PORT", "8000")
        self.stdout.write(f"Demo user {state}: log in at http://127.0.0.1:{port}/ as {user.username} / {password}")
