"""Thin Celery entry points. Arguments are ids, and a send task names the tenant it acts for.

No task here is ever given an eta or countdown for a journey wait: due times live in
journeys_delivery.due_at and beat wakes `dispatch` every few seconds.

Row-level security (lifecycle/rls.py): `dispatch` and `reclaim` work across tenants and say so
with `system_scope()`; `send` runs in its tenant's scope.
"""

from celery import shared_task

from lifecycle import clock
from lifecycle.models import Tenant
from lifecycle.periodic import every
from lifecycle.queues import DISPATCH, PERIODIC, SENDS, on_queue
from lifecycle.tenancy import system_scope, tenant_scope

from .abtests import abtests_auto_promote, tenants_auto_promoting
from .deliverability import deliverability_check_all
from .dispatch import deliveries_send
from .models import Delivery, Journey
from .rollups import journeys_to_settle, journeys_with_open_sends, outcomes_refresh_open, outcomes_settle
from .schedule import deliveries_claim_by_tenant, deliveries_claimed_count, deliveries_reclaim
from .segments import segments_refresh
from .triggers import date_events_append
from .webhooks import webhook_call_attempt, webhook_calls_due

# Rows leased per claim: one indexed UPDATE … RETURNING, a few milliseconds.
CLAIM_BATCH = 500
# Ids per send task, sent in waves of services_send.send_wave() (10-50): waves amortize the task's
# overhead and its per-batch reads; 5,000 claimed rows still make 50 tasks to spread over workers.
SEND_CHUNK = 100
# Claims per dispatch run, so one beat tick cannot monopolize a worker.
MAX_CLAIMS_PER_RUN = 40
# Claimed rows still waiting for a send task, at most. A backlog beyond what the workers send within
# the claim lease would only wait in the broker until reclaim puts it back and the next dispatch
# claims it again, queueing every row twice or more (and the dispatch and reclaim tasks themselves
# wait behind it). 5,000 rows are 50 send tasks: a few seconds of work for a two-process worker on an
# idle two-core box, a couple of minutes on a busy one (bench/dispatch), inside the 5-minute claim lease.
MAX_CLAIMED_WAITING = 5_000


@every(2.0, key="dispatch-due-deliveries")
# DISPATCH, not SENDS: the sends it queues must not stand between it and its next claim.
@on_queue(DISPATCH)
@shared_task(name="journeys.dispatch", ignore_result=True)
def dispatch() -> int:
    """Claim due deliveries and hand them to send tasks. Safe to run on many workers at once."""
    handed = 0
    with system_scope():
        room = MAX_CLAIMED_WAITING - deliveries_claimed_count()
    for _ in range(MAX_CLAIMS_PER_RUN):
        limit = min(CLAIM_BATCH, room - handed)
        if limit <= 0:
            break
        # The claim commits before any send task exists, so a worker never finds its rows unclaimed.
        with system_scope():
            claimed = deliveries_claim_by_tenant(limit=limit)
        for tenant_id, ids in claimed.items():
            for start in range(0, len(ids), SEND_CHUNK):
                send.delay(ids[start:start + SEND_CHUNK], tenant_id=tenant_id)
        taken = sum(len(ids) for ids in claimed.values())
        handed += taken
        if taken < limit:
            break
    return handed


# SENDS: a wave of ESP calls, as long as the ESP is slow; only other sends wait behind it.
@on_queue(SENDS)
@shared_task(name="journeys.send", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def send(delivery_ids: list[int], tenant_id: int | None = None) -> None:
    """Send claimed deliveries of one tenant. A redelivered task finds them no longer 'claimed'
    and skips them. (A message queued before tasks named their tenant has no tenant_id: its
    rows' tenants are looked up first.)"""
    if tenant_id is None:
        with system_scope():
            tenants = dict(Delivery.all_tenants.filter(pk__in=delivery_ids).values_list("pk", "tenant_id"))
        for tenant in dict.fromkeys(tenants.values()):
            send([pk for pk in delivery_ids if tenants.get(pk) == tenant], tenant_id=tenant)
        return
    with tenant_scope(tenant_id):
        deliveries_send(delivery_ids=delivery_ids)


@every(30.0, key="reclaim-expired-leases")
# DISPATCH: it gives a dead sender's rows back to the claim. On SENDS it would wait behind the very
# backlog whose leases ran out; on PERIODIC behind a rollup that may take 25 minutes. It is bounded
# (a few UPDATEs and WAIT_EXPIRY_BATCH waits) and runs every 30 s, so the dispatcher barely notices.
@on_queue(DISPATCH)
@shared_task(name="journeys.reclaim", ignore_result=True)
def reclaim() -> dict[str, int]:
    with system_scope():
        return deliveries_reclaim()


@every(300.0, key="settle-journey-outcomes")
# PERIODIC: a rollup, minutes at scale; nothing waits on it.
@on_queue(PERIODIC)
@shared_task(name="journeys.settle_outcomes", ignore_result=True)
def settle_outcomes() -> int:
    """Add what closed since the last run into the dashboards' outcome buckets, and refresh the buckets
    of the sends still in their window (journeys/rollups.py)."""
    with system_scope():
        todo = list(journeys_to_settle())
        tenants = Tenant.objects.in_bulk({tenant_id for tenant_id, _ in todo})
    written = 0
    for tenant_id, journey_id in todo:
        with tenant_scope(tenant_id):
            written += outcomes_settle(tenant=tenants[tenant_id], journey_id=journey_id)
    with system_scope():
        running = list(journeys_with_open_sends())
        tenants = Tenant.objects.in_bulk({tenant_id for tenant_id, _ in running})
    for tenant_id, journey_id in running:
        with tenant_scope(tenant_id):
            written += outcomes_refresh_open(tenant=tenants[tenant_id], journey_id=journey_id)
    return written


@every(900.0, key="check-deliverability")
# PERIODIC: a scan of every store's last day, every 15 minutes.
@on_queue(PERIODIC)
@shared_task(name="journeys.check_deliverability", ignore_result=True)
def check_deliverability() -> dict[str, int]:
    """Beat, every 15 minutes: warn or pause stores whose complaint or bounce rate is too high."""
    with system_scope():
        return deliverability_check_all()


@every(3600.0, key="journey-date-triggers")
# PERIODIC: a scan of each store's customers once an hour; a birthday an hour late is on time.
@on_queue(PERIODIC)
@shared_task(name="journeys.date_triggers", ignore_result=True)
def date_triggers() -> int:
    """Append today's `date.reached` events (birthdays, order anniversaries, N days since the last order)
    for every store with an active date journey (journeys/triggers.py)."""
    with system_scope():
        tenant_ids = set(Journey.all_tenants.filter(trigger=Journey.Trigger.DATE, status=Journey.Status.ACTIVE)
                         .values_list("tenant_id", flat=True))
        tenants = Tenant.objects.in_bulk(tenant_ids)
    appended = 0
    for tenant_id in sorted(tenant_ids):
        with tenant_scope(tenant_id):
            appended += date_events_append(tenant=tenants[tenant_id])
    return appended


@every(900.0, key="journey-segment-refresh")
# PERIODIC: each segment a journey starts on is evaluated whole, seconds for a large store.
@on_queue(PERIODIC)
@shared_task(name="journeys.refresh_segments", ignore_result=True)
def refresh_segments() -> int:
    """Record who is in each segment an active journey starts on, and append `segment.entered` for the
    customers new since the last refresh (journeys/segments.py)."""
    with system_scope():
        tenant_ids = set(Journey.all_tenants.filter(trigger=Journey.Trigger.SEGMENT_ENTERED,
                                                    status=Journey.Status.ACTIVE).values_list("tenant_id", flat=True))
        tenants = Tenant.objects.in_bulk(tenant_ids)
    appended = 0
    for tenant_id in sorted(tenant_ids):
        with tenant_scope(tenant_id):
            appended += segments_refresh(tenant=tenants[tenant_id])
    return appended
@every(600.0, key="promote-ab-winners")
# PERIODIC: reads every undecided auto-promote test's assignments, seconds per store; a winner found
# ten minutes late costs nothing (its window alone is days).
@on_queue(PERIODIC)
@shared_task(name="journeys.promote_winners", ignore_result=True)
def promote_winners() -> int:
    """Beat, every 10 minutes: promote the winner of each A/B test whose marketer chose auto-promote,
    once its stopping rule is met (journeys/abtests.py). Idempotent: a promoted test is no longer read."""
    with system_scope():
        tenants = Tenant.objects.in_bulk(tenants_auto_promoting())
    promoted = 0
    for tenant_id, tenant in tenants.items():
        with tenant_scope(tenant_id):
            promoted += abtests_auto_promote(tenant=tenant, now=clock.now())
    return promoted


# SENDS: one POST to a store's system, as long as its timeout when the store is slow; only other outbound
# calls wait behind it.
@on_queue(SENDS)
@shared_task(name="journeys.webhook_call", ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def webhook_call(call_id: int, tenant_id: int) -> str:
    """One attempt of a webhook step's call (journeys/webhooks.py). A duplicate message, or the sweep's copy,
    finds the call leased or not yet due and does nothing."""
    with tenant_scope(tenant_id):
        return webhook_call_attempt(call_id=call_id)


@every(5.0, key="retry-journey-webhooks")
# DISPATCH: it only queues the calls that are due (retries, lost messages, a dead worker's calls): a few
# milliseconds, and it must not wait behind the very calls it hands out.
@on_queue(DISPATCH)
@shared_task(name="journeys.webhook_sweep", ignore_result=True)
def webhook_sweep() -> int:
    with system_scope():
        due = webhook_calls_due()
    for tenant_id, call_id in due:
        webhook_call.delay(call_id, tenant_id=tenant_id)
    return len(due)
