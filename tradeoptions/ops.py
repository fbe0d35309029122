"""What every ops command (`manage.py ...`) shares, so they all behave alike for the operator.

- Writes need a deliberate flag. A command that changes data shows what it would do and writes
  nothing unless it is given `--apply` (`reconcile` also answers to `--fix`). Its output says
  which it did ("would ..." or "...").
- Expected failures (a bad date, an unknown user or trade, a broker or data source that cannot
  be reached) end with a one-line message and exit status 1 (`CommandError`), never a traceback.
  Each command names the exceptions it expects; anything else is a bug and shows its traceback.
- Long work shows a progress bar (tqdm) on a terminal and stays quiet otherwise (cron, CI, logs).
  Services take the progress wrapper as a plain callable, so they know nothing of terminals.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import date

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction


def iso_date(value: str) -> date:
    """An argparse type: a calendar date written YYYY-MM-DD, with a message that says so."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date: write it as YYYY-MM-DD.") from None


def no_progress(items: Iterable, *, total: int | None = None, desc: str = "") -> Iterable:
    """The progress wrapper services default to: none."""
    return items


class OpsCommand(BaseCommand):
    """Base of the ops commands: subclasses implement `run(**options)` instead of `handle`."""

    # Failures an operator can cause or meet (bad input, a service that is down): reported as a
    # message, not a traceback.
    expected_errors: tuple[type[Exception], ...] = ()
    # Whether the command changes data: adds `--apply`, without which it only reports.
    writes = False
    apply_flags: tuple[str, ...] = ("--apply",)

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        if self.writes:
            parser.add_argument(*self.apply_flags, dest="apply", action="store_true",
                                help="Write the changes. Without it the command only shows what it would do.")
        return parser

    def handle(self, *args, **options):
        try:
            return self.run(*args, **options)
        except self.expected_errors as error:
            raise CommandError(str(error) or type(error).__name__) from None

    def run(self, *args, **options):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def progress(self, items: Iterable, *, total: int | None = None, desc: str = "") -> Iterable:
        """`items` with a progress bar on stderr when it is a terminal."""
        from tqdm import tqdm

        # OutputWrapper ends every write with a newline; the bar needs the raw stream for its \r.
        stream = getattr(self.stderr, "_out", self.stderr)
        return tqdm(items, total=total, desc=desc, file=stream, leave=False,
                    disable=not (hasattr(stream, "isatty") and stream.isatty()))

    def dry_run_note(self, options: dict) -> None:
        if self.writes and not options.get("apply"):
            self.stdout.write(f"Dry run: nothing was written. Run again with {self.apply_flags[0]} to write.")


@contextmanager
def written_only_if(apply: bool):
    """The block runs in one transaction that is rolled back unless `apply`: the dry run of a
    service that only touches the database computes exactly what it would write (and reports it),
    then writes nothing. Not for services that commit in steps or call a broker."""
    with transaction.atomic():
        yield
        if not apply:
            transaction.set_rollback(True)


def user_named(username: str):
    """The user called `username`, or a CommandError that says there is none."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user {username!r}.")
    return user
