"""Reads the API and the admin share: what happened to a customer in each journey, and why.

Every decision the engine takes is already recorded (Enrollment.state/reason, Delivery
state/reason/history); this module only reads them back and says them in words. Times in
the `summary` strings are in the customer's time zone (else the store's), the zone the send
gate uses for quiet hours; the structured fields next to them are UTC.
"""

import datetime as dt
import zoneinfo
from collections import defaultdict
from typing import Any

from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber
from pydantic import BaseModel, Field

from lifecycle.models import Customer, Event, Tenant

from .enrollment import TRIGGER_EVENTS
from .models import Delivery, Enrollment, Journey, Step
from .schedule import customer_zone as send_zone

# Decisions shown per journey, newest first. A loyal customer of a once-per-order journey
# collects one row per order; the newest say what is going on, the count says how many.
MAX_ENROLLMENTS_PER_JOURNEY = 25
OPEN_STATES = (Delivery.State.WAITING, Delivery.State.PENDING, Delivery.State.DEFERRED, Delivery.State.CLAIMED,
               Delivery.State.SENDING)
# What a delivery waits for, in words.
WAITING_WORDS = {
    "order.paid": "the order to be paid",
    "order.fulfilled": "the order to ship",
    "order.delivered": "the order to be delivered",
}
TRIGGER_WORDS = {
    Journey.Trigger.ORDER_PAID: "an order is paid",
    Journey.Trigger.FIRST_ORDER: "a first order is paid",
    Journey.Trigger.REPEAT_ORDER: "a repeat order is paid",
    Journey.Trigger.ORDER_DELIVERED: "an order is delivered",
    Journey.Trigger.ORDER_REFUNDED: "an order is refunded",
    Journey.Trigger.FEEDBACK_NEGATIVE: "negative feedback arrives",
    Journey.Trigger.FEEDBACK_POSITIVE: "positive feedback arrives",
    Journey.Trigger.DATE: "the customer's date comes (birthday, anniversary, days since the last order)",
    Journey.Trigger.SEGMENT_ENTERED: "the customer enters the segment",
    Journey.Trigger.SUPPORT_CONTACTED: "the customer contacts support",
}


class HistoryEntry(BaseModel):
    at: dt.datetime | None
    state: str
    reason: str


class StepExplanation(BaseModel):
    position: int
    name: str
    kind: str
    state: str = Field(description="The delivery's state (waiting, pending, deferred, claimed, sending, sent, "
                                   "skipped, failed, ambiguous), or not_scheduled when the step has no row.")
    reason: str
    due_at: dt.datetime | None = None
    waiting_for: str = ""
    wait_deadline: dt.datetime | None = None
    sent_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    opened_at: dt.datetime | None = None
    clicked_at: dt.datetime | None = None
    bounced_at: dt.datetime | None = None
    complained_at: dt.datetime | None = None
    history: list[HistoryEntry] = []
    summary: str


class EnrollmentExplanation(BaseModel):
    id: int
    state: str = Field(description="active, completed, exited, holdout or rejected")
    reason: str
    order_external_id: str | None
    trigger_event: str | None = Field(description="The event type that started the decision.")
    enrolled_at: dt.datetime = Field(description="When the decision was taken.")
    ended_at: dt.datetime | None
    summary: str
    steps: list[StepExplanation] = Field(description="Every step of the journey, for enrollments that entered it.")


class NextStep(BaseModel):
    position: int
    state: str
    due_at: dt.datetime | None = Field(description="None while waiting for an anchor or an event.")
    summary: str


class JourneyExplanation(BaseModel):
    journey_id: int
    name: str
    status: str
    trigger: str
    message_class: str
    enrolled: bool = Field(description="Whether the customer ever entered (holdout and rejected do not count).")
    summary: str
    next_step: NextStep | None
    enrollments_total: int
    enrollments: list[EnrollmentExplanation] = Field(
        description=f"Newest first, at most {MAX_ENROLLMENTS_PER_JOURNEY}.")


# --- words ------------------------------------------------------------------------


def _local(at: dt.datetime | None, zone: zoneinfo.ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at else "an unknown time"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def human_duration(delta: dt.timedelta) -> str:
    total = int(delta.total_seconds())
    if total <= 0:
        return "at once"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [_plural(days, "day") if days else "", _plural(hours, "hour") if hours else "",
             _plural(minutes, "minute") if minutes else ""]
    return " ".join(p for p in parts if p) or _plural(total, "second")


def _waiting_words(event_type: str) -> str:
    return WAITING_WORDS.get(event_type, event_type or "an event")


def _engagement(delivery: Delivery, zone: zoneinfo.ZoneInfo) -> str:
    if delivery.complained_at:
        return f"; marked as spam {_local(delivery.complained_at, zone)}"
    if delivery.bounced_at:
        return f"; bounced {_local(delivery.bounced_at, zone)}"
    heard = [word for word, at in (("delivered", delivery.delivered_at), ("opened", delivery.opened_at),
                                   ("clicked", delivery.clicked_at)) if at]
    return f"; {', '.join(heard)}" if heard else ""


def step_summary(step: Step, delivery: Delivery | None, enrollment_active: bool, zone: zoneinfo.ZoneInfo) -> str:
    n = step.position
    if delivery is None:
        return f"Step {n} not scheduled yet: it follows the step before" if enrollment_active else f"Step {n} not reached"
    state, reason = delivery.state, delivery.reason
    if state == Delivery.State.SENT:
        if step.kind in (Step.Kind.CONDITION, Step.Kind.AB_SPLIT):
            why = f": {reason}" if reason and reason != "branch evaluated" else ""
            return f"Step {n} ({step.kind}) evaluated {_local(delivery.sent_at or delivery.updated_at, zone)}{why}"
        if step.kind == Step.Kind.WEBHOOK:  # its reason says when the call failed for good (journeys/webhooks.py)
            outcome = reason if reason.startswith("webhook failed") else "queued, retried until it is accepted"
            return f"Step {n} called the store's webhook {_local(delivery.sent_at, zone)}: {outcome}"
        if step.kind == Step.Kind.DISCOUNT_CODE:
            return f"Step {n} gave {reason or 'a discount code'} {_local(delivery.updated_at, zone)}"
        return f"Step {n} sent {_local(delivery.sent_at, zone)}{_engagement(delivery, zone)}"
    if state == Delivery.State.SKIPPED:
        return f"Step {n} skipped: {reason or 'no reason recorded'}"
    if state == Delivery.State.DEFERRED:
        return f"Step {n} deferred until {_local(delivery.due_at, zone)} ({reason})"
    if state == Delivery.State.WAITING:
        then = human_duration(step.wait) + " later" if step.wait else "at once"
        deadline = f" (gives up {_local(delivery.wait_deadline, zone)})" if delivery.wait_deadline else ""
        return f"Step {n} waiting for {_waiting_words(delivery.waiting_for)}, then due {then}{deadline}"
    if state == Delivery.State.PENDING:
        text = f"Step {n} due {_local(delivery.due_at, zone)}"
        if delivery.waiting_for:
            text += f", or as soon as {delivery.waiting_for} happens"
        return text + (f" ({reason})" if reason else "")
    if state in (Delivery.State.CLAIMED, Delivery.State.SENDING):
        return f"Step {n} is being sent now"
    if state == Delivery.State.FAILED:
        return f"Step {n} failed: {reason}"
    if state == Delivery.State.AMBIGUOUS:
        return f"Step {n} may or may not have been sent: {reason}"
    return f"Step {n} {state}" + (f": {reason}" if reason else "")


def delivery_history(delivery: Delivery | None) -> list[HistoryEntry]:
    """The row's history, oldest first. An email's "sent" entry is not stored (journeys/dispatch.py
    `_mark_sent`): it is made here from sent_at, in its place among the others."""
    entries, recorded_sent = [], False
    for item in (delivery.history if delivery else None) or []:
        if not isinstance(item, dict):
            continue
        # The ESP's engagement entries carry the row's state ("sent") too, and their esp_event.
        recorded_sent |= item.get("state") == Delivery.State.SENT and "esp_event" not in item
        try:
            at = dt.datetime.fromisoformat(str(item.get("at")))
        except ValueError:
            at = None
        entries.append(HistoryEntry(at=at, state=str(item.get("state", "")), reason=str(item.get("reason", ""))))
    if delivery is not None and delivery.sent_at and not recorded_sent:
        before = next((n for n, e in enumerate(entries) if e.at and e.at > delivery.sent_at), len(entries))
        entries.insert(before, HistoryEntry(at=delivery.sent_at, state=Delivery.State.SENT, reason=""))
    return entries


def _enrollment_summary(enrollment: Enrollment, steps: list[StepExplanation], open_step: StepExplanation | None,
                        zone: zoneinfo.ZoneInfo) -> str:
    state, reason = enrollment.state, enrollment.reason
    if state == Enrollment.State.REJECTED:
        return f"Not enrolled: {reason}"
    if state == Enrollment.State.HOLDOUT:
        return f"Not messaged: {reason}"
    if state == Enrollment.State.EXITED:
        return f"Exited {_local(enrollment.ended_at, zone)} ({reason})"
    if state == Enrollment.State.COMPLETED:
        return f"Completed {_local(enrollment.ended_at, zone)} ({reason})"
    if open_step is not None:
        return open_step.summary
    done = [s for s in steps if s.state != "not_scheduled"]
    return done[-1].summary if done else f"Enrolled {_local(enrollment.enrolled_at, zone)}"


def _explain_enrollment(enrollment: Enrollment, steps: list[Step], deliveries: dict[int, Delivery],
                        zone: zoneinfo.ZoneInfo) -> tuple[EnrollmentExplanation, StepExplanation | None]:
    entered = enrollment.state not in (Enrollment.State.REJECTED, Enrollment.State.HOLDOUT)
    active = enrollment.state == Enrollment.State.ACTIVE
    explained: list[StepExplanation] = []
    open_step = None
    for step in (steps if entered else []):
        delivery = deliveries.get(step.pk)
        fields: dict[str, Any] = {}
        if delivery is not None:
            fields = {name: getattr(delivery, name) for name in (
                "due_at", "waiting_for", "wait_deadline", "sent_at", "delivered_at", "opened_at", "clicked_at",
                "bounced_at", "complained_at")}
        item = StepExplanation(
            position=step.position, name=step.name, kind=step.kind,
            state=delivery.state if delivery else "not_scheduled", reason=delivery.reason if delivery else "",
            history=delivery_history(delivery), summary=step_summary(step, delivery, active, zone), **fields)
        explained.append(item)
        if active and delivery is not None and delivery.state in OPEN_STATES and open_step is None:
            open_step = item
    order = enrollment.order
    out = EnrollmentExplanation(
        id=enrollment.pk, state=enrollment.state, reason=enrollment.reason,
        order_external_id=order.external_id if order else None,
        trigger_event=enrollment.trigger_event.type if enrollment.trigger_event else None,
        enrolled_at=enrollment.enrolled_at, ended_at=enrollment.ended_at,
        summary=_enrollment_summary(enrollment, explained, open_step, zone), steps=explained)
    return out, open_step


def _not_enrolled_summary(journey: Journey, customer: Customer, zone: zoneinfo.ZoneInfo,
                          trigger_events: dict[str, Event | None]) -> str:
    if journey.status != Journey.Status.ACTIVE:
        return f"Not enrolled: the journey is {journey.status}"
    event_type = TRIGGER_EVENTS.get(journey.trigger) or journey.custom_event_type
    if not event_type:
        return "Not enrolled: the journey has no trigger event"
    if event_type not in trigger_events:
        trigger_events[event_type] = (Event.objects.for_tenant(customer.tenant_id)
                                      .filter(customer=customer, type=event_type)
                                      .order_by("backfill", "-occurred_at", "-pk").first())
    last = trigger_events[event_type]
    words = TRIGGER_WORDS.get(journey.trigger, f"{event_type} happens")
    if last is None:
        return f"Not enrolled: the trigger never fired for this customer (starts when {words}; no {event_type} yet)"
    if last.backfill:
        return (f"Not enrolled: the customer's {event_type} events are imported history, "
                "which starts no journeys")
    if last.processed_at is None:
        return f"Not enrolled yet: {event_type} of {_local(last.occurred_at, zone)} is still being processed"
    if last.processed_at < journey.created_at:
        return (f"Not enrolled: the last {event_type} ({_local(last.occurred_at, zone)}) came before "
                "this journey existed")
    return (f"Not enrolled: the journey was not active when {event_type} of "
            f"{_local(last.occurred_at, zone)} was handled")


# --- the selector -----------------------------------------------------------------


def customer_time_zone(*, tenant: Tenant, customer: Customer) -> zoneinfo.ZoneInfo:
    """The zone the send gate uses for this customer: theirs, else the store's, else UTC."""
    return send_zone(customer, tenant)


def customer_journeys_explain(*, tenant: Tenant, customer: Customer,
                              journey: Journey | None = None) -> list[JourneyExplanation]:
    """For each journey (or one): was the customer let in, what was sent, skipped or deferred and why,
    and what is due next.

    Covers the tenant's active and paused journeys, and any other journey the customer has a
    decision in. Read-only, tenant-scoped; a fixed number of queries plus one per distinct
    trigger event type of journeys the customer never entered.
    """
    if customer.tenant_id != tenant.pk or (journey is not None and journey.tenant_id != tenant.pk):
        raise ValueError("customer and journey must belong to the tenant")
    zone = customer_time_zone(tenant=tenant, customer=customer)
    enrollments = Enrollment.objects.for_tenant(tenant).filter(customer=customer)
    if journey is not None:
        journeys = [journey]
        enrollments = enrollments.filter(journey=journey)
    else:
        entered = Enrollment.objects.for_tenant(tenant).filter(customer=customer).values("journey_id")
        journeys = list(Journey.objects.for_tenant(tenant).filter(
            Q(status__in=[Journey.Status.ACTIVE, Journey.Status.PAUSED]) | Q(pk__in=entered))
            .order_by("-priority", "name"))
    # A customer of many orders has an enrollment per order per journey and an email per step of
    # each: only the newest MAX_ENROLLMENTS_PER_JOURNEY of each journey and their deliveries are
    # read (the rest are counted), so a support agent's page of a customer with 500 orders does
    # not load thousands of rows to show 25 per journey.
    not_entered = [Enrollment.State.REJECTED, Enrollment.State.HOLDOUT]
    totals = {row["journey_id"]: row for row in enrollments.order_by().values("journey_id").annotate(
        n=Count("pk"), entered=Count("pk", filter=~Q(state__in=not_entered)))}
    newest = list(
        enrollments.annotate(rank=Window(RowNumber(), partition_by=[F("journey_id")],
                                         order_by=[F("enrolled_at").desc(), F("pk").desc()]))
        .filter(rank__lte=MAX_ENROLLMENTS_PER_JOURNEY)
        .select_related("order", "trigger_event").order_by("-enrolled_at", "-pk"))
    by_journey: dict[int, list[Enrollment]] = defaultdict(list)
    for enrollment in newest:
        by_journey[enrollment.journey_id].append(enrollment)
    by_enrollment: dict[int, dict[int, Delivery]] = defaultdict(dict)
    for delivery in Delivery.objects.for_tenant(tenant).filter(enrollment_id__in=[e.pk for e in newest]):
        by_enrollment[delivery.enrollment_id][delivery.step_id] = delivery
    steps_of: dict[int, list[Step]] = defaultdict(list)
    for step in Step.objects.for_tenant(tenant).filter(journey__in=[j.pk for j in journeys]).order_by("position"):
        steps_of[step.journey_id].append(step)

    trigger_events: dict[str, Event | None] = {}
    out = []
    for item in journeys:
        decisions = by_journey.get(item.pk, [])
        explained, next_step = [], None
        for enrollment in decisions:
            explanation, open_step = _explain_enrollment(enrollment, steps_of[item.pk],
                                                         by_enrollment[enrollment.pk], zone)
            explained.append(explanation)
            if open_step is not None and next_step is None:
                next_step = NextStep(position=open_step.position, state=open_step.state, due_at=open_step.due_at,
                                     summary=open_step.summary)
        if explained:
            primary = next((e for e in explained if e.state == Enrollment.State.ACTIVE), explained[0])
            summary = primary.summary
        else:
            summary = _not_enrolled_summary(item, customer, zone, trigger_events)
        out.append(JourneyExplanation(
            journey_id=item.pk, name=item.name, status=item.status, trigger=item.trigger,
            message_class=item.message_class,
            enrolled=bool(totals.get(item.pk, {}).get("entered")),
            summary=summary, next_step=next_step, enrollments_total=totals.get(item.pk, {}).get("n", 0),
            enrollments=explained))
    return out

