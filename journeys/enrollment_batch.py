"""Journeys' batch reaction: one tenant's events, each customer at most once, handled with a few
statements for the whole batch instead of a few per event (lifecycle/events.py says when).

It leaves the database as `enrollment.on_event` called on each event in turn would: waits released
and exits applied with one UPDATE each over the batch's customers, then the enrollment decisions
made in Python from facts read in bulk (earlier enrollments, first or repeat order, order lines)
with the same rules (`journey_filter_reason`, `entry_reason`, `in_holdout`), and the enrollments
and their first deliveries inserted in bulk (`step_delivery` builds each row). The unique
(journey, trigger event) and (enrollment, step) constraints stay the idempotency guard: a batch that
meets one fails whole, and the sweep handles its events one by one."""

import dataclasses
import datetime as dt
import functools
import json
from collections import defaultdict
from collections.abc import Sequence

from django.db import models
from django.db.models import Min, Q

from lifecycle import clock
from lifecycle.bulk_updates import values_update
from lifecycle.events import reaction, sweep_memo
from lifecycle.locks import advisory_locks
from lifecycle.models import Event, Order, OrderLine
from lifecycle.rows import Table

from .enrollment import (
    ANCHOR_EVENTS,
    enrollment_exit,
    entry_reason,
    exit_reason,
    in_holdout,
    journey_filter_reason,
    step_delivery,
    triggers,
)
from .models import Delivery, Enrollment, Journey, Step
from .webhook_erasure import webhook_calls_erase

ORDER_FACT_TRIGGERS = (Journey.Trigger.FIRST_ORDER, Journey.Trigger.REPEAT_ORDER)


@reaction("journeys", batch=True)
def on_events(events: Sequence[Event]) -> None:
    """`enrollment.on_event` for many events of one tenant, each customer at most once."""
    events = [event for event in events if not event.backfill and event.customer_id is not None]
    if not events:
        return
    tenant_id = events[0].tenant_id
    if len({event.customer_id for event in events}) != len(events) or any(e.tenant_id != tenant_id for e in events):
        raise ValueError("a batch holds one tenant's events, each customer at most once")
    for event in events:
        if event.type == "customer.erased":
            webhook_calls_erase(tenant_id=tenant_id, customer_id=event.customer_id)
    waits_release(tenant_id, events)
    exits_apply(tenant_id, events)
    enroll(tenant_id, events)


def _history_entry(now: dt.datetime, state: str, reason: str) -> dict[str, str]:
    return {"at": now.isoformat(), "state": state, "reason": reason}


def waits_release(tenant_id: int, events: Sequence[Event]) -> int:
    """Deliveries waiting for their customer's event move to pending: one read, one UPDATE."""
    now = clock.now()
    by_customer = {event.customer_id: event for event in events}
    anchors = {event.type for event in events if event.type in ANCHOR_EVENTS.values()}
    others = {event.type for event in events} - anchors
    # A wait for an anchor (delivered_at…) is released by its own order's event only.
    concerned = Q(waiting_for__in=others) | Q(waiting_for__in=anchors, enrollment__order_id__in=[
        event.order_id for event in events if event.type in anchors and event.order_id is not None])
    waiting = Delivery.objects.for_tenant(tenant_id).filter(
        concerned, customer_id__in=list(by_customer), state__in=[Delivery.State.WAITING, Delivery.State.PENDING],
        enrollment__state=Enrollment.State.ACTIVE,
    ).order_by("pk").values_list("pk", "state", "customer_id", "waiting_for", "history", "enrollment__order_id",
                                 "step__wait_kind", "step__wait")
    rows = []
    for pk, state, customer_id, waiting_for, history, order_id, wait_kind, wait in waiting:
        event = by_customer[customer_id]
        if waiting_for != event.type:
            continue
        if event.type in anchors and event.order_id != order_id:
            continue
        due = event.occurred_at + wait if wait_kind == Step.WaitKind.AFTER_ANCHOR else now
        history = [*history, _history_entry(now, "pending", f"{event.type} happened")]
        rows.append((pk, state, due, json.dumps(history)))
    values_update(Delivery, tenant_id=tenant_id, rows=rows,
                  columns=[("id", "bigint"), ("state", "text"), ("due", "timestamptz"), ("history", "jsonb")],
                  set_sql="state = 'pending', due_at = v.due, waiting_for = '', wait_deadline = NULL, "
                          "history = v.history",
                  where="t.state = v.state")
    return len(rows)


@dataclasses.dataclass(frozen=True)
class _Running:
    """What `exit_reason` reads of an enrollment and of its journey."""

    pk: int
    customer_id: int
    order_id: int | None
    enrolled_at: dt.datetime
    exit_events: list[str]


def exits_apply(tenant_id: int, events: Sequence[Event]) -> int:
    """Active enrollments their customer's event ends: one UPDATE for the enrollments, one for
    their open deliveries (skipped with the reason), as `enrollment_exit` does for one. Only the
    enrollments of journeys that exit on one of the batch's event types are read."""
    by_customer = {event.customer_id: event for event in events}
    types = {event.type for event in events}
    every = sweep_memo(("journeys.exits", tenant_id), lambda: list(
        Journey.objects.for_tenant(tenant_id).exclude(exit_events=[]).values_list("pk", "exit_events")))
    exits = {pk: exit_events for pk, exit_events in every if set(exit_events or []) & types}
    if not exits:
        return 0
    active = Enrollment.objects.for_tenant(tenant_id).filter(
        customer_id__in=list(by_customer), journey_id__in=list(exits), state=Enrollment.State.ACTIVE,
    ).order_by("pk").values_list("pk", "journey_id", "customer_id", "order_id", "enrolled_at")
    ending = []
    for pk, journey_id, customer_id, order_id, enrolled_at in active:
        running = _Running(pk, customer_id, order_id, enrolled_at, exits[journey_id])
        reason = exit_reason(running, running, by_customer[customer_id])  # type: ignore[arg-type]
        if reason:
            ending.append((pk, reason))
    return exits_write(tenant_id, ending)


def exits_write(tenant_id: int, ending: Sequence[tuple[int, str]]) -> int:
    """End these active enrollments (id, reason) and skip their waiting and due deliveries."""
    if not ending:
        return 0
    now = clock.now()
    ended = values_update(Enrollment, tenant_id=tenant_id, rows=ending, columns=[("id", "bigint"), ("reason", "text")],
                          set_sql="state = 'exited', reason = v.reason, ended_at = %s", params=[now],
                          where="t.state = 'active'", returning="t.id, v.reason")
    open_states = [Delivery.State.WAITING, *Delivery.CLAIMABLE]
    # The history entry built here, not by jsonb_build_object() in the UPDATE: Citus refuses a STABLE function
    # of a column in an UPDATE.
    entries = [(pk, reason, json.dumps([{"at": now.isoformat(), "state": "skipped", "reason": reason}]))
               for pk, reason in ended]
    values_update(
        Delivery, tenant_id=tenant_id, rows=entries, columns=[("id", "bigint"), ("reason", "text"), ("entry", "jsonb")],
        set_sql="state = 'skipped', reason = v.reason, updated_at = %s, history = t.history || v.entry",
        params=[now, *open_states], key="enrollment_id",
        where="t.state IN (" + ", ".join(["%s"] * len(open_states)) + ")")
    return len(ended)


def _journeys(tenant_id: int) -> tuple[list[Journey], dict[int, Step]]:
    """The tenant's active journeys (priority order) and each one's first step, once per sweep."""
    return sweep_memo(("journeys.active", tenant_id), lambda: _journeys_load(tenant_id))


def _journeys_load(tenant_id: int) -> tuple[list[Journey], dict[int, Step]]:
    journeys = list(Journey.objects.for_tenant(tenant_id).filter(status=Journey.Status.ACTIVE)
                    .order_by("-priority", "pk"))
    first: dict[int, Step] = {}
    if journeys:
        for step in Step.objects.for_tenant(tenant_id).filter(journey_id__in=[j.pk for j in journeys]).order_by(
                "journey_id", "position"):
            first.setdefault(step.journey_id, step)
    return journeys, first


def enroll(tenant_id: int, events: Sequence[Event]) -> list[Enrollment]:
    """`journey_enroll` for every (event, journey it triggers): decisions from facts read in bulk,
    enrollments and first deliveries inserted in bulk. Locks every (journey, customer) first."""
    journeys, first_steps = _journeys(tenant_id)
    pairs = [(event, journey) for event in events for journey in journeys if triggers(journey, event.type, event.data)]
    if not pairs:
        return []
    advisory_locks(tenant_id, *sorted({(f"journey:{j.pk}", str(e.customer_id)) for e, j in pairs}))
    # Every enrollment of these customers in these journeys, in one read: the decisions made already
    # (an enrollment's customer is its trigger event's) and what the entry policies look at.
    known = list(Enrollment.objects.for_tenant(tenant_id).filter(
        journey_id__in={j.pk for _, j in pairs}, customer_id__in={e.customer_id for e, _ in pairs},
    ).values_list("journey_id", "customer_id", "order_id", "enrolled_at", "state", "trigger_event_id"))
    decided = {(journey_id, event_id) for journey_id, _, _, _, _, event_id in known}
    pairs = [(e, j) for e, j in pairs if (j.pk, e.pk) not in decided]
    if not pairs:
        return []
    facts = _Facts(tenant_id, pairs, known)
    now = clock.now()
    created: list[Enrollment] = []
    replaced: list[tuple[int, int]] = []
    for event, journey in pairs:
        customer, order = event.customer, event.order
        reason = journey_filter_reason(journey, customer, order, earlier=facts.earlier(journey, event),
                                       lines=facts.lines.get(event.order_id)) or entry_reason(
            journey, event.order_id, now, facts.previous[(journey.pk, event.customer_id)])
        row = Enrollment(tenant_id=tenant_id, journey=journey, customer=customer, order=order, trigger_event=event,
                         enrolled_at=now, state=Enrollment.State.ACTIVE)
        if reason:
            row.state, row.reason, row.ended_at = Enrollment.State.REJECTED, reason, now
        elif in_holdout(journey, customer.pk):
            row.state, row.ended_at = Enrollment.State.HOLDOUT, now
            row.reason = f"holdout group ({journey.holdout_percent}%): measured, not messaged"
        else:
            if journey.replace_running:
                replaced.append((journey.pk, event.customer_id))
            if journey.pk not in first_steps:
                row.state, row.ended_at, row.reason = Enrollment.State.COMPLETED, now, "the journey has no steps"
        created.append(row)
    if replaced:
        _replace_running(tenant_id, replaced)
    _table(Enrollment).insert(created)
    starting = [row for row in created if row.state == Enrollment.State.ACTIVE]
    happened = _events_since(tenant_id, [(row, first_steps[row.journey_id]) for row in starting], now)
    _table(Delivery).insert([
        step_delivery(enrollment=row, step=first_steps[row.journey_id], previous_at=now,
                      happened=(row.customer_id, first_steps[row.journey_id].wait_event) in happened)
        for row in starting], returning=False)
    return created


@functools.cache
def _table(model: type[models.Model]) -> Table:
    """Hand-written multi-row INSERTs (lifecycle/rows.py): less Python per row than bulk_create."""
    return Table(model)


def _events_since(tenant_id: int, rows: Sequence[tuple[Enrollment, Step]], now: dt.datetime) -> set[tuple[int, str]]:
    """(customer, event type) of the "until event" first steps whose event happened already (at or
    after enrolment, which is now for all of them): one read for the batch."""
    waits = {(row.customer_id, step.wait_event) for row, step in rows
             if step.wait_kind == Step.WaitKind.UNTIL_EVENT and step.wait_event}
    if not waits:
        return set()
    found = Event.objects.for_tenant(tenant_id).filter(
        customer_id__in={c for c, _ in waits}, type__in={t for _, t in waits}, occurred_at__gte=now,
    ).values_list("customer_id", "type").distinct()
    return set(found) & waits


def _replace_running(tenant_id: int, replaced: Sequence[tuple[int, int]]) -> None:
    """A newer order restarts a `replace_running` journey: its running instances end first."""
    journeys = {journey_id for journey_id, _ in replaced}
    running = Enrollment.objects.for_tenant(tenant_id).filter(
        journey_id__in=journeys, customer_id__in={customer for _, customer in replaced},
        state=Enrollment.State.ACTIVE).order_by("pk")
    for enrollment in running:
        if (enrollment.journey_id, enrollment.customer_id) in replaced:
            enrollment_exit(enrollment=enrollment, reason="replaced: a newer order started this journey again")


class _Facts:
    """What the enrollment decisions of a batch read, in a few queries for all of it."""

    def __init__(self, tenant_id: int, pairs: Sequence[tuple[Event, Journey]], known: Sequence[tuple]):
        """`known`: the enrollments of the pairs' customers in their journeys (journey, customer,
        order, enrolled_at, state, trigger event), as `enroll` read them."""
        self.previous: dict[tuple[int, int], list[tuple[int | None, dt.datetime]]] = defaultdict(list)
        for journey_id, customer_id, order_id, enrolled_at, state, _ in known:
            if state != Enrollment.State.REJECTED:
                self.previous[(journey_id, customer_id)].append((order_id, enrolled_at))
        self.first_paid: dict[int, dt.datetime] = {}
        ordered = {e.customer_id for e, j in pairs if j.trigger in ORDER_FACT_TRIGGERS and e.order is not None}
        if ordered:
            self.first_paid = dict(Order.objects.for_tenant(tenant_id).filter(
                customer_id__in=ordered, paid_at__isnull=False).values("customer_id").annotate(
                first=Min("paid_at")).values_list("customer_id", "first"))
        with_lines = {e.order_id for e, j in pairs
                      if e.order is not None and ((j.filters or {}).get("skus") or (j.filters or {}).get("product_ids"))}
        self.lines: dict[int, list[OrderLine]] = {order_id: [] for order_id in with_lines}
        if with_lines:
            for line in OrderLine.objects.for_tenant(tenant_id).filter(order_id__in=with_lines):
                self.lines[line.order_id].append(line)

    def earlier(self, journey: Journey, event: Event) -> bool | None:
        """A paid order of the customer's before this event's order (first / repeat order)."""
        if journey.trigger not in ORDER_FACT_TRIGGERS or event.order is None:
            return None
        if event.order.paid_at is None:
            raise ValueError(f"order {event.order_id} is not paid")  # as the per-event query fails
        first = self.first_paid.get(event.customer_id)
        return first is not None and first < event.order.paid_at
