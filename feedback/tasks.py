"""Thin Celery entry points. Arguments are ids; each names its tenant."""

from celery import shared_task

from lifecycle.periodic import every
from lifecycle.queues import PERIODIC, SENDS, on_queue
from lifecycle.tenancy import system_scope, tenant_scope

from .services import alert_deliver, alerts_requeue_stale, responses_settle_due

# Backoff for a transient alert failure: 30 s, 1, 2, 4, then 5 min (services.ALERT_MAX_ATTEMPTS caps it).
ALERT_BACKOFF_SECONDS = 30
# A countdown waits in a worker's memory, not in the database: past a few minutes a restart or the
# broker's visibility timeout redelivers it, so no retry waits longer (tests/proof/test_celery_countdowns.py).
ALERT_BACKOFF_MAX_SECONDS = 300


# SENDS: an email to the store; its retries come back to the same queue.
@on_queue(SENDS)
@shared_task(name="feedback.alert_send", bind=True, ignore_result=True, acks_late=True, max_retries=None)
def alert_send(self, tenant_id: int, alert_id: int) -> str:
    """Send a negative-answer alert to the store. Idempotent: a sent alert is not sent again."""
    with tenant_scope(tenant_id):
        state = alert_deliver(tenant_id=tenant_id, alert_id=alert_id)
    if state == "retry":
        raise self.retry(countdown=min(ALERT_BACKOFF_MAX_SECONDS, ALERT_BACKOFF_SECONDS * 2 ** self.request.retries))
    return state


@every(5.0, key="settle-feedback-answers")
# PERIODIC: settles answers whose window passed (minutes-scale) and requeues lost alerts (on SENDS).
@on_queue(PERIODIC)
@shared_task(name="feedback.sweep", ignore_result=True)
def sweep() -> int:
    """Beat, every few seconds: settle provisional answers whose window passed, and hand out
    again alerts whose task was lost."""
    with system_scope():
        settled = responses_settle_due()
        stale = alerts_requeue_stale()
    for tenant_id, alert_id in stale:
        alert_send.delay(tenant_id, alert_id)
    return settled
