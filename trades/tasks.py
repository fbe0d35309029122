"""Celery tasks of the trades app: adapters that take ids, call one service, and decide nothing.

`deliver_webhook` is queued after the commit of the change it reports (see
`trades.services.notifications`). It makes one attempt per run; a failed attempt is retried with
exponential backoff and jitter until WEBHOOK_MAX_ATTEMPTS attempts have been made, which the
service counts in the database (so a redelivered message cannot exceed the bound). An event whose
task was lost is queued again by the monitor's `resend_webhooks` sweep. Time limits
stay far below the Redis visibility timeout; the receiver's own timeout (WEBHOOK_TIMEOUT_SECONDS)
is meant to stay well below the soft limit.
"""

from celery import shared_task
from django.conf import settings

from . import services


@shared_task(name="trades.deliver_webhook", bind=True, soft_time_limit=60, time_limit=90, ignore_result=True)
def deliver_webhook(self, owner_id: int, event_id: str) -> str:
    outcome = services.webhook_deliver(owner_id=owner_id, event_id=event_id)
    if outcome.retry:
        raise self.retry(countdown=outcome.retry_in, max_retries=settings.WEBHOOK_MAX_ATTEMPTS)
    return str(outcome)
