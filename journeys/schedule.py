"""When each delivery may go: the durable schedule's claim (due rows leased in batches with FOR UPDATE SKIP
LOCKED), expired leases reclaimed, waits given up, and the send gate just before sending (consent,
suppression, the enrollment still active, quiet hours in the customer's zone, the frequency cap across
journeys, priority). Delays live in PostgreSQL, never in the broker; capped and quiet-hour messages are
deferred, not dropped, and every skip or defer keeps its reason."""

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Sequence

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max, Q

from feedback.selectors import survey_for_config, survey_throttle_until
from lifecycle import citus, clock
from lifecycle.models import Customer, Event, Tenant
from lifecycle.preferences import category_skip_reason
from lifecycle.sending_domains import unverified_sender_reason, verified_domains

from .enrollment import ORDER_SCOPED_EXITS, delivery_advance, delivery_history, exit_reason
from .models import Delivery, DueDelivery, Enrollment, Journey, Segment, Step
from .segments import segment_members_among

# How long a claim holds a row before another dispatcher may take it back
# (settings.DELIVERY_CLAIM_LEASE_SECONDS overrides it).
CLAIM_LEASE = dt.timedelta(minutes=5)


# A worker holds "sending" this long; past it, the worker died mid-send (see reclaim;
# settings.DELIVERY_SEND_LEASE_SECONDS overrides it).
SEND_LEASE = dt.timedelta(minutes=2)


# When a higher-priority message for the same customer is due, the lower one waits this long
# and asks again; by then the higher one is sent and the cap decides.
YIELD_DELAY = dt.timedelta(minutes=5)


def claim_lease() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "DELIVERY_CLAIM_LEASE_SECONDS", CLAIM_LEASE.total_seconds()))


def send_lease() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "DELIVERY_SEND_LEASE_SECONDS", SEND_LEASE.total_seconds()))


def deliveries_claim(*, limit: int, now: dt.datetime | None = None) -> list[int]:
    """Lease up to `limit` due rows, oldest first. Concurrent dispatchers never get the same row."""
    return [pk for pk, _ in _claim(limit, now or clock.now())]


def deliveries_claim_by_tenant(*, limit: int, now: dt.datetime | None = None) -> dict[int, list[int]]:
    """`deliveries_claim`, the ids grouped by tenant (oldest first within each): send tasks act for one tenant."""
    claimed: dict[int, list[int]] = {}
    for pk, tenant_id in _claim(limit, now or clock.now()):
        claimed.setdefault(tenant_id, []).append(pk)
    return claimed


_CLAIM_SQL = """
    UPDATE journeys_duedelivery SET lease_until = %s
    WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM journeys_duedelivery
        WHERE lease_until IS NULL AND due_at <= %s
        ORDER BY due_at
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING delivery_id, tenant_id, due_at
"""

# On Citus, one store's rows of the claim: those still unleased and due when locked.
_CLAIM_ONE_TENANT_SQL = """
    UPDATE journeys_duedelivery SET lease_until = %s
    WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM journeys_duedelivery
        WHERE tenant_id = %s AND delivery_id = ANY(%s) AND lease_until IS NULL AND due_at <= %s
        FOR UPDATE SKIP LOCKED
    )) AND tenant_id = %s
    RETURNING delivery_id, tenant_id, due_at
"""


def _claim(limit: int, now: dt.datetime) -> list[tuple[int, int]]:
    """(id, tenant_id) of up to `limit` rows leased now, oldest due first.

    PostgreSQL: the lease is written on the narrow queue row (journeys.models.DueDelivery), never on the
    wide delivery row, which stays 'pending' (or 'deferred') until a send task takes it
    (`deliveries_begin_sending`); the queue's partial index holds the unleased rows only, so a claim
    never walks past rows claimed before it. Two dispatchers never get the same row: each locks its
    queue rows FOR UPDATE SKIP LOCKED."""
    if connection.vendor == "postgresql":
        # The rows are found by duedelivery_due_idx and locked in the subquery; the UPDATE then takes
        # them by their physical address (ctid: a locked row cannot move), a TID scan, rather than looking
        # each one up again in the primary key. The lock re-checked the lease on the row's latest version,
        # so the UPDATE needs no other condition.
        with connection.cursor() as cursor:
            if not citus.enabled(connection):
                cursor.execute(_CLAIM_SQL, [now + claim_lease(), now, limit])
                rows = cursor.fetchall()
            else:
                # Citus refuses a FOR UPDATE over several shards: the due rows found first, oldest first, by
                # one read across the shards without a lock; then each store's claimed by its own statement.
                due = list(DueDelivery.all_tenants.filter(lease_until__isnull=True, due_at__lte=now)
                           .order_by("due_at").values_list("tenant_id", "delivery_id")[:limit])
                by_tenant: dict[int, list[int]] = {}
                for tenant_id, pk in due:
                    by_tenant.setdefault(tenant_id, []).append(pk)
                rows = []
                for tenant_id, pks in by_tenant.items():
                    cursor.execute(_CLAIM_ONE_TENANT_SQL, [now + claim_lease(), tenant_id, pks, now, tenant_id])
                    rows += cursor.fetchall()
            return [(row[0], row[1]) for row in sorted(rows, key=lambda row: (row[2], row[0]))]
    # SQLite (embedded profile): one writer at a time, so select-then-update is exclusive; the lease is
    # the delivery row's own 'claimed' state.
    with transaction.atomic():
        rows = list(Delivery.all_tenants.filter(state__in=Delivery.CLAIMABLE, due_at__lte=now)
                    .order_by("due_at").values_list("pk", "tenant_id")[:limit])
        Delivery.all_tenants.filter(pk__in=[pk for pk, _ in rows], state__in=Delivery.CLAIMABLE).update(
            state=Delivery.State.CLAIMED, lease_until=now + claim_lease(), updated_at=now)
    return rows


_BEGIN_SQL = """
    UPDATE journeys_delivery SET state = 'sending', lease_until = %s, attempts = attempts + 1, updated_at = %s
    WHERE id IN (SELECT delivery_id FROM journeys_duedelivery
                 WHERE {tenant} delivery_id = ANY(%s) AND lease_until IS NOT NULL)
      AND {tenant} state IN ('pending', 'deferred')
    RETURNING id
"""


def deliveries_begin_sending(*, ids: Sequence[int], now: dt.datetime, tenant_id: int | None = None) -> list[int]:
    """claimed → sending for those of `ids` still claimed (in the order given): the others are not ours
    (a redelivered or duplicated send task, a lease that expired and went to another task, a row that
    an exit or a skip ended meanwhile). Exactly once: the conditional UPDATE of the delivery's state is
    the gate, as before the queue; on PostgreSQL it takes only rows with a lease on their queue row, and
    the trigger then deletes that row. The delivery row is locked before its queue row, the order every
    other writer of a delivery follows (its trigger runs after its UPDATE), so no two of them deadlock."""
    if connection.vendor != "postgresql":  # SQLite (embedded profile): one row at a time
        return [pk for pk in ids if Delivery.all_tenants.filter(pk=pk, state=Delivery.State.CLAIMED).update(
            state=Delivery.State.SENDING, lease_until=now + send_lease(), attempts=F("attempts") + 1,
            updated_at=now)]
    # With its tenant (a send task acts for one) named in both, one shard group on Citus.
    named, tenant = ("tenant_id = %s AND", [tenant_id]) if tenant_id is not None else ("", [])
    with connection.cursor() as cursor:
        cursor.execute(_BEGIN_SQL.format(tenant=named), [now + send_lease(), now, *tenant, list(ids), *tenant])
        taken = {row[0] for row in cursor.fetchall()}
    return [pk for pk in ids if pk in taken]


def deliveries_claimed_count() -> int:
    """Rows claimed and not yet taken by a send task (on PostgreSQL the queue's leases, which
    duedelivery_lease_idx covers; expired ones too until the reclaim clears them)."""
    if connection.vendor == "postgresql":
        return DueDelivery.all_tenants.filter(lease_until__isnull=False).count()
    return Delivery.all_tenants.filter(state=Delivery.State.CLAIMED).count()


def deliveries_claimed(*, ids: Sequence[int]) -> set[int]:
    """Those of `ids` claimed now: leased to a send task that has not taken them yet."""
    if connection.vendor == "postgresql":
        return set(DueDelivery.all_tenants.filter(delivery_id__in=ids, lease_until__isnull=False)
                   .values_list("delivery_id", flat=True))
    return set(Delivery.all_tenants.filter(pk__in=ids, state=Delivery.State.CLAIMED).values_list("pk", flat=True))


def due_queue_fill() -> int:
    """Add to the queue every claimable delivery it lacks; returns how many. For loaders that write
    journeys_delivery with its triggers off (bench/claim, demo/scale_seed.py); the application never needs
    it, the triggers keep the queue (migration journeys 0009)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO journeys_duedelivery (delivery_id, tenant_id, due_at, lease_until)
               SELECT id, tenant_id, due_at, NULL FROM journeys_delivery
               WHERE state IN ('pending', 'deferred') AND due_at IS NOT NULL
               ON CONFLICT DO NOTHING""")
        return cursor.rowcount


def esp_honours_idempotency() -> bool:
    return bool(getattr(settings, "ESP_HONOURS_IDEMPOTENCY_KEY", False))


def deliveries_reclaim(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Take back expired leases, and let expired waits go.

    - claimed past its lease: the task never ran (lost message, dead worker) → claimable again (the
      lease cleared on its queue row; the delivery itself stayed pending).
    - sending past its lease: the worker died mid-send. With an ESP that honours our
      idempotency key, resending is safe → pending. Without one it may or may not have left:
      → ambiguous, never silently resent nor lost (shown in the admin and the explain view).
    - waiting past its deadline: the anchor never came → skipped with that reason.
    """
    now = now or clock.now()
    rows = Delivery.all_tenants
    if connection.vendor == "postgresql":  # the lease is on the queue row; the delivery is still pending
        counts = {"claimed": DueDelivery.all_tenants.filter(lease_until__lt=now).update(lease_until=None)}
    else:
        counts = {"claimed": rows.filter(state=Delivery.State.CLAIMED, lease_until__lt=now).update(
            state=Delivery.State.PENDING, lease_until=None, updated_at=now)}
    if esp_honours_idempotency():
        counts["sending"] = rows.filter(state=Delivery.State.SENDING, lease_until__lt=now).update(
            state=Delivery.State.PENDING, lease_until=None, updated_at=now, reason="retry after a worker died mid-send")
    else:
        counts["sending"] = rows.filter(state=Delivery.State.SENDING, lease_until__lt=now).update(
            state=Delivery.State.AMBIGUOUS, lease_until=None, updated_at=now,
            reason="worker died after handing the email to the ESP; it may or may not have been sent")
    counts["waiting"] = _give_up_waiting(now)
    return counts


# Expired waits handled per reclaim run; the rest wait for the next run (every 30 s).
WAIT_EXPIRY_BATCH = 500


def _give_up_waiting(now: dt.datetime) -> int:
    """Skip steps whose anchor never came (no delivery scan, say) and move their journeys on."""
    reason = "gave up waiting: the anchor never happened"
    expired = list(Delivery.all_tenants.filter(state=Delivery.State.WAITING, wait_deadline__lt=now)
                   .select_related("journey", "step", "enrollment__order")[:WAIT_EXPIRY_BATCH])
    for delivery in expired:
        with transaction.atomic():
            skipped = Delivery.all_tenants.filter(pk=delivery.pk, state=Delivery.State.WAITING).update(
                state=Delivery.State.SKIPPED, reason=reason, updated_at=now,
                history=delivery_history(delivery, "skipped", reason, now))
            if skipped and delivery.enrollment.state == Enrollment.State.ACTIVE:
                delivery_advance(delivery, now)
    return len(expired)


@dataclasses.dataclass(frozen=True)
class GateDecision:
    action: str  # "send" | "skip" | "defer" | "exit"
    reason: str = ""
    until: dt.datetime | None = None


def customer_zone(customer: Customer, tenant: Tenant) -> zoneinfo.ZoneInfo:
    for name in (customer.time_zone, tenant.time_zone):
        if name:
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return zoneinfo.ZoneInfo("UTC")


def quiet_hours_end(now: dt.datetime, zone: zoneinfo.ZoneInfo, start: dt.time, end: dt.time) -> dt.datetime | None:
    """If `now` falls in the quiet window in `zone`, when the window ends (UTC); else None.

    The window may wrap midnight (21:00–08:00). Local times are built with zoneinfo, so
    daylight-saving changes move the window with the clock on the wall.
    """
    local = now.astimezone(zone)
    t = local.timetz().replace(tzinfo=None)
    if start == end:
        return None
    wraps = start > end
    quiet = (t >= start or t < end) if wraps else (start <= t < end)
    if not quiet:
        return None
    day = local.date() + dt.timedelta(days=1) if (wraps and t >= start) else local.date()
    wall = dt.datetime.combine(day, end)
    # Resolve the wall time in the zone; a time inside a DST gap is pushed past the gap.
    candidate = wall.replace(tzinfo=zone)
    roundtrip = candidate.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
    if roundtrip != wall:
        candidate = (wall + dt.timedelta(hours=1)).replace(tzinfo=zone)
    return candidate.astimezone(dt.UTC)


def gate_decisions(deliveries: Sequence[Delivery], now: dt.datetime) -> list[GateDecision]:
    """May these deliveries go out now? The one place every rule is checked, for every journey, for a
    batch in its order, with what the rules read from the database
    (exit events, each customer's last marketing email, higher-priority rivals) fetched in one query
    each per tenant rather than per delivery. Each delivery has its customer (with tenant),
    enrollment, journey and step loaded.

    Within a batch a customer gets at most one marketing email when the store caps them: a later one
    waits YIELD_DELAY and asks again, when the cap sees the first one sent (or not)."""
    facts = _GateFacts.read(deliveries, now)
    return [_gate(delivery, now, facts) for delivery in deliveries]


@dataclasses.dataclass
class _GateFacts:
    exits: dict[int, list[Event]]  # customer id → exit-type events, oldest first
    last_sent: dict[int, dt.datetime]  # customer id → latest marketing email inside the store's cap
    rivals: dict[int, list[tuple[int, int, str]]]  # customer id → (id, priority, journey name), due now
    capped: dict[int, str] = dataclasses.field(default_factory=dict)  # customer id → journey going first
    # journey id → the customers of the batch in its exit segment (journeys.segments)
    in_exit_segment: dict[int, tuple[str, set[int]]] = dataclasses.field(default_factory=dict)
    # tenant id → its verified sending domains, read only when SENDING_DOMAIN_REQUIRED
    verified: dict[int, set[str]] = dataclasses.field(default_factory=dict)

    @classmethod
    def read(cls, deliveries: Sequence[Delivery], now: dt.datetime) -> "_GateFacts":
        facts = cls(exits={}, last_sent={}, rivals={})
        by_tenant: dict[int, list[Delivery]] = {}
        for delivery in deliveries:
            by_tenant.setdefault(delivery.tenant_id, []).append(delivery)
        marketing_class, sent = Journey.MessageClass.MARKETING, Delivery.State.SENT
        if settings.SENDING_DOMAIN_REQUIRED:
            facts.verified = verified_domains({tid for tid, group in by_tenant.items()
                                               if group[0].customer.tenant.sender_email})
        for tenant_id, group in by_tenant.items():
            facts.in_exit_segment.update(exit_segment_members(tenant_id, group, now))
            exit_types = {t for d in group for t in d.journey.exit_events or []}
            if exit_types:
                # An exit about the enrollment's own order counts whenever it happened: a refund or a
                # cancellation the platform sent before the payment that enrolled the customer.
                # And whoever it was recorded for: an order whose customer was erased is taken over by a
                # new customer row when the storefront sends it again, and its refund stays the old one's.
                order_customers: dict[int, set[int]] = {}
                for d in group:
                    if d.enrollment.order_id:
                        order_customers.setdefault(d.enrollment.order_id, set()).add(d.customer_id)
                customers = {d.customer_id for d in group}
                events = (Event.objects.for_tenant(tenant_id)
                          .filter(Q(occurred_at__gte=min(d.enrollment.enrolled_at for d in group),
                                    customer_id__in=customers)
                                  | Q(order_id__in=order_customers, type__in=exit_types & ORDER_SCOPED_EXITS),
                                  type__in=exit_types, backfill=False)
                          .only("id", "customer_id", "order_id", "type", "occurred_at").order_by("pk"))
                for event in events:
                    keys = {event.customer_id} & customers
                    if event.type in ORDER_SCOPED_EXITS:
                        keys |= order_customers.get(event.order_id, set())
                    for key in keys:
                        facts.exits.setdefault(key, []).append(event)
            marketing = [d for d in group if d.message_class == marketing_class]
            if not marketing:
                continue
            customers = {d.customer_id for d in marketing}
            cap_hours = marketing[0].customer.tenant.frequency_cap_hours
            if cap_hours:
                facts.last_sent.update(
                    Delivery.objects.for_tenant(tenant_id)
                    .filter(customer_id__in=customers, message_class=marketing_class, state=sent,
                            sent_at__gt=now - dt.timedelta(hours=cap_hours))
                    .values("customer_id").annotate(last=Max("sent_at")).values_list("customer_id", "last"))
            rivals = (Delivery.objects.for_tenant(tenant_id)
                      .filter(customer_id__in=customers, message_class=marketing_class,
                              state__in=[*Delivery.CLAIMABLE, Delivery.State.CLAIMED, Delivery.State.SENDING],
                              due_at__lte=now, priority__gt=min(d.priority for d in marketing))
                      .order_by("pk").values_list("pk", "customer_id", "priority", "journey__name"))
            for pk, customer_id, priority, journey_name in rivals:
                facts.rivals.setdefault(customer_id, []).append((pk, priority, journey_name))
        return facts


def exit_segment_members(tenant_id: int, group: Sequence[Delivery],
                         now: dt.datetime) -> dict[int, tuple[str, set[int]]]:
    """Per journey with an exit segment: its name, and which of the group's customers are in it now."""
    out: dict[int, tuple[str, set[int]]] = {}
    wanted: dict[int, set[int]] = {}
    for d in group:
        if (d.journey.filters or {}).get("exit_segment"):
            wanted.setdefault(d.journey_id, set()).add(d.customer_id)
    for journey_id, customers in wanted.items():
        journey = next(d.journey for d in group if d.journey_id == journey_id)
        segment = Segment.objects.for_tenant(tenant_id).filter(pk=journey.filters["exit_segment"]).first()
        if segment is not None:
            out[journey_id] = (segment.name, segment_members_among(segment=segment, customer_ids=customers, now=now))
    return out


def _gate(delivery: Delivery, now: dt.datetime, facts: _GateFacts) -> GateDecision:
    customer, tenant, enrollment, journey = delivery.customer, delivery.customer.tenant, delivery.enrollment, delivery.journey
    if enrollment.state != Enrollment.State.ACTIVE:
        return GateDecision("skip", f"enrollment {enrollment.state}: {enrollment.reason}".rstrip(": "))
    if journey.status != Journey.Status.ACTIVE:
        if journey.status == Journey.Status.PAUSED:
            return GateDecision("defer", "journey paused", now + dt.timedelta(hours=1))
        return GateDecision("exit", f"journey {journey.status}")
    for event in facts.exits.get(customer.pk, ()):
        own_order = (event.type in ORDER_SCOPED_EXITS and enrollment.order_id is not None
                     and event.order_id == enrollment.order_id)
        if event.type in (journey.exit_events or []) and (event.occurred_at >= enrollment.enrolled_at or own_order):
            reason = exit_reason(journey, enrollment, event)
            if reason:
                return GateDecision("exit", reason)
    segment_name, in_segment = facts.in_exit_segment.get(journey.pk, ("", set()))
    if customer.pk in in_segment:
        return GateDecision("exit", f"exit: in segment '{segment_name}'")
    if customer.erased_at:
        return GateDecision("skip", "customer erased")
    if delivery.step.kind in (Step.Kind.CONDITION, Step.Kind.AB_SPLIT, Step.Kind.AWARD_POINTS, Step.Kind.DISCOUNT_CODE):
        # A branch (or a points award) sends nothing: consent, quiet hours and the cap are for the messages after it.
        return GateDecision("send")
    # A webhook step reaches the customer through the store's own system: no address of ours is needed,
    # and everything below (consent, preferences, quiet hours, the cap) applies to it as to an email.
    if not customer.email and delivery.step.kind != Step.Kind.WEBHOOK:
        return GateDecision("skip", "no email address")
    if customer.suppressed_at:
        return GateDecision("skip", f"address suppressed ({customer.suppression_reason or 'bounce or complaint'})")
    if refused := unverified_sender_reason(tenant, facts.verified.get(tenant.pk, set())):
        # Held, not dropped: the owner publishes the records, checks, and the email goes within the hour.
        return GateDecision("defer", refused[:300], now + dt.timedelta(hours=1))
    marketing = delivery.message_class == Journey.MessageClass.MARKETING
    if marketing and customer.unsubscribed_at:
        return GateDecision("skip", "unsubscribed from marketing email")
    if marketing and customer.marketing_consent is not True:
        return GateDecision("skip", "no marketing consent")
    if marketing and (turned_off := category_skip_reason(customer, journey.category)):
        return GateDecision("skip", turned_off)  # the customer's preference page: "preferences: offers turned off"
    if marketing and tenant.marketing_paused_at:
        # journeys/deliverability.py paused the store's marketing: held, not dropped, until someone resumes it.
        return GateDecision("defer", f"tenant_paused: {tenant.marketing_paused_reason}"[:300],
                            now + dt.timedelta(hours=1))
    if delivery.step.kind == Step.Kind.FEEDBACK_REQUEST:
        survey = survey_for_config(tenant=tenant, config=delivery.step.config or {})
        until = survey and survey_throttle_until(customer=customer, survey=survey, now=now,
                                                 exclude_delivery_id=delivery.pk)
        if until:
            return GateDecision("defer", f"survey throttle: one survey per {survey.throttle_days} days", until)
    quiet_until = quiet_hours_end(now, customer_zone(customer, tenant), tenant.quiet_hours_start, tenant.quiet_hours_end)
    if quiet_until:
        return GateDecision("defer", "quiet hours in the customer's time zone", quiet_until)
    if marketing:
        cap = dt.timedelta(hours=tenant.frequency_cap_hours)
        last_sent = facts.last_sent.get(customer.pk)
        if last_sent:
            return GateDecision("defer", f"frequency cap: one marketing email per {tenant.frequency_cap_hours} h",
                                last_sent + cap)
        rival = next((name for pk, priority, name in facts.rivals.get(customer.pk, ())
                      if priority > delivery.priority and pk != delivery.pk), None)
        if rival is not None:
            return GateDecision("defer", f"frequency cap: '{rival}' has priority", now + YIELD_DELAY)
        if cap and customer.pk in facts.capped:
            return GateDecision("defer", f"frequency cap: '{facts.capped[customer.pk]}' goes first", now + YIELD_DELAY)
        if cap:
            facts.capped[customer.pk] = journey.name
    return GateDecision("send")
