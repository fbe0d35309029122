"""Write one user's learning data set (docs/dataset.md) as CSV, to a file or stdout."""

from datetime import date

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from analytics import selectors
from analytics.api import dataset_csv_lines
from tradeoptions import tenancy


class Command(BaseCommand):
    help = "Export a user's closed trades as the learning data set (CSV; parquet would need pyarrow)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--output", "-o", help="File to write (default: stdout).")
        parser.add_argument("--from", dest="closed_from", type=date.fromisoformat)
        parser.add_argument("--to", dest="closed_to", type=date.fromisoformat)
        parser.add_argument("--strategy")

    def handle(self, *args, username, output=None, closed_from=None, closed_to=None, strategy=None, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None
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
