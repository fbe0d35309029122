"""Celery tasks of the trades app: adapters that take ids, call one service, and decide nothing.

`deliver_webhook` is queued after the commit of the change it reports (see
`trades.services.notifications`). It makes one attempt per run; a failed attempt is retried with
exponential backoff and jitter until WEBHOOK_MAX_ATTEMPTS attempts have been made, which the
service counts in the database (so a redelivered message cannot exceed the bound); tries whose
host did not resolve in time count against DNS_TIMEOUTS_MAX instead. An event whose
task was lost is queued again by the monitor's `resend_webhooks` sweep. Time limits
stay far below the Redis visibility timeout; the receiver's own timeout (WEBHOOK_TIMEOUT_SECONDS)
is meant to stay well below the soft limit.

A message expires once the sweep would queue its event again (STALLED_AFTER past its slot): by
then it is superseded, and dropping it loses nothing, since the event stays PENDING in the
database until an attempt is made. Celery would give a retry the first message's absolute expiry,
so each retry is given its own window after its countdown.
"""

from celery import shared_task
from django.conf import settings

from . import services
from .services import channel_delivery
from .services.notifications import DNS_TIMEOUTS_MAX, STALLED_AFTER

EXPIRES = STALLED_AFTER.total_seconds()


@shared_task(name="trades.deliver_webhook", bind=True, soft_time_limit=60, time_limit=90, expires=EXPIRES,
             ignore_result=True)
def deliver_webhook(self, owner_id: int, event_id: str) -> str:
    outcome = services.webhook_deliver(owner_id=owner_id, event_id=event_id)
    if outcome.retry:
        raise self.retry(countdown=outcome.retry_in, expires=outcome.retry_in + EXPIRES,
                         max_retries=settings.WEBHOOK_MAX_ATTEMPTS + DNS_TIMEOUTS_MAX)
    return str(outcome)


# Held messages wait out quiet hours (up to a day): their retries may be long, and the sweep
# (`channel_messages_resend`) queues again any whose message was lost.
CHANNEL_EXPIRES = channel_delivery.STALLED_AFTER.total_seconds()


@shared_task(name="trades.deliver_channel_message", bind=True, soft_time_limit=60, time_limit=90,
             expires=CHANNEL_EXPIRES, ignore_result=True)
def deliver_channel_message(self, owner_id: int, message_id: str) -> str:
    """One attempt at a notification channel's message (routed to the webhooks queue)."""
    outcome = services.channel_message_deliver(owner_id=owner_id, message_id=message_id)
    if outcome.retry:
        raise self.retry(countdown=outcome.retry_in, expires=outcome.retry_in + CHANNEL_EXPIRES,
                         max_retries=settings.NOTIFY_MAX_ATTEMPTS + 2)
    return str(outcome)
