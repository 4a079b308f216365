"""Thin Celery entry points. Arguments are ids; the rows carry their tenant.

No task here is ever given an eta or countdown for a journey wait: due times live in
journeys_delivery.due_at and beat wakes `dispatch` every few seconds.
"""

from celery import shared_task

from .services import deliveries_claim, deliveries_claimed_count, deliveries_reclaim, delivery_send

# Rows leased per claim: one indexed UPDATE … RETURNING, a few milliseconds.
CLAIM_BATCH = 500
# Ids per send task: enough to amortize the task overhead, few enough to spread over workers.
SEND_CHUNK = 25
# Claims per dispatch run, so one beat tick cannot monopolize a worker.
MAX_CLAIMS_PER_RUN = 40
# Claimed rows still waiting for a send task, at most. A backlog beyond what the workers send within
# the claim lease would only wait in the broker until reclaim puts it back and the next dispatch
# claims it again, queueing every row twice or more (and the dispatch and reclaim tasks themselves
# wait behind it). 5,000 rows are 200 send tasks: ~2.5 minutes of work at 35 emails/s.
MAX_CLAIMED_WAITING = 5_000


@shared_task(name="journeys.dispatch", ignore_result=True)
def dispatch() -> int:
    """Claim due deliveries and hand them to send tasks. Safe to run on many workers at once."""
    handed = 0
    room = MAX_CLAIMED_WAITING - deliveries_claimed_count()
    for _ in range(MAX_CLAIMS_PER_RUN):
        limit = min(CLAIM_BATCH, room - handed)
        if limit <= 0:
            break
        ids = deliveries_claim(limit=limit)
        for start in range(0, len(ids), SEND_CHUNK):
            send.delay(ids[start:start + SEND_CHUNK])
        handed += len(ids)
        if len(ids) < limit:
            break
    return handed


@shared_task(name="journeys.send", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def send(delivery_ids: list[int]) -> None:
    """Send claimed deliveries. A redelivered task finds them no longer 'claimed' and skips them."""
    for delivery_id in delivery_ids:
        delivery_send(delivery_id=delivery_id)


@shared_task(name="journeys.reclaim", ignore_result=True)
def reclaim() -> dict[str, int]:
    return deliveries_reclaim()
