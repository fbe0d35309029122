"""Every periodic job, in one place. `manage.py install_schedules` writes them into
django-celery-beat's tables (idempotently), where ops can see them in the admin.

Beat fires on simple intervals only: a crontab cannot know an early close, and
django-celery-beat has open daylight-saving bugs. Each task asks the exchange calendar whether
its moment has come. Each job can be switched off with its setting (SCHEDULE_<NAME>=false).
"""

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Job:
    task: str
    every: timedelta
    why: str

    @property
    def setting(self) -> str:
        return "SCHEDULE_" + self.task.rsplit(".", 1)[-1].upper()


JOBS = [
    # Marks every held position; 40 s keeps the chart smooth within the data budget.
    Job("monitoring.snapshot_prices", timedelta(seconds=40), "snapshot every held position during the session"),
    # The local paper broker fills resting orders only when asked: as often as marks change.
    Job("monitoring.match_paper_orders", timedelta(seconds=20), "fill working local-paper orders"),
    # Checks each minute whether a bookend is due (9:25, and 5 minutes after the real close).
    Job("monitoring.take_bookends", timedelta(seconds=60), "pre- and post-market snapshots"),
    # Paper matching, then order fills, cancels and expiries become trade states; during the
    # session and the hour after each close (day orders and contracts expire at the close).
    Job("monitoring.sync_orders", timedelta(seconds=60), "order sync, orphan guard and expiry settlement"),
    # Stored Idempotency-Key answers are kept a day at least; forgetting them daily keeps the table small.
    # Asks analytics for the day's forensic targets once the session's last marks are in.
    Job("monitoring.request_forensics", timedelta(minutes=10), "nightly forensic targets after the close"),
    Job("monitoring.purge_idempotency_keys", timedelta(days=1), "forget expired Idempotency-Key answers"),
    # Asks analytics for the daily (and, after the week's last session, weekly) reports to the
    # traders' channels, half an hour after the session's real close.
    Job("monitoring.request_reports", timedelta(minutes=10), "daily and weekly reports after the close"),
    # Webhook events are queued when their change commits; one whose task was lost (queue down,
    # worker killed) is queued again once it is 10 minutes overdue: a few minutes late is fine.
    # Channel messages held for quiet hours are queued from here too, up to 5 minutes after they end.
    Job("monitoring.resend_webhooks", timedelta(minutes=5),
        "queue again lost webhook events and channel messages, and held ones whose quiet hours ended"),
    # The price history's monthly partitions: months ahead made, months past retention archived to
    # Parquet and dropped. Idempotent; four times a day so a failed run is soon tried again.
    Job("monitoring.maintain_snapshot_partitions", timedelta(hours=6), "snapshot partitions ahead, retention"),
    # Asks every 10 minutes whether tonight's backup (after BACKUP_HOUR, New York) is taken yet.
    Job("monitoring.back_up_database", timedelta(minutes=10), "nightly pg_dump as the backup role, with retention"),
]
