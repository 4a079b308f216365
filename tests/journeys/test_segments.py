"""Segments: the same rules as a condition, counted live, sampled, exported, used to let customers in,
to take them out, and (entering one) to start a journey; and the date and support triggers."""

import datetime as dt

import pytest

from journeys.models import Delivery, Enrollment, Journey, Segment, SegmentMember
from journeys.segments import (
    SegmentIn,
    builtin_definition,
    segment_count_and_sample,
    segment_csv_rows,
    segment_save,
    segments_refresh,
)
from journeys.triggers import date_events_append
from lifecycle import clock
from lifecycle.errors import Conflict, ServiceError
from lifecycle.models import Customer, Event
from loyalty.models import LoyaltyAccount

from .helpers import process_events
from .test_engine import NOON, paid_order, send_due
from .test_graph import email

pytestmark = pytest.mark.django_db


def customers_with_orders(api, counts: dict[str, int]) -> None:
    with clock.frozen(NOON):
        for name, n in counts.items():
            for i in range(n):
                paid_order(api, external_id=f"{name}-{i}", customer={"external_id": name})
        process_events()


def test_a_segment_counts_samples_and_exports_exactly_its_customers(api, tenant):
    customers_with_orders(api, {"one": 1, "two": 2, "three": 3, "four": 4})
    segment = segment_save(tenant=tenant, data=SegmentIn(name="Repeat", rules=[
        {"field": "order_count", "op": ">=", "value": 2}, {"field": "order_count", "op": "<", "value": 4}]))
    count, sample = segment_count_and_sample(segment=segment, now=NOON)
    assert (count, [c.external_id for c in sample]) == (2, ["three", "two"])
    rows = list(segment_csv_rows(segment=segment, now=NOON))
    assert rows[0] == ["external_id", "email", "first_name", "last_name", "order_count", "total_spent",
                       "last_order_at"]
    assert [(r[0], r[4]) for r in rows[1:]] == [("two", "2"), ("three", "3")]

    with pytest.raises(Conflict):
        segment_save(tenant=tenant, data=SegmentIn(name="Repeat", rules=[{"field": "order_count", "value": 1}]))
    assert Segment.objects.for_tenant(tenant).count() == 1


def test_a_segment_refuses_rules_that_need_a_journey():
    with pytest.raises(ValueError) as error:
        SegmentIn(name="x", rules=[{"field": "clicked_step", "step": 1},
                                   {"field": "bought", "sku": "A", "when": "this_order"}])
    assert [(e["loc"], e["msg"]) for e in error.value.errors()] == [
        (("rules", 0, "field"), "clicked_step reads a journey's enrollment, which a segment has not: test the "
                                "customer instead"),
        (("rules", 1, "when"), "'this_order' needs a triggering order, which a segment has not: use ever or within")]


def test_builtin_segments_select_who_a_store_expects(api, tenant):
    customers_with_orders(api, {"loyal": 3, "once": 1})
    with clock.frozen(NOON):
        api.post("/api/v1/events", {"type": "feature.used", "customer": {"external_id": "loyal"},
                                    "data": {"name": "export"}})
    Customer.objects.for_tenant(tenant).filter(external_id="once").update(last_order_at=NOON - dt.timedelta(days=61))
    found = {}
    for key in ("champions", "one_time_past_window", "never_reviewed", "underused_feature", "detractors"):
        segment = segment_save(tenant=tenant, data=builtin_definition(key, feature="export"), builtin=key)
        found[segment.name] = sorted(c.external_id for c in segment_count_and_sample(segment=segment, now=NOON)[1])
    assert found == {"Champions": ["loyal"], "One-time buyers past their repeat window": ["once"],
                     "Never reviewed": ["loyal", "once"], "Underused feature: export": ["once"], "Detractors": []}
    with pytest.raises(ServiceError):
        builtin_definition("underused_feature", feature=" ")


def test_entering_a_segment_starts_its_journey_once_and_the_first_refresh_only_takes_note(api, tenant):
    customers_with_orders(api, {"early": 3, "later": 2})
    segment = segment_save(tenant=tenant, data=builtin_definition("champions"))
    body = {"name": "Welcome, champion", "trigger": "segment_entered", "trigger_config": {"segment": segment.pk},
            "status": "active", "message_class": "transactional", "steps": [email(1, "You are a champion")]}
    assert api.post("/api/v1/journeys", body).status_code == 201
    journey = Journey.objects.for_tenant(tenant).get(name="Welcome, champion")

    assert segments_refresh(tenant=tenant, now=NOON) == 0  # the baseline: "early" was already in it
    with clock.frozen(NOON):
        paid_order(api, external_id="later-2", customer={"external_id": "later"})
        process_events()
    assert segments_refresh(tenant=tenant, now=NOON + dt.timedelta(minutes=15)) == 1
    assert segments_refresh(tenant=tenant, now=NOON + dt.timedelta(minutes=30)) == 0
    with clock.frozen(NOON + dt.timedelta(minutes=30)):
        process_events()
    assert list(journey.enrollments.values_list("customer__external_id", "state")) == [("later", "active")]
    assert set(SegmentMember.objects.for_tenant(tenant).values_list("customer__external_id", flat=True)) == {
        "early", "later"}


def test_a_segment_as_entry_filter_and_as_exit_condition(api, tenant):
    champions = segment_save(tenant=tenant, data=builtin_definition("champions"))
    many = segment_save(tenant=tenant, data=SegmentIn(name="Five orders", rules=[
        {"field": "order_count", "op": ">=", "value": 5}]))
    body = {"name": "Champions only", "trigger": "order_paid", "status": "active", "message_class": "transactional",
            "filters": {"segment": champions.pk, "exit_segment": many.pk},
            "steps": [email(1, "Hello champion", wait="P1D")]}
    assert api.post("/api/v1/journeys", body).status_code == 201
    journey = Journey.objects.for_tenant(tenant).get(name="Champions only")
    customers_with_orders(api, {"small": 1, "big": 3, "huge": 5})

    states = {(e.customer.external_id, e.order.external_id): (e.state, e.reason)
              for e in journey.enrollments.select_related("customer", "order")}
    assert states[("small", "small-0")] == ("rejected", "filter: not in segment 'Champions'")
    assert states[("big", "big-2")] == ("active", "")
    assert states[("huge", "huge-4")] == ("active", "")
    while send_due(NOON + dt.timedelta(days=1)):
        pass
    sent = {d.customer.external_id: (d.state, d.reason) for d in Delivery.objects.for_tenant(tenant).filter(
        journey=journey, enrollment__order__external_id__in=["big-2", "huge-4"]).select_related("customer")}
    assert sent == {"big": ("sent", ""), "huge": ("skipped", "exit: in segment 'Five orders'")}
    assert Enrollment.objects.for_tenant(tenant).get(order__external_id="huge-4").reason == (
        "exit: in segment 'Five orders'")


def test_an_unknown_segment_is_a_400_and_writes_nothing(api, tenant):
    body = {"name": "x", "trigger": "segment_entered", "trigger_config": {"segment": 999999},
            "steps": [email(1, "Hi")]}
    response = api.post("/api/v1/journeys", body)
    assert response.status_code == 400
    assert response.json()["fields"] == {"trigger_config.segment": [
        "no segment with id 999999 in this store: see Segments in the workspace"]}
    assert not Journey.objects.for_tenant(tenant).exists()


def test_date_triggers_birthday_anniversary_and_days_since_last_order(api, tenant):
    with clock.frozen(NOON - dt.timedelta(days=365)):
        paid_order(api, external_id="a", customer={"external_id": "anniv"}, placed_at="2025-11-23T08:00:00Z")
    with clock.frozen(NOON - dt.timedelta(days=60)):
        paid_order(api, external_id="b", customer={"external_id": "lapsed"}, placed_at="2026-09-24T08:00:00Z")
    with clock.frozen(NOON):
        paid_order(api, external_id="c", customer={"external_id": "bday"})
        process_events()
    bday = Customer.objects.for_tenant(tenant).get(external_id="bday")
    LoyaltyAccount.objects.for_tenant(tenant).create(tenant=tenant, customer=bday, birthday=dt.date(1990, 11, 23))
    journeys = {}
    for name, config in (("Birthday", {"fact": "birthday"}), ("Anniversary", {"fact": "order_anniversary"}),
                         ("Lapsed", {"fact": "days_since_last_order", "days": 60}),
                         ("Lapsed 90", {"fact": "days_since_last_order", "days": 90})):
        body = {"name": name, "trigger": "date", "trigger_config": config, "status": "active",
                "message_class": "transactional", "steps": [email(1, name)]}
        assert api.post("/api/v1/journeys", body).status_code == 201, api.post("/api/v1/journeys", body).content
        journeys[name] = Journey.objects.for_tenant(tenant).get(name=name)

    assert date_events_append(tenant=tenant, now=NOON) == 3
    assert date_events_append(tenant=tenant, now=NOON + dt.timedelta(hours=1)) == 0  # once a day
    with clock.frozen(NOON):
        process_events()
    entered = {name: list(j.enrollments.values_list("customer__external_id", flat=True))
               for name, j in journeys.items()}
    assert entered == {"Birthday": ["bday"], "Anniversary": ["anniv"], "Lapsed": ["lapsed"], "Lapsed 90": []}
    assert Event.objects.for_tenant(tenant).get(type="date.reached", customer__external_id="anniv").data == {
        "fact": "order_anniversary", "date": "2026-11-23", "years": 1}


def test_support_contacted_starts_the_journey_of_its_topic_only(api, tenant):
    for name, topics in (("Shipping help", ["shipping"]), ("Any help", [])):
        body = {"name": name, "trigger": "support_contacted", "trigger_config": {"topics": topics},
                "status": "active", "message_class": "transactional", "steps": [email(1, name)]}
        assert api.post("/api/v1/journeys", body).status_code == 201
    with clock.frozen(NOON):
        for customer, topic in (("c1", "Shipping"), ("c2", "returns")):
            api.post("/api/v1/events", {"type": "support.contacted", "customer": {"external_id": customer},
                                        "data": {"topic": topic}})
        process_events()
    entered = sorted(Enrollment.objects.for_tenant(tenant).values_list("journey__name", "customer__external_id"))
    assert entered == [("Any help", "c1"), ("Any help", "c2"), ("Shipping help", "c1")]


def test_the_bulk_health_levels_are_the_customer_pages_one_by_one(api, tenant):
    from journeys.health import customer_health, health_levels

    with clock.frozen(NOON - dt.timedelta(days=200)):
        paid_order(api, external_id="old", customer={"external_id": "overdue"}, placed_at="2026-05-07T08:00:00Z")
    with clock.frozen(NOON - dt.timedelta(days=100)):
        paid_order(api, external_id="old2", customer={"external_id": "overdue"}, placed_at="2026-08-15T08:00:00Z")
    with clock.frozen(NOON):
        paid_order(api, external_id="new", customer={"external_id": "fresh"})
        paid_order(api, external_id="sup", customer={"external_id": "support"})
        for i in range(3):
            api.post("/api/v1/events", {"type": "support.contacted", "customer": {"external_id": "support"},
                                        "idempotency_key": f"k{i}"})
        api.post("/api/v1/events", {"type": "feature.used", "customer": {"external_id": "fresh"}})
        process_events()
    customers = list(Customer.objects.for_tenant(tenant).select_related("tenant").order_by("external_id"))
    one_by_one = {c.external_id: customer_health(tenant=tenant, customer=c, now=NOON).level for c in customers}
    bulk = health_levels(tenant=tenant, customers=customers, now=NOON)
    assert {c.external_id: bulk[c.pk] for c in customers} == one_by_one
    assert one_by_one == {"fresh": "green", "overdue": "amber", "support": "red"}
