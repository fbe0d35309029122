"""Re-encrypt stored broker tokens after a new key was put first in ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand, CommandError

from brokers.crypto import VaultError
from trades.services import broker_tokens_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored broker token with the first key of ENCRYPTION_KEYS. Put the new key first, "
        "keep the old ones after it, run this, then remove the old keys. Safe to re-run."
    )

    def handle(self, *args, **options):
        try:
            count = broker_tokens_rotate()
        except VaultError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Rotated {count} broker token(s) to the current key.")
