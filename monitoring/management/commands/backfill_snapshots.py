"""Fill gaps in trades' mark snapshots from the market-data source's bars (ops repair)."""

from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from monitoring import clock
from monitoring.backfill import INTERVALS, BackfillError, backfill_trades, new_york_midnight, snapshot_gaps_backfill
from monitoring.marketdata import MarketDataError, UnsupportedRequest, provider_for
from tradeoptions.ops import OpsCommand, iso_date, user_named


class Command(OpsCommand):
    help = (
        "Fill gaps in trades' mark history (price snapshots) from the market-data source's bar history of the "
        "option contract: each bar whose span has no snapshot becomes one, marked at the bar's close. Give one "
        "trade (--trade ID) or a range of New York dates (--from, --to), optionally for one --user. Shows the "
        "gaps it found; writes them only with --apply. Safe to re-run. Sources without option bars (the "
        "simulated market, ORATS) are reported as such. Run backfill_targets afterwards to recompute targets."
    )
    writes = True
    expected_errors = (BackfillError, MarketDataError, ImproperlyConfigured)

    def add_arguments(self, parser):
        parser.add_argument("--trade", type=int, help="One trade's id (its whole holding period, or within the dates).")
        parser.add_argument("--from", dest="first", type=iso_date, help="First New York date (YYYY-MM-DD).")
        parser.add_argument("--to", dest="last", type=iso_date,
                            help="Last New York date, included (default: today in New York).")
        parser.add_argument("--user", help="Only this user's trades.")
        parser.add_argument("--interval", choices=[i.value for i in INTERVALS], default="1min",
                            help="Bar length to ask the source for (default 1min).")
        parser.add_argument("--source", help="Market-data source (default: MARKET_DATA_SOURCE).")

    def run(self, *args, trade=None, first=None, last=None, user=None, interval="1min", source=None, apply=False,
            **options):
        if trade is None and first is None:
            raise CommandError("Say which trades: --trade ID, or --from DATE (and --to DATE).")
        now = clock.now()
        if first and last and last < first:
            raise CommandError(f"--to {last} is before --from {first}.")
        start = new_york_midnight(first) if first else None
        end = new_york_midnight(last + timedelta(days=1)) if last else None
        if trade is None and end is None:
            end = new_york_midnight(clock.market_date(now) + timedelta(days=1))
        owner = user_named(user) if user else None
        trades = backfill_trades(trade_id=trade, user=owner, start=start, end=end)
        provider = provider_for(source)
        try:
            report = snapshot_gaps_backfill(provider=provider, trades=trades, now=now, start=start, end=end,
                                            interval=interval, apply=apply, progress=self.progress)
        except UnsupportedRequest as error:
            raise CommandError(f"The {provider.source} source has no bar history of option contracts, so no "
                               f"gaps can be filled from it: {error}") from None
        for done in report.trades:
            if done.gaps:
                self.stdout.write(f"trade {done.trade_id} {done.option_symbol}: {done.gaps} gap(s) of {interval} "
                                  f"from {done.first_gap:%Y-%m-%d %H:%M} to {done.last_gap:%Y-%m-%d %H:%M} UTC, "
                                  + (f"{done.written} written." if apply else "not written (dry run)."))
        self.stdout.write(
            f"{len(report.trades)} trade(s) looked at, {report.gaps} gap(s) found, "
            + (f"{report.written} snapshot(s) written." if apply else "none written.")
        )
        self.dry_run_note({"apply": apply})
