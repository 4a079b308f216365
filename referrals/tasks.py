"""Thin Celery entry points. Arguments are ids, and a reward task names its tenant.

The sweep works across tenants (`system_scope`, for row-level security); a reward is issued in
its tenant's scope.
"""

from celery import shared_task

from lifecycle.periodic import every
from lifecycle.queues import PERIODIC, SENDS, on_queue
from lifecycle.tenancy import row_tenant_id, system_scope, tenant_scope

from .models import Reward
from .services import (
    RELEASE_BATCH,
    referrals_auto_decide_due,
    referrals_release_due,
    reward_deliver,
    rewards_requeue_due,
)


# SENDS: a discount code or store credit is POSTed to the store, as slow as the store answers.
@on_queue(SENDS)
@shared_task(name="referrals.reward_send", ignore_result=True, acks_late=True)
def reward_send(reward_id: int, tenant_id: int | None = None) -> str:
    """Issue one reward. Idempotent: a reward that is not pending and due is left alone. Retries
    live on the row (next_attempt_at) and the sweep hands them out again: no Celery eta."""
    tenant_id = tenant_id or row_tenant_id(Reward, reward_id)  # a message queued before tasks named it
    if tenant_id is None:
        return "gone"
    with tenant_scope(tenant_id):
        return reward_deliver(reward_id=reward_id)


@every(60.0, key="release-referral-rewards")
# PERIODIC: a sweep every minute; the rewards it releases go out on SENDS.
@on_queue(PERIODIC)
@shared_task(name="referrals.sweep", ignore_result=True)
def sweep() -> int:
    """Beat: auto-decide overdue reviews, release due referrals (rewarded exactly once), then
    hand out every reward that is due (new, retrying, or left by a dead sender)."""
    with system_scope():
        referrals_auto_decide_due()
        released = 0
        while True:
            taken = referrals_release_due()
            released += taken
            if taken < RELEASE_BATCH:
                break
        due = rewards_requeue_due()
    for tenant_id, reward_id in due:
        reward_send.delay(reward_id, tenant_id=tenant_id)
    return released
