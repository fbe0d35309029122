"""Write one user's learning data set (docs/dataset.md) as CSV, to a file or stdout."""

from analytics import selectors
from analytics.api import dataset_csv_lines
from tradeoptions import tenancy
from tradeoptions.ops import OpsCommand, iso_date, user_named


class Command(OpsCommand):
    help = (
        "Export one user's closed trades as the learning data set (docs/dataset.md), as CSV to a file or "
        "stdout, optionally only trades closed --from .. --to (New York dates) or of one --strategy. Reads only; "
        "writes nothing to the database."
    )
    expected_errors = (OSError,)

    def add_arguments(self, parser):
        parser.add_argument("username", help="Whose trades.")
        parser.add_argument("--output", "-o", help="File to write (default: stdout).")
        parser.add_argument("--from", dest="closed_from", type=iso_date, help="First close date, YYYY-MM-DD.")
        parser.add_argument("--to", dest="closed_to", type=iso_date, help="Last close date, YYYY-MM-DD.")
        parser.add_argument("--strategy", help="Only this strategy's trades.")

    def run(self, *args, username, output=None, closed_from=None, closed_to=None, strategy=None, **options):
        user = user_named(username)
        filters = selectors.AnalyticsFilters(closed_from=closed_from, closed_to=closed_to, strategy=strategy)
        # Acts as that one user: their rows only, exactly what the API would give them.
        with tenancy.acting_as(user.pk):
            rows = list(selectors.dataset_rows(user=user, filters=filters))
        if not output:
            for line in dataset_csv_lines(iter(rows)):
                self.stdout.write(line, ending="")
            return
        with open(output, "w", newline="", encoding="utf-8") as target:
            target.writelines(dataset_csv_lines(iter(rows)))
        self.stderr.write(f"{len(rows)} trade(s) written to {output}.")
