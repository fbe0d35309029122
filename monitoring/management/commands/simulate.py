"""Seed a user with N past trading days lived through the real engine over the simulated market."""

from datetime import date, timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from monitoring.demo import demo_simulate
from tradeoptions import tenancy
from trades.models import PaperTrade


class Command(BaseCommand):
    help = ("Drive the real monitor (scanner-like opens, snapshots, paper matching, order sync, bookends, "
            "expiries) over the simulated market through N past trading days for one user.")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=5)
        parser.add_argument("--user", default="demo")
        parser.add_argument("--seed", default="demo", help="Drives the scanner's choices; same seed, same history.")
        parser.add_argument("--end", type=date.fromisoformat, default=None,
                            help="Last session to live through (default: the last one before today).")
        parser.add_argument("--step-minutes", type=int, default=5, help="Simulated minutes between cycles.")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if the user already has trades.")

    def handle(self, *args, days, user, seed, end, step_minutes, if_empty, **options):
        if days < 1 or step_minutes < 1:
            raise CommandError("--days and --step-minutes must be at least 1.")
        trader = get_user_model().objects.filter(username=user).first()
        if trader is None:
            raise CommandError(f"No user {user!r}: create it first (manage.py create_demo_user --username {user}).")
        with tenancy.acting_as(trader.pk):
            has_trades = PaperTrade.objects.filter(owner=trader).exists()
        if if_empty and has_trades:
            self.stdout.write(f"{user} already has trades: nothing simulated.")
            return
        report = demo_simulate(user=trader, days=days, seed=seed, end=end, step=timedelta(minutes=step_minutes))
        self.stdout.write(
            f"Simulated {report.days[0]} .. {report.days[-1]} for {user}: {report.cycles} cycles, "
            f"{report.opened} trades opened, {report.manual_closes} closed by hand, "
            f"refused by limits {dict(report.refused)}; now {dict(sorted(report.outcomes.items()))}."
        )
