"""Every write of the journey engine: enroll, schedule, exit, claim, gate, send.

The flow: an event → `journey_handle_event` enrolls matching customers and writes the
first step's `Delivery` with its `due_at` → the beat-driven dispatcher claims due rows
with `FOR UPDATE SKIP LOCKED` and hands their ids to send tasks → `delivery_send` moves
a row claimed → sending → sent (or skipped / deferred, with the reason) and writes the
next step's row. Each state change is a conditional UPDATE, so a redelivered task, a
second dispatcher or a reclaimed lease can never send a step twice.
"""

import dataclasses
import datetime as dt
import hashlib
import logging
import random
import zoneinfo
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, Q

from lifecycle import clock
from lifecycle.locks import advisory_lock
from lifecycle.models import Customer, Event, Order, Tenant

from .models import Delivery, Enrollment, Journey, Step

logger = logging.getLogger(__name__)

TRIGGER_EVENTS = {
    Journey.Trigger.ORDER_PAID: "order.paid",
    Journey.Trigger.FIRST_ORDER: "order.paid",
    Journey.Trigger.REPEAT_ORDER: "order.paid",
    Journey.Trigger.ORDER_DELIVERED: "order.delivered",
    Journey.Trigger.ORDER_REFUNDED: "order.refunded",
    Journey.Trigger.FEEDBACK_NEGATIVE: "feedback.negative",
    Journey.Trigger.FEEDBACK_POSITIVE: "feedback.positive",
}
# Exit events that concern the enrollment's own order, and those that mean "another order".
ORDER_SCOPED_EXITS = {"order.refunded", "order.cancelled", "order.delivered", "order.fulfilled"}
ANOTHER_ORDER_EXITS = {"order.placed", "order.paid"}
ANCHOR_EVENTS = {"paid_at": "order.paid", "fulfilled_at": "order.fulfilled", "delivered_at": "order.delivered"}
# An anchor that has not happened within this long (no delivery scan, say) lets the step go.
DEFAULT_ANCHOR_WAIT_MAX = dt.timedelta(days=30)

# How long a claim holds a row before another dispatcher may take it back
# (settings.DELIVERY_CLAIM_LEASE_SECONDS overrides it).
CLAIM_LEASE = dt.timedelta(minutes=5)
# A worker holds "sending" this long; past it, the worker died mid-send (see reclaim;
# settings.DELIVERY_SEND_LEASE_SECONDS overrides it).
SEND_LEASE = dt.timedelta(minutes=2)
# Transient ESP errors (timeouts, 5xx, 429): retried with backoff up to this many attempts.
MAX_SEND_ATTEMPTS = 6
# When a higher-priority message for the same customer is due, the lower one waits this long
# and asks again; by then the higher one is sent and the cap decides.
YIELD_DELAY = dt.timedelta(minutes=5)


def claim_lease() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "DELIVERY_CLAIM_LEASE_SECONDS", CLAIM_LEASE.total_seconds()))


def send_lease() -> dt.timedelta:
    return dt.timedelta(seconds=getattr(settings, "DELIVERY_SEND_LEASE_SECONDS", SEND_LEASE.total_seconds()))


def delivery_history(delivery: Delivery, state: str, reason: str, now: dt.datetime) -> list[dict[str, str]]:
    return [*delivery.history, {"at": now.isoformat(), "state": state, "reason": reason}]


# --- reacting to events ---------------------------------------------------------


def on_event(event: Event) -> None:
    """settings.EVENT_HANDLERS entry: release waits, apply exits, enroll. Idempotent per event."""
    if event.backfill or event.customer_id is None:
        return
    _release_waits(event)
    _apply_exits(event)
    for journey in _journeys_triggered_by(event):
        journey_enroll(journey=journey, event=event)


def _journeys_triggered_by(event: Event) -> list[Journey]:
    triggers = [t for t, etype in TRIGGER_EVENTS.items() if etype == event.type]
    journeys = Journey.objects.for_tenant(event.tenant_id).filter(status=Journey.Status.ACTIVE)
    return list(journeys.filter(Q(trigger__in=triggers) | Q(trigger=Journey.Trigger.CUSTOM,
                                                            custom_event_type=event.type)).order_by("-priority", "pk"))


def _release_waits(event: Event) -> None:
    """Deliveries waiting for this event (an anchor such as delivered_at, or 'until event X')."""
    now = clock.now()
    waiting = Delivery.objects.for_tenant(event.tenant_id).filter(
        customer_id=event.customer_id, state__in=[Delivery.State.WAITING, Delivery.State.PENDING],
        waiting_for=event.type, enrollment__state=Enrollment.State.ACTIVE,
    ).select_related("step", "enrollment")
    for delivery in waiting:
        enrollment = delivery.enrollment
        if event.type in ANCHOR_EVENTS.values() and event.order_id != enrollment.order_id:
            continue
        if delivery.step.wait_kind == Step.WaitKind.AFTER_ANCHOR:
            due = event.occurred_at + delivery.step.wait
        else:
            due = now
        Delivery.objects.for_tenant(event.tenant_id).filter(pk=delivery.pk, state=delivery.state).update(
            state=Delivery.State.PENDING, due_at=due, waiting_for="", wait_deadline=None,
            history=delivery_history(delivery, "pending", f"{event.type} happened", now))


def exit_reason(journey: Journey, enrollment: Enrollment, event: Event) -> str | None:
    if event.type not in journey.exit_events:
        return None
    if event.type in ORDER_SCOPED_EXITS and event.order_id != enrollment.order_id:
        return None
    if event.type in ANOTHER_ORDER_EXITS and (event.order_id is None or event.order_id == enrollment.order_id):
        return None
    if event.occurred_at < enrollment.enrolled_at and event.type in ANOTHER_ORDER_EXITS:
        return None
    return f"exit: {event.type}"


def _apply_exits(event: Event) -> None:
    active = Enrollment.objects.for_tenant(event.tenant_id).filter(
        customer_id=event.customer_id, state=Enrollment.State.ACTIVE).select_related("journey")
    for enrollment in active:
        reason = exit_reason(enrollment.journey, enrollment, event)
        if reason:
            enrollment_exit(enrollment=enrollment, reason=reason)


def enrollment_exit(*, enrollment: Enrollment, reason: str) -> bool:
    """End an active enrollment; its waiting and due deliveries are skipped with the reason."""
    now = clock.now()
    with transaction.atomic():
        ended = Enrollment.objects.for_tenant(enrollment.tenant_id).filter(
            pk=enrollment.pk, state=Enrollment.State.ACTIVE).update(state=Enrollment.State.EXITED, reason=reason,
                                                                    ended_at=now)
        if not ended:
            return False
        open_rows = Delivery.objects.for_tenant(enrollment.tenant_id).filter(
            enrollment=enrollment, state__in=[Delivery.State.WAITING, *Delivery.CLAIMABLE])
        for delivery in open_rows:
            Delivery.objects.for_tenant(enrollment.tenant_id).filter(pk=delivery.pk, state=delivery.state).update(
                state=Delivery.State.SKIPPED, reason=reason, updated_at=now,
                history=delivery_history(delivery, "skipped", reason, now))
    return True


# --- enrolling ------------------------------------------------------------------


def as_decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def journey_filter_reason(journey: Journey, customer: Customer, order: Order | None) -> str | None:
    """Why this customer/order does not match the journey's filters, or None when it does."""
    f = journey.filters or {}
    if journey.trigger in (Journey.Trigger.FIRST_ORDER, Journey.Trigger.REPEAT_ORDER) and order is not None:
        earlier = Order.objects.for_tenant(journey.tenant_id).filter(
            customer=customer, paid_at__isnull=False, paid_at__lt=order.paid_at).exclude(pk=order.pk).exists()
        if journey.trigger == Journey.Trigger.FIRST_ORDER and earlier:
            return "filter: not the customer's first order"
        if journey.trigger == Journey.Trigger.REPEAT_ORDER and not earlier:
            return "filter: not a repeat order"
    if order is not None:
        low, high = as_decimal(f.get("min_total")), as_decimal(f.get("max_total"))
        if low is not None and order.total < low:
            return f"filter: order total {order.total:.2f} is below {low}"
        if high is not None and order.total > high:
            return f"filter: order total {order.total:.2f} is above {high}"
        if f.get("skus") or f.get("product_ids"):
            lines = order.lines.all()
            skus = {line.sku for line in lines}
            products = {line.product_external_id for line in lines}
            if not (skus & set(f.get("skus") or []) or products & set(f.get("product_ids") or [])):
                return "filter: the order has none of the chosen products"
    if f.get("min_order_count") is not None and customer.order_count < int(f["min_order_count"]):
        return f"filter: {customer.order_count} orders, fewer than {f['min_order_count']}"
    if f.get("max_order_count") is not None and customer.order_count > int(f["max_order_count"]):
        return f"filter: {customer.order_count} orders, more than {f['max_order_count']}"
    locales = f.get("locales") or []
    if locales and (customer.locale or "").split("-")[0] not in {loc.split("-")[0] for loc in locales}:
        return f"filter: locale {customer.locale or 'unknown'} is not one of {', '.join(locales)}"
    if f.get("consent") == "required" and customer.marketing_consent is not True:
        return "filter: no marketing consent"
    return None


def _entry_reason(journey: Journey, customer: Customer, order: Order | None, now: dt.datetime) -> str | None:
    previous = Enrollment.objects.for_tenant(journey.tenant_id).filter(journey=journey, customer=customer).exclude(
        state=Enrollment.State.REJECTED)
    policy = journey.entry_policy
    if policy == Journey.EntryPolicy.ONCE_PER_CUSTOMER and previous.exists():
        return "entry: already went through this journey (once per customer)"
    if policy == Journey.EntryPolicy.ONCE_PER_ORDER and order is not None and previous.filter(order=order).exists():
        return "entry: already enrolled for this order"
    if policy == Journey.EntryPolicy.COOLDOWN:
        cooldown = journey.cooldown or dt.timedelta(0)
        if previous.filter(enrolled_at__gt=now - cooldown).exists():
            return f"entry: enrolled less than {cooldown.days} days ago (cooldown)"
    return None


def in_holdout(journey: Journey, customer_id: int) -> bool:
    """Deterministic: the same customer is always in or out of a journey's holdout group."""
    if journey.holdout_percent <= 0:
        return False
    digest = hashlib.sha256(f"holdout:{journey.pk}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < journey.holdout_percent


def journey_enroll(*, journey: Journey, event: Event) -> Enrollment | None:
    """Decide whether the event's customer enters the journey, and record the decision.

    One decision per (journey, event), enforced by a unique constraint: handling the same
    event again returns the first decision. Locks (journey, customer) for the transaction.
    """
    customer, order = event.customer, event.order
    now = clock.now()
    try:
        with transaction.atomic():
            advisory_lock(journey.tenant_id, f"journey:{journey.pk}", str(customer.pk))
            existing = Enrollment.objects.for_tenant(journey.tenant_id).filter(journey=journey,
                                                                                 trigger_event=event).first()
            if existing:
                return existing
            reason = journey_filter_reason(journey, customer, order) or _entry_reason(journey, customer, order, now)
            base = {"tenant_id": journey.tenant_id, "journey": journey, "customer": customer, "order": order,
                    "trigger_event": event, "enrolled_at": now}
            enrollments = Enrollment.objects.for_tenant(journey.tenant_id)
            if reason:
                return enrollments.create(**base, state=Enrollment.State.REJECTED, reason=reason, ended_at=now)
            if in_holdout(journey, customer.pk):
                return enrollments.create(**base, state=Enrollment.State.HOLDOUT, ended_at=now,
                                          reason=f"holdout group ({journey.holdout_percent}%): measured, not messaged")
            if journey.replace_running:
                for running in enrollments.filter(journey=journey, customer=customer, state=Enrollment.State.ACTIVE):
                    enrollment_exit(enrollment=running, reason="replaced: a newer order started this journey again")
            enrollment = enrollments.create(**base, state=Enrollment.State.ACTIVE)
            first = journey.steps.order_by("position").first()
            if first is None:
                Enrollment.objects.for_tenant(journey.tenant_id).filter(pk=enrollment.pk).update(
                    state=Enrollment.State.COMPLETED, ended_at=now, reason="the journey has no steps")
            else:
                schedule_step(enrollment=enrollment, step=first, previous_at=now)
            return enrollment
    except IntegrityError:
        # A concurrent handler of the same event decided first.
        return Enrollment.objects.for_tenant(journey.tenant_id).filter(journey=journey, trigger_event=event).first()


def schedule_step(*, enrollment: Enrollment, step: Step, previous_at: dt.datetime) -> Delivery:
    """Write the Delivery row for a step: due at a time, or waiting for an anchor or an event."""
    row = step_delivery(enrollment=enrollment, step=step, previous_at=previous_at)
    row.save()
    return row


def step_delivery(*, enrollment: Enrollment, step: Step, previous_at: dt.datetime) -> Delivery:
    """The unsaved Delivery row `schedule_step` writes (a batch writes many with one INSERT)."""
    now = clock.now()
    journey = enrollment.journey
    row = Delivery(
        tenant_id=enrollment.tenant_id, enrollment=enrollment, step=step, journey=journey,
        customer_id=enrollment.customer_id, message_class=journey.message_class, priority=journey.priority,
    )
    if step.wait_kind == Step.WaitKind.AFTER_ANCHOR and step.anchor:
        anchor_at = enrollment.enrolled_at if step.anchor == Step.Anchor.ENROLLED else (
            getattr(enrollment.order, step.anchor) if enrollment.order else None)
        if anchor_at is not None:
            row.due_at = anchor_at + step.wait
        else:
            row.state = Delivery.State.WAITING
            row.waiting_for = ANCHOR_EVENTS.get(step.anchor, "")
            row.wait_deadline = now + (step.wait_max or DEFAULT_ANCHOR_WAIT_MAX)
            row.reason = f"waiting for {step.anchor.removesuffix('_at')}"
    elif step.wait_kind == Step.WaitKind.UNTIL_EVENT and step.wait_event:
        happened = Event.objects.for_tenant(enrollment.tenant_id).filter(
            customer_id=enrollment.customer_id, type=step.wait_event, occurred_at__gte=enrollment.enrolled_at).exists()
        # "until X, at most N": due at the limit unless X comes first (then _release_waits moves it).
        row.due_at = now if happened else previous_at + (step.wait_max or step.wait)
        row.waiting_for = "" if happened else step.wait_event
    else:
        row.due_at = previous_at + step.wait
    return row


# --- claiming -------------------------------------------------------------------


def deliveries_claim(*, limit: int, now: dt.datetime | None = None) -> list[int]:
    """Lease up to `limit` due rows, oldest first. Concurrent dispatchers never get the same row."""
    return [pk for pk, _ in _claim(limit, now or clock.now())]


def deliveries_claim_by_tenant(*, limit: int, now: dt.datetime | None = None) -> dict[int, list[int]]:
    """`deliveries_claim`, the ids grouped by tenant (oldest first within each): send tasks act for one tenant."""
    claimed: dict[int, list[int]] = {}
    for pk, tenant_id in _claim(limit, now or clock.now()):
        claimed.setdefault(tenant_id, []).append(pk)
    return claimed


def _claim(limit: int, now: dt.datetime) -> list[tuple[int, int]]:
    """(id, tenant_id) of up to `limit` rows leased now, oldest due first."""
    if connection.vendor == "postgresql":
        # The rows are found by the partial index delivery_due_idx and locked in the subquery; the UPDATE
        # then takes them by their physical address (ctid: a locked row cannot move), a TID scan, rather
        # than looking each id up again in the primary key, a random read of the big table's index per row.
        # The lock re-checked the state on the row's latest version, so the UPDATE has no other condition:
        # one on state would let the planner scan delivery_due_idx again, comparing every entry with
        # the 500 ctids (seconds on a table whose statistics predate the burst).
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE journeys_delivery SET state = 'claimed', lease_until = %s, updated_at = %s
                WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM journeys_delivery
                    WHERE state IN ('pending', 'deferred') AND due_at <= %s
                    ORDER BY due_at
                    LIMIT %s
                    FOR UPDATE SKIP LOCKED
                ))
                RETURNING id, tenant_id
                """,
                [now + claim_lease(), now, now, limit],
            )
            return [(row[0], row[1]) for row in cursor.fetchall()]
    # SQLite (embedded profile): one writer at a time, so select-then-update is exclusive.
    with transaction.atomic():
        rows = list(Delivery.all_tenants.filter(state__in=Delivery.CLAIMABLE, due_at__lte=now)
                    .order_by("due_at").values_list("pk", "tenant_id")[:limit])
        Delivery.all_tenants.filter(pk__in=[pk for pk, _ in rows], state__in=Delivery.CLAIMABLE).update(
            state=Delivery.State.CLAIMED, lease_until=now + claim_lease(), updated_at=now)
    return rows


def deliveries_claimed_count() -> int:
    """Rows claimed and not yet taken by a send task (delivery_lease_idx covers them)."""
    return Delivery.all_tenants.filter(state=Delivery.State.CLAIMED).count()


def esp_honours_idempotency() -> bool:
    return bool(getattr(settings, "ESP_HONOURS_IDEMPOTENCY_KEY", False))


def deliveries_reclaim(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Take back expired leases, and let expired waits go.

    - claimed past its lease: the task never ran (lost message, dead worker) → pending again.
    - sending past its lease: the worker died mid-send. With an ESP that honours our
      idempotency key, resending is safe → pending. Without one it may or may not have left:
      → ambiguous, never silently resent nor lost (shown in the admin and the explain view).
    - waiting past its deadline: the anchor never came → skipped with that reason.
    """
    now = now or clock.now()
    rows = Delivery.all_tenants
    counts = {
        "claimed": rows.filter(state=Delivery.State.CLAIMED, lease_until__lt=now).update(
            state=Delivery.State.PENDING, lease_until=None, updated_at=now),
    }
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


# --- the send gate --------------------------------------------------------------


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


def gate_check(delivery: Delivery, now: dt.datetime) -> GateDecision:
    """May this delivery go out now? The one place every rule is checked, for every journey."""
    return gate_decisions([delivery], now)[0]


def gate_decisions(deliveries: Sequence[Delivery], now: dt.datetime) -> list[GateDecision]:
    """`gate_check` for a batch, in its order: the same rules, with what they read from the database
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

    @classmethod
    def read(cls, deliveries: Sequence[Delivery], now: dt.datetime) -> "_GateFacts":
        facts = cls(exits={}, last_sent={}, rivals={})
        by_tenant: dict[int, list[Delivery]] = {}
        for delivery in deliveries:
            by_tenant.setdefault(delivery.tenant_id, []).append(delivery)
        marketing_class, sent = Journey.MessageClass.MARKETING, Delivery.State.SENT
        for tenant_id, group in by_tenant.items():
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
    if customer.erased_at:
        return GateDecision("skip", "customer erased")
    if delivery.step.kind in (Step.Kind.CONDITION, Step.Kind.AB_SPLIT, Step.Kind.AWARD_POINTS):
        # A branch (or a points award) sends nothing: consent, quiet hours and the cap are for the messages after it.
        return GateDecision("send")
    if not customer.email:
        return GateDecision("skip", "no email address")
    if customer.suppressed_at:
        return GateDecision("skip", f"address suppressed ({customer.suppression_reason or 'bounce or complaint'})")
    marketing = delivery.message_class == Journey.MessageClass.MARKETING
    if marketing and customer.unsubscribed_at:
        return GateDecision("skip", "unsubscribed from marketing email")
    if marketing and customer.marketing_consent is not True:
        return GateDecision("skip", "no marketing consent")
    if marketing and tenant.marketing_paused_at:
        # journeys/deliverability.py paused the store's marketing: held, not dropped, until someone resumes it.
        return GateDecision("defer", f"tenant_paused: {tenant.marketing_paused_reason}"[:300],
                            now + dt.timedelta(hours=1))
    if delivery.step.kind == Step.Kind.FEEDBACK_REQUEST:
        from feedback.selectors import survey_for_config, survey_throttle_until

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


# --- sending --------------------------------------------------------------------


def delivery_begin_sending(delivery_id: int, now: dt.datetime) -> bool:
    return bool(Delivery.all_tenants.filter(pk=delivery_id, state=Delivery.State.CLAIMED).update(
        state=Delivery.State.SENDING, lease_until=now + send_lease(), attempts=F("attempts") + 1, updated_at=now))


def delivery_finish(delivery: Delivery, now: dt.datetime, **fields: Any) -> bool:
    state = fields["state"]
    fields.setdefault("reason", "")
    fields["history"] = delivery_history(delivery, state, fields["reason"], now)
    return bool(Delivery.objects.for_tenant(delivery.tenant_id).filter(
        pk=delivery.pk, state=Delivery.State.SENDING).update(lease_until=None, updated_at=now, **fields))


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm of an A/B split: the steps at positions [start, end) (end None: to the journey's end).
    A customer in it who runs past its last step goes on at `join` (None: the journey ends)."""

    split: int
    start: int
    end: int | None
    join: int | None

    def __contains__(self, position: int) -> bool:
        return self.start <= position and (self.end is None or position < self.end)


def split_join(split: Any, positions: Sequence[int]) -> int | None:
    """Where an A/B split's arms meet again: its config's "then", else the step after its last arm's
    first step (each arm is then one step, as the builder lays a split out), else nowhere."""
    config = split.config or {}
    if isinstance(config.get("then"), int) and not isinstance(config.get("then"), bool):
        return config["then"]
    starts = [v.get("step") for v in config.get("variants") or [] if isinstance(v, dict)]
    starts = [s for s in starts if isinstance(s, int)]
    if not starts:
        return None
    return next((p for p in sorted(positions) if p > max(starts)), None)


def split_arms(steps: Sequence[Any]) -> list[Arm]:
    """Every A/B split's arms. Arm i runs from its first step up to the next arm's first step; the
    last arm up to the split's join (or to the journey's end when nothing comes after it)."""
    positions = [s.position for s in steps]
    arms = []
    for split in steps:
        if split.kind != Step.Kind.AB_SPLIT:
            continue
        config = split.config or {}
        starts = sorted({v.get("step") for v in config.get("variants") or []
                         if isinstance(v, dict) and isinstance(v.get("step"), int) and v["step"] > split.position})
        join = split_join(split, positions)
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else (join if join is not None and join > start else None)
            arms.append(Arm(split=split.position, start=start, end=end, join=join))
    return arms


def fall_through(steps: Sequence[Any], position: int) -> int | None:
    """The position a step that does not branch leads to: the next step, except that a customer never
    runs from one A/B arm into another: past the end of their arm they go on where the split's arms
    meet again, or the journey ends. `steps`: the journey's steps (anything with position, kind and
    config), for the engine and the builder's timeline alike."""
    target = next((s.position for s in sorted(steps, key=lambda s: s.position) if s.position > position), None)
    arms = split_arms(steps)
    for _ in range(len(arms) + 1):
        if target is None:
            return None
        leaving = [arm for arm in arms if position in arm and target not in arm and target != arm.join]
        if not leaving:
            return target
        target = max(leaving, key=lambda arm: (arm.split, arm.start)).join  # the innermost arm first
    return target


def ab_pick(step: Step, customer_id: int) -> dict[str, Any] | None:
    """The variant of an A/B split a customer gets: the same one every time (seeded by step and customer)."""
    variants = (step.config or {}).get("variants") or []
    if not variants:
        return None
    rng = random.Random(f"ab:{step.pk}:{customer_id}")  # noqa: S311 - assignment, not security
    return rng.choices(variants, weights=[v.get("weight", 1) for v in variants])[0]


def next_step(delivery: Delivery) -> Step | None:
    step = delivery.step
    steps = list(Step.objects.for_tenant(delivery.tenant_id).filter(journey_id=delivery.journey_id)
                 .order_by("position"))
    by_position = {s.position: s for s in steps}
    if step.kind == Step.Kind.CONDITION:
        target = step.config.get("then" if condition_holds(step.config, delivery) else "else")
        return by_position.get(target) if target is not None else None
    if step.kind == Step.Kind.AB_SPLIT:
        pick = ab_pick(step, delivery.customer_id)
        if pick is not None:
            return by_position.get(pick.get("step"))
    target = fall_through(steps, step.position)
    return by_position.get(target) if target is not None else None


def condition_holds(config: dict[str, Any], delivery: Delivery) -> bool:
    """A yes/no split on a customer fact: {"field": "order_count", "op": ">=", "value": 2}."""
    customer = delivery.customer
    customer.refresh_from_db(fields=["order_count", "total_spent", "marketing_consent", "locale", "last_order_at"])
    facts: dict[str, Any] = {
        "order_count": customer.order_count,
        "total_spent": customer.total_spent,
        "marketing_consent": customer.marketing_consent,
        "locale": customer.locale,
        "ordered_since_enrollment": bool(customer.last_order_at and customer.last_order_at > delivery.enrollment.enrolled_at),
    }
    if str(config.get("field", "")).startswith("latest_"):
        from feedback.selectors import customer_latest_scores

        latest = customer_latest_scores(tenant=delivery.tenant_id, customer_id=customer.pk)
        facts.update({f"latest_{kind}": score for kind, score in latest.items()})
    if config.get("field") in ("points_balance", "tier"):
        from loyalty.selectors import customer_points

        facts["points_balance"], facts["tier"] = customer_points(tenant=delivery.tenant_id, customer_id=customer.pk)
    left, right, op = facts.get(config.get("field", "")), config.get("value"), config.get("op", "==")
    if isinstance(left, Decimal):
        right = as_decimal(right)
    try:
        return {"==": left == right, "!=": left != right, ">": left > right, ">=": left >= right,
                "<": left < right, "<=": left <= right}[op]
    except (TypeError, KeyError):
        return False


def delivery_advance(delivery: Delivery, now: dt.datetime) -> None:
    """Write the next step's row, or complete the enrollment."""
    nxt = next_step(delivery)
    if nxt is None:
        Enrollment.objects.for_tenant(delivery.tenant_id).filter(
            pk=delivery.enrollment_id, state=Enrollment.State.ACTIVE).update(
            state=Enrollment.State.COMPLETED, ended_at=now, reason="all steps done")
        return
    try:
        with transaction.atomic():
            schedule_step(enrollment=delivery.enrollment, step=nxt, previous_at=now)
    except IntegrityError:
        pass  # already scheduled (a branch back to an earlier step never repeats one)


def delivery_send(*, delivery_id: int, send_email=None) -> str:
    """Send one claimed delivery, at most once. Returns the final state (or "" when not ours).

    claimed → sending is a conditional UPDATE: a duplicate task finds the row already taken
    and does nothing. The gate decides skip / defer / send; the email goes out outside any
    transaction, then the row is marked sent with the ESP's id and the next step is written.
    (Send tasks send in batches: journeys/services_send.py.)
    """
    now = clock.now()
    if not delivery_begin_sending(delivery_id, now):
        return ""
    delivery = (Delivery.all_tenants.select_related("customer__tenant", "enrollment__order", "step__template",
                                                    "journey").get(pk=delivery_id))
    return delivery_settle(delivery, gate_check(delivery, now), now, send_email=send_email)


def delivery_settle(delivery: Delivery, decision: GateDecision, now: dt.datetime, *, send_email=None) -> str:
    """Act on the gate's decision for a delivery this worker holds in 'sending': skip, defer, exit,
    evaluate a branch, award points, or send its email now. Returns the final state."""
    from .sending import send_delivery_email

    send_email = send_email or send_delivery_email
    if decision.action == "exit":
        enrollment_exit(enrollment=delivery.enrollment, reason=decision.reason)
        delivery_finish(delivery, now, state=Delivery.State.SKIPPED, reason=decision.reason)
        return Delivery.State.SKIPPED
    if decision.action == "defer":
        delivery_finish(delivery, now, state=Delivery.State.DEFERRED, reason=decision.reason, due_at=decision.until)
        return Delivery.State.DEFERRED
    if decision.action == "skip":
        with transaction.atomic():
            delivery_finish(delivery, now, state=Delivery.State.SKIPPED, reason=decision.reason)
            if delivery.enrollment.state == Enrollment.State.ACTIVE:
                delivery_advance(delivery, now)
        return Delivery.State.SKIPPED
    if delivery.step.kind in (Step.Kind.CONDITION, Step.Kind.AB_SPLIT):
        with transaction.atomic():
            delivery_finish(delivery, now, state=Delivery.State.SENT, reason="branch evaluated", sent_at=now)
            delivery_advance(delivery, now)
        return Delivery.State.SENT
    if delivery.step.kind == Step.Kind.AWARD_POINTS:
        return _award_points(delivery, now)
    reason = skip_before_sending(delivery)
    if reason:
        with transaction.atomic():
            delivery_finish(delivery, now, state=Delivery.State.SKIPPED, reason=reason)
            delivery_advance(delivery, now)
        return Delivery.State.SKIPPED
    try:
        result = send_email(delivery)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
        return record_failure(delivery, exc, now)
    with transaction.atomic():
        delivery_finish(delivery, clock.now(), state=Delivery.State.SENT, sent_at=clock.now(),
                message_id=result.message_id, esp_message_id=result.esp_message_id or result.message_id)
        delivery_advance(delivery, clock.now())
    return Delivery.State.SENT


def skip_before_sending(delivery: Delivery) -> str:
    """Why a step that passed the gate has no email to send after all ("" when it has one). A feedback
    request writes its survey requests and a referral invite its code here, once per delivery."""
    sends_email = delivery.step.kind in (Step.Kind.EMAIL, Step.Kind.FEEDBACK_REQUEST, Step.Kind.REFERRAL_INVITE)
    return (f"step kind '{delivery.step.kind}' has nothing to send yet" if not sends_email
            else "the step has no email template" if delivery.step.template_id is None
            else _feedback_requests(delivery) if delivery.step.kind == Step.Kind.FEEDBACK_REQUEST
            else _referral_invite(delivery) if delivery.step.kind == Step.Kind.REFERRAL_INVITE else "")


def _award_points(delivery: Delivery, now: dt.datetime) -> str:
    """An award_points step, config {"points": 50, "reason": "…"}: once per delivery (the ledger's
    source is the delivery), then the journey moves on."""
    from lifecycle.errors import ServiceError
    from loyalty.services import points_award

    config = delivery.step.config or {}
    points = config.get("points")
    reason = ("" if isinstance(points, int) and not isinstance(points, bool) and points > 0
              else 'the award step needs a whole number of points: config {"points": 50}')
    with transaction.atomic():
        if not reason:
            try:
                points_award(tenant=delivery.customer.tenant, customer=delivery.customer, points=points,
                             source=f"delivery:{delivery.pk}", reason=str(config.get("reason") or delivery.journey.name))
            except ServiceError as exc:
                reason = f"loyalty: {exc.message}"
        state = Delivery.State.SKIPPED if reason else Delivery.State.SENT
        # No sent_at: nothing was emailed, so the frequency cap does not count it.
        delivery_finish(delivery, now, state=state, reason=reason or f"awarded {points} points")
        delivery_advance(delivery, now)
    return state


def _feedback_requests(delivery: Delivery) -> str:
    """Write the survey requests a feedback step's email links to (idempotent per delivery).
    Returns why there is nothing to ask, or ""."""
    from feedback.selectors import survey_for_config
    from feedback.services import survey_request_for_delivery
    from lifecycle.errors import ServiceError

    survey = survey_for_config(tenant=delivery.tenant_id, config=delivery.step.config or {})
    if survey is None:
        return 'the feedback step names no survey: set config {"survey": "<key>"} or {"survey_id": <id>}'
    try:
        survey_request_for_delivery(delivery_id=delivery.pk, tenant=delivery.customer.tenant,
                                    customer=delivery.customer, order=delivery.enrollment.order, survey=survey,
                                    journey_id=delivery.journey_id)
    except ServiceError as exc:
        return f"feedback: {exc.message}"
    return ""


def _referral_invite(delivery: Delivery) -> str:
    """Give the customer their referral code and count the invite (idempotent per delivery).
    Returns why there is nothing to invite to, or ""."""
    from referrals.services import invite_record

    if invite_record(tenant=delivery.customer.tenant, customer=delivery.customer, delivery_id=delivery.pk) is None:
        return "the store has no active referral program"
    return ""


def _is_transient(exc: Exception) -> bool:
    from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(exc, SoftTimeLimitExceeded):
        return True  # the task ran out of time around this email, which is not the email's fault
    if isinstance(exc, AnymailRecipientsRefused):
        return False
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        return status is None or status == 429 or status >= 500
    return isinstance(exc, ConnectionError | TimeoutError | OSError)


def record_failure(delivery: Delivery, exc: Exception, now: dt.datetime) -> str:
    attempts = delivery.attempts  # already counts this attempt (delivery_begin_sending)
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    if _is_transient(exc) and attempts < MAX_SEND_ATTEMPTS:
        backoff = dt.timedelta(seconds=min(3600, 30 * 2 ** (attempts - 1)))
        delivery_finish(delivery, now, state=Delivery.State.PENDING, reason=f"retrying: {reason}", due_at=now + backoff)
        return Delivery.State.PENDING
    logger.warning("delivery %s failed: %s", delivery.pk, reason)
    delivery_finish(delivery, now, state=Delivery.State.FAILED, reason=reason)
    return Delivery.State.FAILED
