"""Re-encrypt stored broker tokens, webhook signing secrets, notification channel URLs and Web Push
subscriptions after a new key was put first in ENCRYPTION_KEYS."""

from brokers.crypto import VaultError
from tradeoptions.ops import OpsCommand, written_only_if
from trades.services import encrypted_secrets_rotate


class Command(OpsCommand):
    help = (
        "Re-encrypt every stored broker token, webhook signing secret, notification channel URL and Web Push "
        "subscription with the "
        "first key of ENCRYPTION_KEYS. Put the new key first, keep the old ones after it, run this with --apply, "
        "then remove the old keys. Without --apply it decrypts and re-encrypts every secret in a transaction it "
        "rolls back: a check that every secret can be read with the configured keys. Safe to re-run."
    )
    writes = True
    expected_errors = (VaultError,)

    def run(self, *args, apply=False, **options):
        with written_only_if(apply):
            count = encrypted_secrets_rotate()
        if apply:
            self.stdout.write(f"Rotated {count} secret(s) to the current key.")
        else:
            self.stdout.write(f"Would rotate {count} secret(s) to the current key (all of them readable).")
            self.dry_run_note({"apply": apply})
