"""Thin Celery entry points. Arguments are ids."""

from celery import shared_task

from .services import (
    RELEASE_BATCH,
    referrals_auto_decide_due,
    referrals_release_due,
    reward_deliver,
    rewards_requeue_due,
)


@shared_task(name="referrals.reward_send", ignore_result=True, acks_late=True)
def reward_send(reward_id: int) -> str:
    """Issue one reward. Idempotent: a reward that is not pending and due is left alone. Retries
    live on the row (next_attempt_at) and the sweep hands them out again: no Celery eta."""
    return reward_deliver(reward_id=reward_id)


@shared_task(name="referrals.sweep", ignore_result=True)
def sweep() -> int:
    """Beat: auto-decide overdue reviews, release due referrals (rewarded exactly once), then
    hand out every reward that is due (new, retrying, or left by a dead sender)."""
    referrals_auto_decide_due()
    released = 0
    while True:
        taken = referrals_release_due()
        released += taken
        if taken < RELEASE_BATCH:
            break
    for reward_id in rewards_requeue_due():
        reward_send.delay(reward_id)
    return released
