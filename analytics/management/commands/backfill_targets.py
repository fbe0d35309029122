"""Compute the forensic targets of every trade closed in a range of New York dates (ops)."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from analytics import services
from monitoring import clock


class Command(BaseCommand):
    help = "Compute forensic targets (P&L at 15 min / 1 h, MFE/MAE, first touch) of closed trades."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="closed_from", type=date.fromisoformat,
                            help="First New York close date (default: 2020-01-01).")
        parser.add_argument("--to", dest="closed_to", type=date.fromisoformat,
                            help="Last New York close date (default: today in New York).")

    def handle(self, *args, closed_from=None, closed_to=None, **options):
        closed_from = closed_from or date(2020, 1, 1)
        closed_to = closed_to or clock.market_date(clock.now())
        if closed_from > closed_to:
            raise CommandError("--from is after --to.")
        done = services.trade_targets_compute(closed_from=closed_from, closed_to=closed_to)
        self.stdout.write(f"Computed targets of {done} trade(s) closed {closed_from} .. {closed_to}.")
