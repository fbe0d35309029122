"""Write one user's learning data set (docs/dataset.md) as CSV or Parquet, to a file or stdout."""

from pathlib import Path

from django.core.management.base import CommandError

from analytics import parquet, selectors
from analytics.api import DATASET_FORMATS, dataset_csv_lines
from tradeoptions import tenancy
from tradeoptions.ops import OpsCommand, iso_date, user_named
from trades.models import StrategyType


class Command(OpsCommand):
    help = (
        "Export one user's closed trades as the learning data set (docs/dataset.md), as CSV (to a file or "
        "stdout) or Parquet (to a file), optionally only trades closed --from .. --to (New York dates) or of "
        "one --strategy. Reads only; writes nothing to the database."
    )
    expected_errors = (OSError,)

    def add_arguments(self, parser):
        parser.add_argument("username", help="Whose trades.")
        parser.add_argument("--output", "-o", help="File to write (default: stdout; Parquet needs a file).")
        parser.add_argument("--format", dest="file_format", choices=DATASET_FORMATS, default="csv",
                            help="csv (default) or parquet.")
        parser.add_argument("--from", dest="closed_from", type=iso_date, help="First close date, YYYY-MM-DD.")
        parser.add_argument("--to", dest="closed_to", type=iso_date, help="Last close date, YYYY-MM-DD.")
        parser.add_argument("--strategy", help="Only this strategy's trades.")
        parser.add_argument("--strategy-type", dest="strategy_type", choices=StrategyType.values,
                            help="Only trades whose legs make this (single, vertical, iron_condor, ...).")

    def run(self, *args, username, output=None, file_format="csv", closed_from=None, closed_to=None,
            strategy=None, strategy_type=None, **options):
        if file_format == "parquet" and not output:
            raise CommandError("Parquet is a binary file: name it with --output.")
        user = user_named(username)
        filters = selectors.AnalyticsFilters(closed_from=closed_from, closed_to=closed_to, strategy=strategy,
                                             strategy_type=strategy_type)
        # Acts as that one user: their rows only, exactly what the API would give them.
        with tenancy.acting_as(user.pk):
            rows = list(selectors.dataset_rows(user=user, filters=filters))
        if file_format == "parquet":
            Path(output).write_bytes(parquet.dataset_parquet(rows))
        elif not output:
            for line in dataset_csv_lines(iter(rows)):
                self.stdout.write(line, ending="")
            return
        else:
            with open(output, "w", newline="", encoding="utf-8") as target:
                target.writelines(dataset_csv_lines(iter(rows)))
        self.stderr.write(f"{len(rows)} trade(s) written to {output}.")
