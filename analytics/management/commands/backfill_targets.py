"""Compute the forensic targets of every trade closed in a range of New York dates (ops)."""

from datetime import date

from django.core.management.base import CommandError

from analytics import services
from monitoring import clock
from tradeoptions.ops import OpsCommand, iso_date, user_named, written_only_if


class Command(OpsCommand):
    help = (
        "Compute the forensic targets of closed trades (P&L 15 min and 1 h after entry, MFE/MAE, which exit was "
        "touched first) from their recorded marks, for trades closed on New York dates --from .. --to "
        "(optionally of one --user). The nightly job does this for each session; run it after "
        "backfill_snapshots or to catch up. Idempotent. Computes and reports unless --apply, which stores them."
    )
    writes = True

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="closed_from", type=iso_date,
                            help="First New York close date, YYYY-MM-DD (default: 2020-01-01).")
        parser.add_argument("--to", dest="closed_to", type=iso_date,
                            help="Last New York close date, YYYY-MM-DD (default: today in New York).")
        parser.add_argument("--user", help="Only this user's trades.")

    def run(self, *args, closed_from=None, closed_to=None, user=None, apply=False, **options):
        closed_from = closed_from or date(2020, 1, 1)
        closed_to = closed_to or clock.market_date(clock.now())
        if closed_from > closed_to:
            raise CommandError(f"--from {closed_from} is after --to {closed_to}.")
        owner = user_named(user) if user else None
        with written_only_if(apply):
            done = services.trade_targets_compute(closed_from=closed_from, closed_to=closed_to,
                                                  owner_id=owner.pk if owner else None, progress=self.progress)
        verb = "Computed" if apply else "Would store the computed"
        self.stdout.write(f"{verb} targets of {done} trade(s) closed {closed_from} .. {closed_to}.")
        self.dry_run_note({"apply": apply})
