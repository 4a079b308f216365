"""The journey engine in one process: enroll, schedule, claim, gate, send, exit."""

import datetime as dt

import pytest
import requests
from django.core import mail

from journeys.dispatch import deliveries_send
from journeys.models import Delivery, Enrollment, Journey, Step
from journeys.rendering import delivery_token
from journeys.schedule import deliveries_claim, deliveries_reclaim, quiet_hours_end
from lifecycle import clock
from lifecycle.models import Customer
from tests.factories import order_payload

from .helpers import at, make_journey, process_events

pytestmark = pytest.mark.django_db

# 10:00 in Berlin on a weekday: outside quiet hours.
NOON = at("2026-11-23T09:00:00+00:00")


def send_due(now: dt.datetime) -> list[str]:
    """Claim what is due and send it as a send task does (in a batch), the outcomes sorted."""
    with clock.frozen(now):
        return sorted(deliveries_send(delivery_ids=deliveries_claim(limit=100)).elements())


def deliveries(tenant):
    return list(Delivery.objects.for_tenant(tenant).order_by("pk"))


def paid_order(api, **overrides):
    overrides.setdefault("placed_at", "2026-11-23T08:00:00Z")
    customer = overrides.setdefault("customer", {"external_id": "c1"})
    customer.setdefault("email", f"{customer.get('external_id', 'x')}@example.com")
    customer.setdefault("marketing_consent", True)
    body = order_payload(**overrides)
    assert api.post("/api/v1/orders", body).status_code == 201
    return body


def test_paid_order_enrolls_and_each_step_goes_out_once_at_its_time(api, tenant):
    journey = make_journey(tenant, steps=[("P1D", "Setup tips"), ("P6D", "How is it going?")])
    with clock.frozen(NOON):
        paid_order(api, external_id="O1", customer={"external_id": "c1", "email": "ada@example.com",
                                                     "first_name": "Ada", "marketing_consent": True})
        process_events()

    enrollment = Enrollment.objects.for_tenant(tenant).get()
    assert (enrollment.journey_id, enrollment.state) == (journey.pk, "active")
    [first] = deliveries(tenant)
    assert (first.state, first.due_at) == ("pending", NOON + dt.timedelta(days=1))

    assert send_due(NOON + dt.timedelta(hours=23)) == []  # not due yet
    assert send_due(NOON + dt.timedelta(days=1)) == ["sent"]
    assert send_due(NOON + dt.timedelta(days=1, minutes=1)) == []  # never twice

    [message] = mail.outbox
    assert message.to == ["ada@example.com"] and message.subject == "Setup tips"
    assert "Hi Ada, thanks for order" in message.body
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.extra_headers["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/u/")
    token = delivery_token(tenant.pk, first.pk)
    assert len(token) == 24 and int(token, 16) >= 0  # an HMAC: the Message-ID cannot be guessed
    assert message.extra_headers["Message-ID"] == f"<journey.{tenant.pk}.{first.pk}.{token}@127.0.0.1>"
    assert message.metadata == {"tenant_id": tenant.pk, "journey_id": journey.pk, "step_id": first.step_id,
                                "delivery_id": first.pk, "delivery_token": token}
    html = message.alternatives[0][0]
    assert 'style="' in html and "<style>" not in html.split("<body")[1]  # CSS inlined
    first, second = deliveries(tenant)
    assert first.state == "sent" and first.esp_message_id
    assert (second.state, second.due_at) == ("pending", NOON + dt.timedelta(days=7))

    assert send_due(NOON + dt.timedelta(days=7)) == ["sent"]
    assert len(mail.outbox) == 2
    assert Enrollment.objects.for_tenant(tenant).get().state == "completed"


def test_handling_an_event_twice_enrolls_once(api, tenant):
    make_journey(tenant)
    with clock.frozen(NOON):
        paid_order(api)
        process_events()
    from journeys.enrollment import journey_enroll
    from lifecycle.models import Event

    event = Event.objects.for_tenant(tenant).get(type="order.paid")
    journey_enroll(journey=Journey.objects.for_tenant(tenant).get(), event=event)

    assert Enrollment.objects.for_tenant(tenant).count() == 1
    assert Delivery.objects.for_tenant(tenant).count() == 1


def test_filters_and_entry_policy_are_recorded_as_reasons(api, tenant):
    make_journey(tenant, filters={"min_total": "100"}, name="Big spenders")
    make_journey(tenant, name="Once", entry_policy=Journey.EntryPolicy.ONCE_PER_CUSTOMER)
    with clock.frozen(NOON):
        paid_order(api, customer={"external_id": "c1"}, total="59.90")
        paid_order(api, customer={"external_id": "c1"}, total="20.00")
        process_events()

    decisions = sorted((e.journey.name, e.state, e.reason) for e in Enrollment.objects.for_tenant(tenant))
    assert decisions == [
        ("Big spenders", "rejected", "filter: order total 20.00 is below 100"),
        ("Big spenders", "rejected", "filter: order total 59.90 is below 100"),
        ("Once", "active", ""),
        ("Once", "rejected", "entry: already went through this journey (once per customer)"),
    ]


def test_first_and_repeat_order_triggers(api, tenant):
    make_journey(tenant, trigger=Journey.Trigger.FIRST_ORDER, name="Welcome")
    make_journey(tenant, trigger=Journey.Trigger.REPEAT_ORDER, name="Thanks again")
    with clock.frozen(NOON):
        paid_order(api, customer={"external_id": "c1"}, placed_at="2026-11-01T08:00:00Z")
        paid_order(api, customer={"external_id": "c1"}, placed_at="2026-11-20T08:00:00Z")
        process_events()

    active = sorted((e.journey.name, e.order.external_id) for e in
                    Enrollment.objects.for_tenant(tenant).filter(state="active"))
    assert len(active) == 2
    assert {name for name, _ in active} == {"Welcome", "Thanks again"}


def test_holdout_customers_are_recorded_and_never_messaged(api, tenant):
    make_journey(tenant, holdout_percent=100)
    with clock.frozen(NOON):
        paid_order(api)
        process_events()

    enrollment = Enrollment.objects.for_tenant(tenant).get()
    assert enrollment.state == "holdout"
    assert Delivery.objects.for_tenant(tenant).count() == 0


def test_a_newer_order_ends_the_journey_when_configured(api, tenant):
    make_journey(tenant, steps=[("P14D", "Review request")], exit_events=["order.placed"])
    with clock.frozen(NOON):
        paid_order(api, external_id="O1", customer={"external_id": "c1"})
        process_events()
    with clock.frozen(NOON + dt.timedelta(days=3)):
        paid_order(api, external_id="O2", customer={"external_id": "c1"}, placed_at="2026-11-26T09:00:00Z")
        process_events()

    first = Enrollment.objects.for_tenant(tenant).get(order__external_id="O1")
    assert (first.state, first.reason) == ("exited", "exit: order.placed")
    skipped = Delivery.objects.for_tenant(tenant).get(enrollment=first)
    assert (skipped.state, skipped.reason) == ("skipped", "exit: order.placed")
    assert send_due(NOON + dt.timedelta(days=14)) == []
    assert mail.outbox == []


def test_a_refund_ends_the_journey_even_if_seen_only_at_send_time(api, tenant):
    make_journey(tenant, steps=[("P14D", "Review request")], exit_events=["order.refunded"])
    with clock.frozen(NOON):
        paid_order(api, external_id="O1", total="50.00", lines=[])
        process_events()
        api.post("/api/v1/orders/O1/refunds", {"external_id": "r1", "amount": "50.00"})
        # The refund's event is not processed yet: the gate re-checks exits before sending.

    assert send_due(NOON + dt.timedelta(days=14)) == ["skipped"]
    delivery = Delivery.objects.for_tenant(tenant).get()
    assert delivery.reason == "exit: order.refunded"
    assert Enrollment.objects.for_tenant(tenant).get().state == "exited"
    assert mail.outbox == []


def test_replace_running_restarts_for_the_newer_order(api, tenant):
    make_journey(tenant, steps=[("P30D", "Replenish")], replace_running=True,
                 entry_policy=Journey.EntryPolicy.ONCE_PER_ORDER)
    with clock.frozen(NOON):
        paid_order(api, external_id="O1", customer={"external_id": "c1"})
        process_events()
    with clock.frozen(NOON + dt.timedelta(days=5)):
        paid_order(api, external_id="O2", customer={"external_id": "c1"})
        process_events()

    states = {e.order.external_id: e.state for e in Enrollment.objects.for_tenant(tenant)}
    assert states == {"O1": "exited", "O2": "active"}
    due = Delivery.objects.for_tenant(tenant).get(state="pending")
    assert due.due_at == NOON + dt.timedelta(days=35)


def test_anchor_wait_is_released_by_the_delivery(api, tenant):
    journey = make_journey(tenant, steps=[("P1D", "Setup tips")])
    Step.objects.for_tenant(tenant).filter(journey=journey).update(wait_kind="after_anchor", anchor="delivered_at")
    with clock.frozen(NOON):
        paid_order(api, external_id="O1")
        process_events()
    waiting = Delivery.objects.for_tenant(tenant).get()
    assert (waiting.state, waiting.due_at, waiting.waiting_for) == ("waiting", None, "order.delivered")

    with clock.frozen(NOON + dt.timedelta(days=2)):
        api.post("/api/v1/orders/O1/delivery", {"delivered_at": "2026-11-25T15:00:00Z"})
        process_events()

    waiting.refresh_from_db()
    assert (waiting.state, waiting.due_at) == ("pending", at("2026-11-26T15:00:00+00:00"))


def test_consent_unsubscribe_and_suppression_skip_with_reasons(api, tenant):
    make_journey(tenant)
    with clock.frozen(NOON):
        paid_order(api, customer={"external_id": "no", "marketing_consent": False})
        paid_order(api, customer={"external_id": "unsub", "marketing_consent": True})
        paid_order(api, customer={"external_id": "bounced", "marketing_consent": True})
        process_events()
    customers = Customer.objects.for_tenant(tenant)
    customers.filter(external_id="unsub").update(unsubscribed_at=NOON)
    customers.filter(external_id="bounced").update(suppressed_at=NOON, suppression_reason="bounce")

    assert sorted(send_due(NOON + dt.timedelta(days=1))) == ["skipped"] * 3
    reasons = sorted(Delivery.objects.for_tenant(tenant).values_list("reason", flat=True))
    assert reasons == ["address suppressed (bounce)", "no marketing consent", "unsubscribed from marketing email"]
    assert mail.outbox == []


def test_transactional_class_ignores_marketing_consent_but_not_suppression(api, tenant):
    make_journey(tenant, message_class=Journey.MessageClass.TRANSACTIONAL)
    with clock.frozen(NOON):
        paid_order(api, customer={"external_id": "no", "email": "no@example.com", "marketing_consent": False})
        paid_order(api, customer={"external_id": "bounced", "marketing_consent": True})
        process_events()
    Customer.objects.for_tenant(tenant).filter(external_id="bounced").update(suppressed_at=NOON)

    assert sorted(send_due(NOON + dt.timedelta(days=1))) == ["sent", "skipped"]
    assert [m.to for m in mail.outbox] == [["no@example.com"]]
    assert "List-Unsubscribe" not in mail.outbox[0].extra_headers


def test_quiet_hours_defer_to_the_morning_in_the_customers_zone(api, tenant):
    make_journey(tenant, steps=[("PT13H", "Evening")])
    with clock.frozen(NOON):  # 10:00 Berlin; due 23:00 Berlin
        paid_order(api, customer={"external_id": "c1", "time_zone": "Europe/Berlin"})
        process_events()

    assert send_due(NOON + dt.timedelta(hours=13)) == ["deferred"]
    delivery = Delivery.objects.for_tenant(tenant).get()
    assert delivery.reason == "quiet hours in the customer's time zone"
    assert delivery.due_at == at("2026-11-24T07:00:00+00:00")  # 08:00 in Berlin
    assert delivery.history[-1]["state"] == "deferred"
    assert send_due(at("2026-11-24T07:00:00+00:00")) == ["sent"]


def test_quiet_hours_across_daylight_saving_changes():
    berlin, new_york = __import__("zoneinfo").ZoneInfo("Europe/Berlin"), __import__("zoneinfo").ZoneInfo("America/New_York")
    start, end = dt.time(21), dt.time(8)
    # The night the clocks go forward in Berlin (2026-03-29): 08:00 local is 06:00 UTC.
    assert quiet_hours_end(at("2026-03-28T22:30:00+00:00"), berlin, start, end) == at("2026-03-29T06:00:00+00:00")
    # …and back (2026-10-25): 08:00 local is 07:00 UTC.
    assert quiet_hours_end(at("2026-10-24T22:30:00+00:00"), berlin, start, end) == at("2026-10-25T07:00:00+00:00")
    assert quiet_hours_end(at("2026-11-01T03:00:00+00:00"), new_york, start, end) == at("2026-11-01T13:00:00+00:00")
    assert quiet_hours_end(at("2026-11-23T12:00:00+00:00"), berlin, start, end) is None


def test_frequency_cap_defers_the_second_marketing_email(api, tenant):
    make_journey(tenant, name="A", steps=[("P1D", "From A")])
    make_journey(tenant, name="B", steps=[("P1D", "From B")])
    with clock.frozen(NOON):
        paid_order(api, customer={"external_id": "c1"})
        process_events()

    results = sorted(send_due(NOON + dt.timedelta(days=1)))

    assert results == ["deferred", "sent"]
    sent = Delivery.objects.for_tenant(tenant).get(state="sent")
    deferred = Delivery.objects.for_tenant(tenant).get(state="deferred")
    # Both were in one batch: the second waits a few minutes and asks again, when the cap sees the first.
    assert (deferred.reason, deferred.due_at) == (f"frequency cap: '{sent.journey.name}' goes first",
                                                  NOON + dt.timedelta(days=1, minutes=5))
    assert send_due(NOON + dt.timedelta(days=1, minutes=5)) == ["deferred"]
    deferred.refresh_from_db()
    assert (deferred.reason, deferred.due_at) == ("frequency cap: one marketing email per 16 h",
                                                  NOON + dt.timedelta(days=1, hours=16))
    assert len(mail.outbox) == 1
    assert send_due(NOON + dt.timedelta(days=1, hours=16)) == ["deferred"]  # 02:00 in Berlin: quiet hours
    assert send_due(NOON + dt.timedelta(days=1, hours=22)) == ["sent"]
    assert len(mail.outbox) == 2


def test_priority_decides_between_competing_messages(api, tenant):
    make_journey(tenant, name="Low", steps=[("P1D", "Low")], priority=0)
    make_journey(tenant, name="High", steps=[("P1D", "High")], priority=10)
    with clock.frozen(NOON):
        paid_order(api, customer={"external_id": "c1"})
        process_events()

    for _ in range(2):
        send_due(NOON + dt.timedelta(days=1))

    assert [m.subject for m in mail.outbox] == ["High"]
    low = Delivery.objects.for_tenant(tenant).get(journey__name="Low")
    assert low.state == "deferred" and low.reason.startswith("frequency cap")


def test_a_duplicate_send_task_sends_nothing(api, tenant):
    make_journey(tenant)
    with clock.frozen(NOON):
        paid_order(api)
        process_events()
    with clock.frozen(NOON + dt.timedelta(days=1)):
        [delivery_id] = deliveries_claim(limit=10)
        assert +deliveries_send(delivery_ids=[delivery_id]) == {"sent": 1}
        assert +deliveries_send(delivery_ids=[delivery_id]) == {"": 1}

    assert len(mail.outbox) == 1


def test_expired_leases_are_reclaimed_and_a_dead_send_is_ambiguous(api, tenant, settings):
    make_journey(tenant, steps=[("P1D", "one")])
    make_journey(tenant, name="other", steps=[("P1D", "two")], message_class="transactional")
    with clock.frozen(NOON):
        paid_order(api)
        process_events()
    later = NOON + dt.timedelta(days=1)
    with clock.frozen(later):
        a, b = deliveries_claim(limit=10)
    Delivery.objects.for_tenant(tenant).filter(pk=b).update(state="sending", lease_until=later)

    counts = deliveries_reclaim(now=later + dt.timedelta(minutes=10))

    assert (counts["claimed"], counts["sending"]) == (1, 1)
    assert Delivery.objects.for_tenant(tenant).get(pk=a).state == "pending"
    ambiguous = Delivery.objects.for_tenant(tenant).get(pk=b)
    assert ambiguous.state == "ambiguous" and "may or may not" in ambiguous.reason
    assert send_due(later + dt.timedelta(minutes=11)) == ["sent"]


def test_a_failing_esp_is_retried_then_failed(api, tenant, settings):
    from anymail.exceptions import AnymailAPIError

    make_journey(tenant)
    with clock.frozen(NOON):
        paid_order(api)
        process_events()

    response = requests.Response()
    response.status_code, response.reason, response._content = 503, "Service Unavailable", b'{"error": "busy"}'

    def broken(message, connection=None):
        raise AnymailAPIError("ESP says 503", status_code=503, response=response)

    now = NOON + dt.timedelta(days=1)
    results = []
    for _ in range(6):
        with clock.frozen(now):
            ids = deliveries_claim(limit=10)
            results += list(deliveries_send(delivery_ids=ids, send=broken).elements())
        now += dt.timedelta(hours=2)

    assert results == ["pending"] * 5 + ["failed"]
    delivery = Delivery.objects.for_tenant(tenant).get()
    assert delivery.attempts == 6 and "ESP says 503" in delivery.reason
    assert len([h for h in delivery.history if h["state"] == "pending"]) == 5


def test_an_anchor_that_never_comes_lets_the_journey_move_on(api, tenant):
    journey = make_journey(tenant, steps=[("P1D", "Unboxing"), ("P2D", "Tips")])
    Step.objects.for_tenant(tenant).filter(journey=journey, position=1).update(
        wait_kind="after_anchor", anchor="delivered_at", wait_max=dt.timedelta(days=10))
    with clock.frozen(NOON):
        paid_order(api)
        process_events()

    counts = deliveries_reclaim(now=NOON + dt.timedelta(days=11))

    assert counts["waiting"] == 1
    first, second = Delivery.objects.for_tenant(tenant).order_by("step__position")
    assert (first.state, first.reason) == ("skipped", "gave up waiting: the anchor never happened")
    assert second.state == "pending" and second.due_at == NOON + dt.timedelta(days=13)
    assert Enrollment.objects.for_tenant(tenant).get().state == "active"


def test_once_per_order_runs_for_two_orders_of_one_customer_at_once(api, tenant):
    make_journey(tenant, steps=[("P14D", "Review")], entry_policy=Journey.EntryPolicy.ONCE_PER_ORDER)
    with clock.frozen(NOON):
        paid_order(api, external_id="O1", customer={"external_id": "c1"})
        paid_order(api, external_id="O2", customer={"external_id": "c1"})
        process_events()

    assert sorted(Enrollment.objects.for_tenant(tenant).values_list("order__external_id", "state")) == [
        ("O1", "active"), ("O2", "active")]


def test_a_branch_step_is_not_held_by_quiet_hours_or_the_cap(api, tenant):
    journey = make_journey(tenant, steps=[("PT13H", "unused"), ("PT0S", "After the branch")])
    Step.objects.for_tenant(tenant).filter(journey=journey, position=1).update(
        kind="condition", template=None, config={"field": "order_count", "op": ">=", "value": 1, "then": 2})
    with clock.frozen(NOON):  # due 23:00 in Berlin: quiet hours
        paid_order(api, customer={"external_id": "c1", "time_zone": "Europe/Berlin"})
        process_events()

    assert send_due(NOON + dt.timedelta(hours=13)) == ["sent"]
    branch, after = Delivery.objects.for_tenant(tenant).order_by("step__position")
    assert branch.reason == "order count is at least 1: yes → step 2"
    assert after.step.position == 2 and after.state == "pending"


def test_an_email_whose_values_do_not_build_fails_alone_and_the_rest_of_its_wave_goes_out(api, tenant, monkeypatch):
    from journeys import rendering

    make_journey(tenant, steps=[("P1D", "Tips")])
    with clock.frozen(NOON):
        for external_id in ("good-1", "bad", "good-2"):
            paid_order(api, external_id=f"o-{external_id}", customer={"external_id": external_id})
        process_events()
    real = rendering._context

    def broken(delivery, items, points):
        if delivery.customer.external_id == "bad":
            raise ValueError("a survey's wording is not a mapping")
        return real(delivery, items, points)

    monkeypatch.setattr(rendering, "_context", broken)

    assert send_due(NOON + dt.timedelta(days=1)) == ["failed", "sent", "sent"]
    assert sorted(m.to[0] for m in mail.outbox) == ["good-1@example.com", "good-2@example.com"]
    bad = Delivery.objects.for_tenant(tenant).get(customer__external_id="bad")
    assert bad.state == "failed" and "not a mapping" in bad.reason
