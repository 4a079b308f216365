"""Thin Celery entry points (beat wakes them; the database holds every due time, never an eta).

The sweeps work across tenants (`system_scope`, for row-level security); a code webhook is sent
in its tenant's scope.
"""

from celery import shared_task

from lifecycle.periodic import every
from lifecycle.queues import PERIODIC, SENDS, on_queue
from lifecycle.tenancy import row_tenant_id, system_scope, tenant_scope

from . import redemptions, services
from .models import CodeWebhook

# Batches per beat run, so one tick cannot monopolize a worker; the next tick continues.
MAX_BATCHES_PER_RUN = 50


def _walk(step) -> int:
    """Call a batch service along a pk cursor until a short batch says the due rows are done."""
    total, cursor = 0, 0
    for _ in range(MAX_BATCHES_PER_RUN):
        taken, cursor = step(after_pk=cursor)
        total += taken
        if taken == 0:
            break
    return total


@every(60.0, key="release-pending-points")
# PERIODIC: a sweep over due points, every minute; a minute late changes nothing a customer sees.
@on_queue(PERIODIC)
@shared_task(name="loyalty.release_pending", ignore_result=True)
def release_pending() -> int:
    """Make order points whose return window is over available. Safe on many workers at once."""
    with system_scope():
        return _walk(services.points_release_due)


@every(3600.0, key="expire-points-and-requalify-tiers")
# PERIODIC: hourly and slow (every balance, every tier).
@on_queue(PERIODIC)
@shared_task(name="loyalty.expire_points", ignore_result=True)
def expire_points() -> int:
    """Warn about, then expire, inactive balances; re-qualify tiers over the rolling window; birthdays."""
    with system_scope():
        return (_walk(services.points_expiry_sweep) + _walk(services.tiers_refresh_sweep)
                + _walk(services.birthday_bonus_sweep))


# SENDS: an outbound call to the store, as slow as the store answers.
@on_queue(SENDS)
@shared_task(name="loyalty.send_code_webhook", ignore_result=True)
def send_code_webhook(webhook_id: int, tenant_id: int | None = None) -> str:
    tenant_id = tenant_id or row_tenant_id(CodeWebhook, webhook_id)  # a message queued before tasks named it
    if tenant_id is None:
        return "gone"
    with tenant_scope(tenant_id):
        return redemptions.code_webhook_send(webhook_id=webhook_id)


@every(30.0, key="retry-loyalty-code-webhooks")
# PERIODIC: a short sweep that only queues the calls (on SENDS).
@on_queue(PERIODIC)
@shared_task(name="loyalty.retry_code_webhooks", ignore_result=True)
def retry_code_webhooks() -> int:
    with system_scope():
        due = redemptions.code_webhooks_due()
    for tenant_id, webhook_id in due:
        send_code_webhook.delay(webhook_id, tenant_id=tenant_id)
    return len(due)
