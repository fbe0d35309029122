"""Write one user's learning data set (docs/dataset.md) as CSV or Parquet, to a file or stdout."""

from datetime import date
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from analytics import parquet, selectors
from analytics.api import DATASET_FORMATS, dataset_csv_lines
from tradeoptions import tenancy


class Command(BaseCommand):
    help = "Export a user's closed trades as the learning data set (CSV or Parquet; columns in docs/dataset.md)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--output", "-o", help="File to write (default: stdout; Parquet needs a file).")
        parser.add_argument("--format", dest="file_format", choices=DATASET_FORMATS, default="csv")
        parser.add_argument("--from", dest="closed_from", type=date.fromisoformat)
        parser.add_argument("--to", dest="closed_to", type=date.fromisoformat)
        parser.add_argument("--strategy")

    def handle(self, *args, username, output=None, file_format="csv", closed_from=None, closed_to=None,
               strategy=None, **options):
        if file_format == "parquet" and not output:
            raise CommandError("Parquet is a binary file: name it with --output.")
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None
        filters = selectors.AnalyticsFilters(closed_from=closed_from, closed_to=closed_to, strategy=strategy)
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
