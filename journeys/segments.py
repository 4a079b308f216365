"""Segments: saved audiences built from the conditions' vocabulary (journeys.rules), counted and sampled
live, exported as CSV, used as a journey's entry filter or exit condition, as a dashboard filter, and
(entering one) as a trigger.

Who is in a segment is asked of the database (journeys.conditions: one query for the SQL rules),
then of Python for the rules it cannot ask in SQL (health band). `segments_refresh` records who is in
each segment a journey starts on, and appends `segment.entered` for the customers new since the last
refresh (the first refresh only takes note: nobody "enters" a segment that was just made).
"""

import datetime as dt
from collections.abc import Iterator
from typing import Any, Literal

from django.db import IntegrityError, transaction
from django.db.models import Q
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lifecycle import clock
from lifecycle.errors import Conflict, NotFound, ServiceError
from lifecycle.models import Customer, Tenant
from lifecycle.numbers import whole_number
from lifecycle.timeline import event_append

from .conditions import customer_holds, customers_holding, customers_matching
from .models import Journey, Segment, SegmentMember
from .rules import RuleIn, fail, journey_only_problems

# The sample a segment's page shows.
SAMPLE_SIZE = 10
# Candidates checked in Python (health band) per segment at most: a bound on a page's work.
PYTHON_CANDIDATES_MAX = 50_000
# Candidates read and checked together: a few queries per chunk (journeys.health.health_facts).
CHUNK = 1000


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=500)
    match: Literal["all", "any"] = "all"
    rules: list[RuleIn] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _about_the_customer(self) -> "SegmentIn":
        fail(journey_only_problems(self.rules, "a segment"), "SegmentIn")
        return self

    def stored_rules(self) -> list[dict[str, Any]]:
        return [rule.model_dump(mode="json", exclude_none=True) for rule in self.rules]


def _builtin(name: str, description: str, rules: list[dict[str, Any]], match: str = "all") -> dict[str, Any]:
    return {"name": name, "description": description, "match": match, "rules": rules}


# What a store expects on day one. `{feature}` is the feature name the marketer gives.
BUILTINS: dict[str, dict[str, Any]] = {
    "at_risk": _builtin("At risk", "Health is red: a bad score, repeated support contacts, or long overdue.",
                        [{"field": "health_band", "value": "red"}]),
    "champions": _builtin("Champions", "Three orders or more, the last within 90 days.",
                          [{"field": "order_count", "op": ">=", "value": 3},
                           {"field": "days_since_last_order", "op": "<=", "value": 90}]),
    "one_time_past_window": _builtin(
        "One-time buyers past their repeat window", "One order, more than 60 days ago: a second order is overdue.",
        [{"field": "order_count", "op": "==", "value": 1}, {"field": "days_since_last_order", "op": ">", "value": 60}]),
    "detractors": _builtin("Detractors", "Latest NPS answer 0–6.", [{"field": "latest_nps", "op": "<=", "value": 6}]),
    "never_reviewed": _builtin("Never reviewed", "Ordered, and never wrote a review.",
                               [{"field": "order_count", "op": ">=", "value": 1},
                                {"field": "did_event", "event": "review.submitted", "value": False}]),
    "underused_feature": _builtin(
        "Underused feature: {feature}", "Ordered, and has not used {feature} in the last 30 days.",
        [{"field": "order_count", "op": ">=", "value": 1},
         {"field": "did_event", "event": "feature.used", "data": {"name": "{feature}"}, "days": 30, "value": False}]),
}


def _fill(value: Any, feature: str) -> Any:
    if isinstance(value, str):
        return value.replace("{feature}", feature)
    if isinstance(value, dict):
        return {k: _fill(v, feature) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, feature) for v in value]
    return value


def builtin_definition(key: str, *, feature: str = "") -> SegmentIn:
    """A built-in segment's definition, validated (the underused-feature one needs the feature's name)."""
    if key not in BUILTINS:
        raise NotFound("segments.unknown_builtin", f"no built-in segment {key!r}")
    if "{feature}" in str(BUILTINS[key]) and not feature.strip():
        raise ServiceError("validation_failed", "name the feature, as your app sends it in feature.used's name",
                           {"feature": ["name the feature, as your app sends it in feature.used's name"]})
    return SegmentIn.model_validate(_fill(BUILTINS[key], feature.strip()))


# --- writes ---------------------------------------------------------------------------


def segment_save(*, tenant: Tenant, data: SegmentIn, segment_id: int | None = None, builtin: str = "") -> Segment:
    """Create a segment, or change one (by id). A name already used in the store is a 409."""
    values = {"name": data.name, "description": data.description, "match": data.match, "rules": data.stored_rules()}
    try:
        with transaction.atomic():
            if segment_id is None:
                return Segment.objects.for_tenant(tenant).create(tenant=tenant, builtin=builtin, **values)
            segment = segment_get(tenant=tenant, segment_id=segment_id)
            changed = segment.rules != values["rules"] or segment.match != values["match"]
            for name, value in values.items():
                setattr(segment, name, value)
            if changed:  # who is in it now says nothing about who "entered" under the old rules
                segment.refreshed_at = None
                SegmentMember.objects.for_tenant(tenant).filter(segment=segment).delete()
            segment.save()
            return segment
    except IntegrityError as exc:
        raise Conflict("segments.name_taken", f"a segment named {data.name!r} already exists",
                       {"name": ["is already the name of another segment"]}) from exc


def segment_users(*, tenant: Tenant | int, segment: Segment) -> list[str]:
    """The journeys that name the segment (entry filter, exit condition, trigger)."""
    journeys = Journey.objects.for_tenant(tenant).filter(
        Q(filters__segment=segment.pk) | Q(filters__exit_segment=segment.pk)
        | Q(trigger=Journey.Trigger.SEGMENT_ENTERED, trigger_config__segment=segment.pk))
    return list(journeys.order_by("name").values_list("name", flat=True))


def segment_delete(*, tenant: Tenant, segment_id: int) -> None:
    segment = segment_get(tenant=tenant, segment_id=segment_id)
    users = segment_users(tenant=tenant, segment=segment)
    if users:
        raise Conflict("segments.in_use", f"journeys use this segment: {', '.join(users)}. Change them first",
                       {"segment": [f"used by {', '.join(users)}"]})
    segment.delete()


# --- reads ----------------------------------------------------------------------------


def segment_get(*, tenant: Tenant | int, segment_id: Any) -> Segment:
    pk = whole_number(str(segment_id), minimum=1)
    segment = Segment.objects.for_tenant(tenant).filter(pk=pk).first() if pk is not None else None
    if segment is None:
        raise NotFound("segments.not_found", f"no segment with id {segment_id}")
    return segment


def _members(tenant_id: int, match: str, rules: list[dict[str, Any]], now: dt.datetime) -> Iterator[Customer]:
    customers, python = customers_matching(tenant_id=tenant_id, match=match, rules=rules, now=now)
    if not python:
        yield from customers.order_by("pk").iterator(chunk_size=2000)
        return
    # The Python rules (health band) a chunk of candidates at a time: a few queries per chunk.
    chunk: list[Customer] = []
    for customer in customers.order_by("pk")[:PYTHON_CANDIDATES_MAX].iterator(chunk_size=CHUNK):
        chunk.append(customer)
        if len(chunk) == CHUNK:
            yield from customers_holding(chunk, tenant_id=tenant_id, match=match, rules=rules, now=now)
            chunk = []
    if chunk:
        yield from customers_holding(chunk, tenant_id=tenant_id, match=match, rules=rules, now=now)


def segment_member_ids(*, segment: Segment, now: dt.datetime | None = None) -> list[int]:
    """Who is in the segment now (customer ids, ascending)."""
    now = now or clock.now()
    customers, python = customers_matching(tenant_id=segment.tenant_id, match=segment.match, rules=segment.rules,
                                           now=now)
    if not python:
        return list(customers.order_by("pk").values_list("pk", flat=True))
    return [c.pk for c in _members(segment.tenant_id, segment.match, segment.rules, now)]


def segment_count_and_sample(*, segment: Segment, now: dt.datetime | None = None,
                             sample: int = SAMPLE_SIZE) -> tuple[int, list[Customer]]:
    """The live count and the first customers (newest first) of the segment."""
    now = now or clock.now()
    customers, python = customers_matching(tenant_id=segment.tenant_id, match=segment.match, rules=segment.rules,
                                           now=now)
    if not python:
        return customers.count(), list(customers.order_by("-pk")[:sample])
    ids = segment_member_ids(segment=segment, now=now)
    return len(ids), list(Customer.objects.for_tenant(segment.tenant_id).filter(pk__in=ids[-sample:]).order_by("-pk"))


def segment_members_among(*, segment: Segment, customer_ids: set[int], now: dt.datetime) -> set[int]:
    """Which of these customers are in the segment: one query, plus the Python rules for each candidate."""
    customers, python = customers_matching(tenant_id=segment.tenant_id, match=segment.match, rules=segment.rules,
                                           now=now)
    customers = customers.filter(pk__in=customer_ids)
    if not python:
        return set(customers.values_list("pk", flat=True))
    return {c.pk for c in customers_holding(list(customers), tenant_id=segment.tenant_id, match=segment.match,
                                            rules=segment.rules, now=now)}


def customer_in_segment(*, segment: Segment, customer: Customer, now: dt.datetime | None = None) -> bool:
    return customer_holds(customer, match=segment.match, rules=segment.rules, now=now or clock.now())


CSV_COLUMNS = ("external_id", "email", "first_name", "last_name", "order_count", "total_spent", "last_order_at")


def segment_csv_rows(*, segment: Segment, now: dt.datetime | None = None) -> Iterator[list[str]]:
    """The header, then one row per customer in the segment (ids ascending)."""
    yield list(CSV_COLUMNS)
    now = now or clock.now()
    for customer in _members(segment.tenant_id, segment.match, segment.rules, now):
        yield ["" if getattr(customer, c) is None else str(getattr(customer, c)) if c != "last_order_at"
               else customer.last_order_at.isoformat() if customer.last_order_at else "" for c in CSV_COLUMNS]


# --- the refresh: entering a segment --------------------------------------------------


def segments_refresh(*, tenant: Tenant, now: dt.datetime | None = None) -> int:
    """For each segment an active journey starts on: record who is in it, and append `segment.entered`
    for each customer new since the last refresh (none on its first). Returns the events appended.
    Idempotent per (segment, customer, day) by the event's dedupe key; locks nothing but its rows."""
    now = now or clock.now()
    used = Journey.objects.for_tenant(tenant).filter(
        trigger=Journey.Trigger.SEGMENT_ENTERED, status=Journey.Status.ACTIVE).values_list("trigger_config", flat=True)
    segment_ids = {config.get("segment") for config in used if isinstance(config, dict)}
    appended = 0
    for segment in Segment.objects.for_tenant(tenant).filter(pk__in=[s for s in segment_ids if s]).order_by("pk"):
        current = set(segment_member_ids(segment=segment, now=now))
        with transaction.atomic():
            members = SegmentMember.objects.for_tenant(tenant).filter(segment=segment)
            known = set(members.values_list("customer_id", flat=True))
            members.filter(customer_id__in=known - current).delete()
            new = sorted(current - known)
            SegmentMember.objects.for_tenant(tenant).bulk_create(
                [SegmentMember(tenant=tenant, segment=segment, customer_id=c, entered_at=now) for c in new],
                ignore_conflicts=True)
            if segment.refreshed_at is not None:
                for customer in Customer.objects.for_tenant(tenant).filter(pk__in=new).order_by("pk"):
                    try:
                        with transaction.atomic():
                            event_append(tenant=tenant, type="segment.entered", occurred_at=now, customer=customer,
                                         data={"segment_id": segment.pk, "segment": segment.name},
                                         dedupe_key=f"segment:{segment.pk}:{customer.pk}:{now.date().isoformat()}")
                        appended += 1
                    except IntegrityError:
                        pass  # entered, left and entered again today: one event a day is enough
            Segment.objects.for_tenant(tenant).filter(pk=segment.pk).update(refreshed_at=now)
    return appended
