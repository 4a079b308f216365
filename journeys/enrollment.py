"""Enrollments and their path through a journey's steps: who enters (trigger, entry filters, holdout), who
leaves (exits, released waits), and which step comes next.

Called by the event sweep (lifecycle/events.py) for each event, in the event's tenant scope. Idempotent per
event: an enrollment is unique per (journey, customer, trigger) and a delivery per (enrollment, step)."""

import datetime as dt
import hashlib
import random
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from lifecycle import clock
from lifecycle.events import reaction
from lifecycle.locks import advisory_lock
from lifecycle.models import Customer, Event, Order

from .conditions import condition_decide, enrollment_context
from .graph import Arm, arm_target, fall_through, plain_next, split_arms, split_join  # noqa: F401 - their old home
from .models import AbTest, Delivery, Enrollment, Journey, Segment, Step
from .segments import customer_in_segment
from .webhook_erasure import webhook_calls_erase

TRIGGER_EVENTS = {
    Journey.Trigger.ORDER_PAID: "order.paid",
    Journey.Trigger.FIRST_ORDER: "order.paid",
    Journey.Trigger.REPEAT_ORDER: "order.paid",
    Journey.Trigger.ORDER_DELIVERED: "order.delivered",
    Journey.Trigger.ORDER_REFUNDED: "order.refunded",
    Journey.Trigger.FEEDBACK_NEGATIVE: "feedback.negative",
    Journey.Trigger.FEEDBACK_POSITIVE: "feedback.positive",
    Journey.Trigger.DATE: "date.reached",
    Journey.Trigger.SEGMENT_ENTERED: "segment.entered",
    Journey.Trigger.SUPPORT_CONTACTED: "support.contacted",
}


# Exit events that concern the enrollment's own order, and those that mean "another order".
ORDER_SCOPED_EXITS = {"order.refunded", "order.cancelled", "order.delivered", "order.fulfilled"}


ANOTHER_ORDER_EXITS = {"order.placed", "order.paid"}


ANCHOR_EVENTS = {"paid_at": "order.paid", "fulfilled_at": "order.fulfilled", "delivered_at": "order.delivered"}


# An anchor that has not happened within this long (no delivery scan, say) lets the step go.
DEFAULT_ANCHOR_WAIT_MAX = dt.timedelta(days=30)


def delivery_history(delivery: Delivery, state: str, reason: str, now: dt.datetime) -> list[dict[str, str]]:
    return [*delivery.history, {"at": now.isoformat(), "state": state, "reason": reason}]


@reaction("journeys")
def on_event(event: Event) -> None:
    """Journeys' reaction to every event (lifecycle/event_types.py): release waits, apply exits, enroll.
    Idempotent per event."""
    if event.backfill or event.customer_id is None:
        return
    if event.type == "customer.erased":
        webhook_calls_erase(tenant_id=event.tenant_id, customer_id=event.customer_id)
    _release_waits(event)
    _apply_exits(event)
    for journey in _journeys_triggered_by(event):
        journey_enroll(journey=journey, event=event)


def triggers(journey: Journey, event_type: str, data: dict[str, Any] | None = None) -> bool:
    """Whether an event of this type (and data) starts the journey (the query in `_journeys_triggered_by`)."""
    if journey.trigger == Journey.Trigger.CUSTOM and journey.custom_event_type == event_type:
        return True
    return TRIGGER_EVENTS.get(journey.trigger) == event_type and trigger_config_matches(journey, data or {})


def trigger_config_matches(journey: Journey, data: dict[str, Any]) -> bool:
    """The new triggers' settings (journeys.triggers): which date, which segment, which support topics."""
    config = journey.trigger_config or {}
    if journey.trigger == Journey.Trigger.DATE:
        return data.get("fact") == config.get("fact") and (
            config.get("fact") != "days_since_last_order" or data.get("days") == config.get("days"))
    if journey.trigger == Journey.Trigger.SEGMENT_ENTERED:
        return data.get("segment_id") == config.get("segment")
    if journey.trigger == Journey.Trigger.SUPPORT_CONTACTED and config.get("topics"):
        return str(data.get("topic") or "").strip().lower() in {str(t).lower() for t in config["topics"]}
    return True


def _journeys_triggered_by(event: Event) -> list[Journey]:
    triggers_ = [t for t, etype in TRIGGER_EVENTS.items() if etype == event.type]
    journeys = Journey.objects.for_tenant(event.tenant_id).filter(status=Journey.Status.ACTIVE)
    found = journeys.filter(Q(trigger__in=triggers_) | Q(trigger=Journey.Trigger.CUSTOM, custom_event_type=event.type))
    return [j for j in found.order_by("-priority", "pk") if triggers(j, event.type, event.data)]


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


def as_decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def journey_filter_reason(journey: Journey, customer: Customer, order: Order | None, *, earlier: bool | None = None,
                          lines: Sequence[Any] | None = None) -> str | None:
    """Why this customer/order does not match the journey's filters, or None when it does.

    `earlier` (a paid order of the customer's before this one) and `lines` (the order's lines) are
    read here unless the caller, handling many events at once, read them already."""
    f = journey.filters or {}
    if journey.trigger in (Journey.Trigger.FIRST_ORDER, Journey.Trigger.REPEAT_ORDER) and order is not None:
        if earlier is None:
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
            lines = order.lines.all() if lines is None else lines
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
    if f.get("segment"):
        segment = Segment.objects.for_tenant(journey.tenant_id).filter(pk=f["segment"]).first()
        if segment is None:
            return "filter: its segment was deleted"
        if not customer_in_segment(segment=segment, customer=customer):
            return f"filter: not in segment '{segment.name}'"
    return None


def _entry_reason(journey: Journey, customer: Customer, order: Order | None, now: dt.datetime) -> str | None:
    previous = Enrollment.objects.for_tenant(journey.tenant_id).filter(journey=journey, customer=customer).exclude(
        state=Enrollment.State.REJECTED).values_list("order_id", "enrolled_at")
    return entry_reason(journey, order.pk if order is not None else None, now, list(previous))


def entry_reason(journey: Journey, order_id: int | None, now: dt.datetime,
                 previous: Sequence[tuple[int | None, dt.datetime]]) -> str | None:
    """Why the journey's entry policy keeps the customer out, given their earlier enrollments in it
    that were not rejected, as (order id, enrolled_at); None when it lets them in."""
    policy = journey.entry_policy
    if policy == Journey.EntryPolicy.ONCE_PER_CUSTOMER and previous:
        return "entry: already went through this journey (once per customer)"
    if policy == Journey.EntryPolicy.ONCE_PER_ORDER and order_id is not None and any(
            previous_order == order_id for previous_order, _ in previous):
        return "entry: already enrolled for this order"
    if policy == Journey.EntryPolicy.COOLDOWN:
        cooldown = journey.cooldown or dt.timedelta(0)
        if any(enrolled_at > now - cooldown for _, enrolled_at in previous):
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


def step_delivery(*, enrollment: Enrollment, step: Step, previous_at: dt.datetime,
                  happened: bool | None = None) -> Delivery:
    """The unsaved Delivery row `schedule_step` writes (a batch writes many with one INSERT, and
    may say whether an "until event" step's event `happened` already, read for all its rows)."""
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
        if happened is None:
            happened = Event.objects.for_tenant(enrollment.tenant_id).filter(
                customer_id=enrollment.customer_id, type=step.wait_event,
                occurred_at__gte=enrollment.enrolled_at).exists()
        # "until X, at most N": due at the limit unless X comes first (then _release_waits moves it).
        row.due_at = now if happened else previous_at + (step.wait_max or step.wait)
        row.waiting_for = "" if happened else step.wait_event
    else:
        row.due_at = previous_at + step.wait
    return row


def ab_pick(step: Step, customer_id: int) -> dict[str, Any] | None:
    """The variant of an A/B split a customer gets: the same one every time (seeded by step and customer)."""
    variants = (step.config or {}).get("variants") or []
    if not variants:
        return None
    rng = random.Random(f"ab:{step.pk}:{customer_id}")  # noqa: S311 - assignment, not security
    return rng.choices(variants, weights=[v.get("weight", 1) for v in variants])[0]


def _journey_steps(delivery: Delivery) -> list[Step]:
    return list(Step.objects.for_tenant(delivery.tenant_id).filter(journey_id=delivery.journey_id).order_by("position"))


def branch_decide(delivery: Delivery, now: dt.datetime) -> tuple[Step | None, str]:
    """Where a condition or A/B step sends the customer (None: the journey ends), and why in words
    ("bought SKU MUG-1 in this order: yes → step 3"): the explain view shows it as the step's reason."""
    step = delivery.step
    steps = _journey_steps(delivery)
    by_position = {s.position: s for s in steps}
    if step.kind == Step.Kind.CONDITION:
        holds, why = condition_decide(step.config or {}, enrollment_context(delivery.enrollment, now),
                                      delivery.customer)
        target = arm_target((step.config or {}).get("then" if holds else "else"))
    elif step.kind == Step.Kind.AB_SPLIT:
        # A promoted winner (journeys/abtests.py) takes everyone from now on; else the seeded pick.
        promoted = (AbTest.objects.for_tenant(delivery.tenant_id).filter(step=step, promoted_at__isnull=False)
                    .values_list("winner_id", flat=True).first())
        winner = next((s for s in steps if s.pk == promoted), None) if promoted else None
        if winner is not None:
            return winner, f"the promoted winner → step {winner.position}"
        pick = ab_pick(step, delivery.customer_id)
        variants = (step.config or {}).get("variants") or []
        target = pick.get("step") if pick else None
        label = chr(ord("A") + variants.index(pick)) if pick in variants else "?"
        why = f"variant {label}"
    else:
        target, why = plain_next(step, steps), ""
    nxt = by_position.get(target) if target is not None else None
    return nxt, f"{why} → {f'step {nxt.position}' if nxt else 'end'}"


def next_step(delivery: Delivery) -> Step | None:
    if delivery.step.kind in (Step.Kind.CONDITION, Step.Kind.AB_SPLIT):
        return branch_decide(delivery, clock.now())[0]
    steps = _journey_steps(delivery)
    target = plain_next(delivery.step, steps)
    return next((s for s in steps if s.position == target), None) if target is not None else None


def condition_holds(config: dict[str, Any], delivery: Delivery) -> bool:
    """Whether a condition step's config holds for the delivery's customer now (journeys.conditions)."""
    return condition_decide(config, enrollment_context(delivery.enrollment, clock.now()), delivery.customer)[0]


_NOT_DECIDED = object()


def delivery_advance(delivery: Delivery, now: dt.datetime, nxt: Any = _NOT_DECIDED) -> None:
    """Write the next step's row (`nxt` when the caller decided it already), or complete the enrollment."""
    if nxt is _NOT_DECIDED:
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
