"""Seed a user with N past trading days lived through the real engine over the simulated market."""

from datetime import timedelta

from django.core.management.base import CommandError

from monitoring.clock import OutsideCalendar
from monitoring.demo import demo_sessions, demo_simulate
from tradeoptions import tenancy
from tradeoptions.ops import OpsCommand, iso_date, user_named
from trades.models import PaperTrade


class Command(OpsCommand):
    help = (
        "Drive the real monitor (scanner-like opens, snapshots, paper matching, order sync, bookends, expiries) "
        "over the simulated market through N past trading days for one user, at the local paper broker. For "
        "demos and load: the same --seed gives the same history. Shows the sessions it would live through "
        "unless --apply."
    )
    writes = True
    expected_errors = (OutsideCalendar,)

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=5, help="Trading sessions to live through (default 5).")
        parser.add_argument("--user", default="demo", help="The trader (default: demo).")
        parser.add_argument("--seed", default="demo", help="Drives the scanner's choices; same seed, same history.")
        parser.add_argument("--end", type=iso_date, default=None,
                            help="Last session to live through, YYYY-MM-DD (default: the last one before today).")
        parser.add_argument("--step-minutes", type=int, default=5, help="Simulated minutes between cycles.")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if the user already has trades.")

    def run(self, *args, days, user, seed, end, step_minutes, if_empty, apply=False, **options):
        if days < 1 or step_minutes < 1:
            raise CommandError("--days and --step-minutes must be at least 1.")
        username = user
        try:
            trader = user_named(username)
        except CommandError:
            raise CommandError(f"No user {username!r}: create it first "
                               f"(manage.py create_demo_user --username {username} --apply).") from None
        with tenancy.acting_as(trader.pk):
            has_trades = PaperTrade.objects.filter(owner=trader).exists()
        if if_empty and has_trades:
            self.stdout.write(f"{username} already has trades: nothing simulated.")
            return
        if not apply:
            sessions = demo_sessions(days=days, end=end)
            self.stdout.write(f"Would simulate {sessions[0]} .. {sessions[-1]} ({len(sessions)} sessions) for "
                              f"{username}, every {step_minutes} simulated minutes.")
            self.dry_run_note({"apply": apply})
            return
        report = demo_simulate(user=trader, days=days, seed=seed, end=end, step=timedelta(minutes=step_minutes),
                               progress=self.progress)
        self.stdout.write(
            f"Simulated {report.days[0]} .. {report.days[-1]} for {username}: {report.cycles} cycles, "
            f"{report.opened} trades opened, {report.manual_closes} closed by hand, "
            f"refused by limits {dict(report.refused)}; now {dict(sorted(report.outcomes.items()))}."
        )
