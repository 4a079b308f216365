"""GET /api/v1/customers/{external_id}/journeys says, for each journey, what happened and why."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from journeys.models import Delivery, Journey, Step
from lifecycle import clock
from lifecycle.models import Customer
from tests.factories import order_payload

from .helpers import at, make_journey, process_events
from .test_engine import send_due
from .test_tracking import pm_delivery, pm_open, postmark

pytestmark = pytest.mark.django_db

NOON = at("2026-11-23T09:00:00+00:00")  # 10:00 in Berlin, the store's (and customers') zone


def order(api, external_id="O1", **overrides):
    customer = {"external_id": "c-42", "email": "ada@example.com", "marketing_consent": True,
                **overrides.pop("customer", {})}
    body = order_payload(external_id=external_id, customer=customer, placed_at="2026-11-23T08:00:00Z", **overrides)
    assert api.post("/api/v1/orders", body).status_code == 201


def explain(api, journey=None) -> dict:
    response = api.get("/api/v1/customers/c-42/journeys", {"journey": journey.pk} if journey else None)
    assert response.status_code == 200, response.content
    return response.json()


def only(api, journey) -> dict:
    [item] = explain(api, journey)["journeys"]
    assert item["journey_id"] == journey.pk
    return item


def test_not_enrolled_because_of_a_filter(api, tenant):
    journey = make_journey(tenant, name="Big spenders", filters={"min_total": "100"})
    with clock.frozen(NOON):
        order(api, total="20.00", lines=[])
        process_events()

    item = only(api, journey)

    assert item["summary"] == "Not enrolled: filter: order total 20.00 is below 100"
    assert (item["enrolled"], item["next_step"], item["enrollments_total"]) == (False, None, 1)
    [decision] = item["enrollments"]
    assert (decision["state"], decision["reason"]) == ("rejected", "filter: order total 20.00 is below 100")
    assert (decision["order_external_id"], decision["trigger_event"]) == ("O1", "order.paid")
    assert decision["steps"] == []


def test_not_enrolled_because_of_the_entry_policy(api, tenant):
    journey = make_journey(tenant, name="Once", entry_policy=Journey.EntryPolicy.ONCE_PER_CUSTOMER)
    with clock.frozen(NOON):
        order(api, "O1")
        order(api, "O2")
        process_events()

    item = only(api, journey)

    second, first = item["enrollments"]
    assert second["order_external_id"] == "O2" and second["state"] == "rejected"
    assert second["summary"] == "Not enrolled: entry: already went through this journey (once per customer)"
    assert first["state"] == "active"
    # The journey's summary speaks of the running enrollment.
    assert item["enrolled"] is True
    assert item["summary"] == "Step 1 due 2026-11-24 10:00"


def test_holdout(api, tenant):
    journey = make_journey(tenant, holdout_percent=100)
    with clock.frozen(NOON):
        order(api)
        process_events()

    item = only(api, journey)

    assert item["summary"] == "Not messaged: holdout group (100%): measured, not messaged"
    assert item["enrolled"] is False and item["enrollments"][0]["state"] == "holdout"


def test_exited_by_a_refund(api, tenant):
    journey = make_journey(tenant, steps=[("P14D", "Review request")], exit_events=["order.refunded"])
    with clock.frozen(NOON):
        order(api, total="50.00", lines=[])
        process_events()
    with clock.frozen(NOON + dt.timedelta(days=2)):
        assert api.post("/api/v1/orders/O1/refunds", {"external_id": "r1", "amount": "50.00"}).status_code == 201
        process_events()

    item = only(api, journey)

    assert item["summary"] == "Exited 2026-11-25 10:00 (exit: order.refunded)"
    [step] = item["enrollments"][0]["steps"]
    assert (step["state"], step["summary"]) == ("skipped", "Step 1 skipped: exit: order.refunded")
    assert item["next_step"] is None


def test_step_skipped_for_no_consent_with_its_history(api, tenant):
    journey = make_journey(tenant)
    with clock.frozen(NOON):
        order(api, customer={"marketing_consent": False})
        process_events()
    assert send_due(NOON + dt.timedelta(days=1)) == ["skipped"]

    item = only(api, journey)

    [step] = item["enrollments"][0]["steps"]
    assert step["summary"] == "Step 1 skipped: no marketing consent"
    assert [(h["state"], h["reason"]) for h in step["history"]] == [("skipped", "no marketing consent")]
    assert step["history"][0]["at"] == "2026-11-24T09:00:00Z"
    assert item["summary"] == "Completed 2026-11-24 10:00 (all steps done)"


def test_deferred_by_quiet_hours_says_until_when(api, tenant):
    journey = make_journey(tenant, steps=[("PT13H", "Evening")])
    with clock.frozen(NOON):  # due 23:00 in Berlin
        order(api, customer={"time_zone": "Europe/Berlin"})
        process_events()
    assert send_due(NOON + dt.timedelta(hours=13)) == ["deferred"]

    body = explain(api, journey)

    assert body["time_zone"] == "Europe/Berlin"
    [item] = body["journeys"]
    expected = "Step 1 deferred until 2026-11-24 08:00 (quiet hours in the customer's time zone)"
    assert item["summary"] == expected
    assert item["next_step"] == {"position": 1, "state": "deferred", "due_at": "2026-11-24T07:00:00Z",
                                 "summary": expected}
    [step] = item["enrollments"][0]["steps"]
    assert step["history"][-1]["state"] == "deferred"


def test_sent_with_what_the_esp_said_and_what_is_next(api, tenant, settings):
    journey = make_journey(tenant, steps=[("P1D", "Setup tips"), ("P6D", "How is it going?")])
    with clock.frozen(NOON):
        order(api)
        process_events()
    assert send_due(NOON + dt.timedelta(days=1)) == ["sent"]

    item = only(api, journey)

    first, second = item["enrollments"][0]["steps"]
    assert (first["state"], first["sent_at"]) == ("sent", "2026-11-24T09:00:00Z")
    assert first["summary"] == "Step 1 sent 2026-11-24 10:00"
    assert second["summary"] == "Step 2 due 2026-11-30 10:00"
    assert item["summary"] == "Step 2 due 2026-11-30 10:00"
    assert item["next_step"]["position"] == 2

    # What the ESP said about it joins the sentence.
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass"}
    delivery = Delivery.objects.for_tenant(tenant).get(state="sent")
    for payload in (pm_delivery(delivery), pm_open(delivery)):
        assert postmark(payload).status_code == 200
    first = only(api, journey)["enrollments"][0]["steps"][0]
    assert first["summary"] == "Step 1 sent 2026-11-24 10:00; delivered, opened"
    assert first["opened_at"] == "2026-11-24T09:12:41.249368Z"
    assert [h["reason"] for h in first["history"]] == ["", "Postmark: delivered", "Postmark: opened"]


def test_waiting_for_the_delivery_anchor(api, tenant):
    journey = make_journey(tenant, steps=[("P1D", "Setup tips")])
    Step.objects.for_tenant(tenant).filter(journey=journey).update(wait_kind="after_anchor", anchor="delivered_at")
    with clock.frozen(NOON):
        order(api)
        process_events()

    item = only(api, journey)

    expected = "Step 1 waiting for the order to be delivered, then due 1 day later (gives up 2026-12-23 10:00)"
    assert item["summary"] == expected
    assert item["next_step"] == {"position": 1, "state": "waiting", "due_at": None, "summary": expected}
    assert item["enrollments"][0]["steps"][0]["waiting_for"] == "order.delivered"


def test_an_active_journey_whose_trigger_never_fired(api, tenant):
    journey = make_journey(tenant, name="Delivered", trigger=Journey.Trigger.ORDER_DELIVERED)
    make_journey(tenant, name="Draft", status=Journey.Status.DRAFT)
    with clock.frozen(NOON):
        order(api)
        process_events()

    [item] = explain(api)["journeys"]  # the draft never decided anything: not listed

    assert item["journey_id"] == journey.pk
    assert item["summary"] == ("Not enrolled: the trigger never fired for this customer "
                               "(starts when an order is delivered; no order.delivered yet)")
    assert (item["enrolled"], item["enrollments"]) == (False, [])


def test_a_journey_activated_after_the_trigger_fired(api, tenant):
    with clock.frozen(NOON):
        order(api)
        process_events()
    journey = make_journey(tenant, name="Late")
    Journey.objects.for_tenant(tenant).filter(pk=journey.pk).update(created_at=NOON + dt.timedelta(hours=1))

    assert only(api, journey)["summary"].startswith("Not enrolled: the last order.paid (2026-11-23 09:00) came before")


def test_explain_lists_every_journey_and_filters_by_one(api, tenant):
    a = make_journey(tenant, name="A", priority=5)
    b = make_journey(tenant, name="B", filters={"min_total": "1000"})
    with clock.frozen(NOON):
        order(api)
        process_events()

    assert [j["name"] for j in explain(api)["journeys"]] == ["A", "B"]  # by priority, then name
    assert [j["name"] for j in explain(api, b)["journeys"]] == ["B"]
    assert explain(api, a)["customer_external_id"] == "c-42"


def test_bad_journey_parameter_and_unknown_ids(api, tenant, other_tenant):
    with clock.frozen(NOON):
        order(api)
    foreign = make_journey(other_tenant, name="Theirs")

    bad = api.get("/api/v1/customers/c-42/journeys", {"journey": "one"})
    assert bad.status_code == 400
    assert bad.json() == {"code": "validation_failed", "message": "journey must be a whole number from 1",
                          "fields": {"journey": ["must be a whole number from 1"]}}
    theirs = api.get("/api/v1/customers/c-42/journeys", {"journey": foreign.pk})
    missing = api.get("/api/v1/customers/c-42/journeys", {"journey": foreign.pk + 1000})
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["code"] == "journeys.not_found"
    nobody = api.get("/api/v1/customers/nobody/journeys")
    assert (nobody.status_code, nobody.json()["code"]) == (404, "customers.not_found")


def test_explain_is_a_fixed_number_of_queries(api, tenant, django_assert_max_num_queries):
    for name in ("A", "B", "C"):
        make_journey(tenant, name=name, steps=[("P1D", "one"), ("P2D", "two")])
    make_journey(tenant, name="D", trigger=Journey.Trigger.ORDER_DELIVERED)
    with clock.frozen(NOON):
        for n in range(3):
            order(api, f"O{n}")
        process_events()

    # key lookup, customer, journeys, enrollments, deliveries, steps, one trigger-event lookup
    with django_assert_max_num_queries(8):
        assert len(explain(api)["journeys"]) == 4


def test_the_admin_shows_the_same_explanation(api, tenant):
    make_journey(tenant, name="Big spenders", filters={"min_total": "100"})
    with clock.frozen(NOON):
        order(api, total="20.00", lines=[])
        process_events()
    customer = Customer.objects.for_tenant(tenant).get()
    users = get_user_model().objects
    admin = Client()
    admin.force_login(users.create_superuser("root", "root@example.com", "pw"))
    staff = Client()
    staff.force_login(users.create_user("staff", "staff@example.com", "pw", is_staff=True))

    page = admin.get(f"/admin/lifecycle/customer/{customer.pk}/change/")
    assert page.status_code == 200
    link = f"/admin/journeys/enrollment/customer/{customer.pk}/explain/"
    assert link.encode() in page.content

    explained = admin.get(link)
    assert explained.status_code == 200
    assert b"Not enrolled: filter: order total 20.00 is below 100" in explained.content
    # Staff who are not superusers are no operators: the admin sends them to its login page.
    assert staff.get(link)["Location"] == f"/admin/login/?next={link}"
    for model in ("journey", "step", "emailtemplate", "enrollment", "delivery"):
        assert admin.get(f"/admin/journeys/{model}/").status_code == 200, model
        assert admin.get(f"/admin/journeys/{model}/add/").status_code == 403, model
        refused = staff.get(f"/admin/journeys/{model}/")
        assert (refused.status_code, refused["Location"]) == (302, f"/admin/login/?next=/admin/journeys/{model}/")



def test_a_customer_of_many_orders_gets_the_newest_decisions_and_the_true_totals(api, tenant):
    """Only the newest MAX_ENROLLMENTS_PER_JOURNEY decisions and their emails are read; the counts and
    "enrolled" still speak of every one (here the only entry is the oldest, beyond the newest 25)."""
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from journeys.models import Enrollment
    from journeys.selectors import MAX_ENROLLMENTS_PER_JOURNEY

    journey = make_journey(tenant, name="Once", entry_policy=Journey.EntryPolicy.ONCE_PER_CUSTOMER)
    total = MAX_ENROLLMENTS_PER_JOURNEY + 2
    with clock.frozen(NOON):
        for n in range(1, total + 1):
            with clock.frozen(NOON + dt.timedelta(minutes=n)):
                order(api, f"O{n}")
        process_events()
    first = Enrollment.objects.for_tenant(tenant).get(journey=journey, order__external_id="O1")
    assert first.state == "active"
    assert Delivery.objects.for_tenant(tenant).filter(enrollment=first).count() == 1

    with CaptureQueriesContext(connection) as queries:
        item = only(api, journey)

    assert (item["enrolled"], item["enrollments_total"]) == (True, total)
    assert [e["order_external_id"] for e in item["enrollments"]] == [f"O{n}" for n in range(total, 2, -1)]
    assert all(e["state"] == "rejected" for e in item["enrollments"])
    [delivery_read] = [q["sql"] for q in queries.captured_queries
                       if q["sql"].startswith('SELECT "journeys_delivery"')]
    read_ids = {int(i) for i in re.search(r'"enrollment_id" IN \(([^)]*)\)', delivery_read).group(1).split(",")}
    assert len(read_ids) == MAX_ENROLLMENTS_PER_JOURNEY and first.pk not in read_ids
