"""Compare traders' trades and working orders with their brokers', and apply the safe fixes (ops)."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from monitoring.reconcile import reconcile, reconcile_owner_ids
from tradeoptions.ops import OpsCommand, user_named


class Command(OpsCommand):
    help = (
        "Compare each trader's active trades with their broker's orders and positions (local paper, Tradier "
        "sandbox or live, wherever each trade was placed) and list the differences: the broker ahead of a trade "
        "(a fill or cancel not yet applied), a trade holding contracts the broker does not, quantities that "
        "disagree, positions no trade accounts for, a missing SL/TP bracket, orphan and foreign working orders. "
        "Reports only, unless --fix (or --apply): then the fixes the order sync knows are applied (broker truth "
        "becomes the trade's state, orphans of finished trades are cancelled, unprotected trades are marked for "
        "attention) and what remains is listed. Exits with status 1 if an account could not be read."
    )
    writes = True
    apply_flags = ("--fix", "--apply")

    def add_arguments(self, parser):
        parser.add_argument("--user", help="Only this trader (default: every trader with active trades or "
                                           "working orders, or who trades at Tradier).")

    def run(self, *args, user=None, apply=False, **options):
        users = [user_named(user)] if user else list(
            get_user_model().objects.filter(pk__in=reconcile_owner_ids()).order_by("username"))
        unreadable = []
        for trader in self.progress(users, total=len(users), desc="traders"):
            report = reconcile(user=trader, fix=apply)
            name = trader.get_username()
            self.stdout.write(f"{name} ({', '.join(report.modes)}): {len(report.found)} difference(s)")
            for difference in report.found:
                fix = f" -> {difference.fix}" if difference.fix else ""
                self.stdout.write(f"  {difference}{fix if not apply else ''}")
            if apply:
                self.stdout.write(f"  fixed {report.fixed}; {len(report.remaining)} remain")
                for difference in report.remaining:
                    self.stdout.write(f"  still: {difference}")
            unreadable += [f"{name}: {difference.detail}" for difference in report.unreadable]
        if not users:
            self.stdout.write("No trader has active trades, working orders or a Tradier account: nothing to reconcile.")
        self.dry_run_note({"apply": apply})
        if unreadable:
            raise CommandError("Some accounts could not be read: " + "; ".join(unreadable))
