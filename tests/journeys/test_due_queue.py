"""The dispatcher's narrow queue (journeys_duedelivery): every way a delivery becomes due or stops being due
keeps it right (PostgreSQL's triggers do it), and a claim writes only the queue's leases.

After each step the queue must hold exactly the tenant's deliveries that are pending or deferred, each
with its own due time, and nothing else."""

import datetime as dt

import pytest
import requests
from django.core import mail
from django.db import connection

from journeys.dispatch import deliveries_send
from journeys.enrollment import step_delivery
from journeys.models import Delivery, DueDelivery, Enrollment, Step
from journeys.schedule import (
    deliveries_claim,
    deliveries_claimed,
    deliveries_claimed_count,
    deliveries_reclaim,
)
from lifecycle import clock
from tests.factories import order_payload

from .helpers import at, make_journey, process_events

pytestmark = pytest.mark.django_db

NOON = at("2026-11-23T09:00:00+00:00")  # 10:00 in Berlin: outside quiet hours


def queue(tenant) -> dict[int, dt.datetime]:
    return dict(DueDelivery.objects.for_tenant(tenant).values_list("delivery_id", "due_at"))


def due_deliveries(tenant) -> dict[int, dt.datetime]:
    return dict(Delivery.objects.for_tenant(tenant).filter(state__in=Delivery.CLAIMABLE)
                .values_list("pk", "due_at"))


def assert_queue_kept(tenant) -> dict[int, dt.datetime]:
    due = due_deliveries(tenant)
    assert queue(tenant) == due
    return due


def paid_order(api, external_id="O1", customer="c1", **overrides):
    body = order_payload(external_id=external_id, placed_at="2026-11-23T08:00:00Z",
                         customer={"external_id": customer, "email": f"{customer}@example.com",
                                   "marketing_consent": True, "time_zone": "Europe/Berlin"}, **overrides)
    assert api.post("/api/v1/orders", body).status_code == 201


def send_due(now: dt.datetime, **kwargs) -> list[str]:
    with clock.frozen(now):
        return sorted(deliveries_send(delivery_ids=deliveries_claim(limit=100), **kwargs).elements())


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the queue and its triggers are PostgreSQL's; the embedded profile claims on the row")


def test_scheduling_sending_and_the_next_step_keep_the_queue(api, tenant):
    make_journey(tenant, steps=[("P1D", "Day one"), ("P6D", "Day seven")])
    assert queue(tenant) == {}
    with clock.frozen(NOON):
        paid_order(api)
        process_events()
    [first] = Delivery.objects.for_tenant(tenant)
    assert assert_queue_kept(tenant) == {first.pk: NOON + dt.timedelta(days=1)}

    assert send_due(NOON + dt.timedelta(days=1)) == ["sent"]
    # The sent row left the queue; the next step's row (one bulk INSERT) came in with its due time.
    [second] = Delivery.objects.for_tenant(tenant).exclude(pk=first.pk)
    assert assert_queue_kept(tenant) == {second.pk: NOON + dt.timedelta(days=7)}
    assert send_due(NOON + dt.timedelta(days=7)) == ["sent"]
    assert assert_queue_kept(tenant) == {}
    assert len(mail.outbox) == 2


def test_a_claim_writes_only_the_queue_and_the_send_consumes_the_lease(api, tenant):
    make_journey(tenant, steps=[("P1D", "Day one")])
    with clock.frozen(NOON):
        paid_order(api)
        process_events()
    [delivery] = Delivery.objects.for_tenant(tenant)
    before = Delivery.objects.for_tenant(tenant).values().get()

    with clock.frozen(NOON + dt.timedelta(days=1)):
        assert deliveries_claim(limit=10) == [delivery.pk]
        assert deliveries_claim(limit=10) == []  # leased: nobody else gets it
    assert Delivery.objects.for_tenant(tenant).values().get() == before  # the wide row untouched
    assert deliveries_claimed(ids=[delivery.pk]) == {delivery.pk} and deliveries_claimed_count() == 1

    with clock.frozen(NOON + dt.timedelta(days=1)):
        assert +deliveries_send(delivery_ids=[delivery.pk]) == {"sent": 1}
        assert +deliveries_send(delivery_ids=[delivery.pk]) == {"": 1}  # a redelivered task: nothing
    assert deliveries_claimed_count() == 0 and queue(tenant) == {}
    assert len(mail.outbox) == 1


def test_an_expired_lease_goes_to_the_next_claim_and_only_one_task_sends(api, tenant):
    make_journey(tenant, steps=[("P1D", "Day one")])
    with clock.frozen(NOON):
        paid_order(api)
        process_events()
    due = NOON + dt.timedelta(days=1)
    with clock.frozen(due):
        [lost] = deliveries_claim(limit=10)  # its send task is late
    later = due + dt.timedelta(minutes=10)
    assert deliveries_reclaim(now=later)["claimed"] == 1
    assert deliveries_claimed_count() == 0
    with clock.frozen(later):
        assert deliveries_claim(limit=10) == [lost]  # claimed again, for a second task
        assert +deliveries_send(delivery_ids=[lost]) == {"sent": 1}  # the late first task
        assert +deliveries_send(delivery_ids=[lost]) == {"": 1}  # the second: not its own any more
    assert len(mail.outbox) == 1 and queue(tenant) == {}


def test_waits_released_exits_and_defers_keep_the_queue(api, tenant):
    anchored = make_journey(tenant, name="After delivery", steps=[("P1D", "Setup tips")])
    Step.objects.for_tenant(tenant).filter(journey=anchored).update(wait_kind="after_anchor", anchor="delivered_at")
    make_journey(tenant, name="Evening", steps=[("PT13H", "Evening")])  # due 23:00 in Berlin: deferred
    make_journey(tenant, name="Review", steps=[("P14D", "Review")], exit_events=["order.refunded"])
    with clock.frozen(NOON):
        paid_order(api, total="50.00", lines=[])
        process_events()
    waiting = Delivery.objects.for_tenant(tenant).get(journey=anchored)
    assert waiting.state == "waiting"
    assert waiting.pk not in assert_queue_kept(tenant) and len(queue(tenant)) == 2

    # The quiet hours defer the evening email to 08:00 in Berlin: its queue row moves with it.
    assert send_due(NOON + dt.timedelta(hours=13)) == ["deferred"]
    assert at("2026-11-24T07:00:00+00:00") in assert_queue_kept(tenant).values()

    # The delivery scan releases the wait: due a day after it, in the queue.
    with clock.frozen(NOON + dt.timedelta(days=2)):
        api.post("/api/v1/orders/O1/delivery", {"delivered_at": "2026-11-25T15:00:00Z"})
        process_events()
    assert assert_queue_kept(tenant)[waiting.pk] == at("2026-11-26T15:00:00+00:00")

    # A refund ends the review journey: its row leaves the queue.
    review = Delivery.objects.for_tenant(tenant).get(journey__name="Review")
    with clock.frozen(NOON + dt.timedelta(days=2, hours=1)):
        api.post("/api/v1/orders/O1/refunds", {"external_id": "r1", "amount": "50.00"})
        process_events()
    review.refresh_from_db()
    assert review.state == "skipped"
    assert review.pk not in assert_queue_kept(tenant)


def test_a_retried_send_and_a_worker_lost_mid_send_come_back_into_the_queue(api, tenant, settings):
    from anymail.exceptions import AnymailAPIError

    make_journey(tenant, steps=[("P1D", "Day one")])
    make_journey(tenant, name="Other", steps=[("P1D", "Two")], message_class="transactional")
    with clock.frozen(NOON):
        paid_order(api)
        process_events()
    response = requests.Response()
    response.status_code, response.reason, response._content = 503, "Service Unavailable", b"{}"

    def busy(message, connection=None):
        raise AnymailAPIError("ESP says 503", status_code=503, response=response)

    due = NOON + dt.timedelta(days=1)
    assert send_due(due, send=busy) == ["pending", "pending"]
    retry_at = assert_queue_kept(tenant)
    assert set(retry_at.values()) == {due + dt.timedelta(seconds=30)}

    # One is taken by a worker that dies mid-send; the reclaim gives it back (an idempotent ESP).
    settings.ESP_HONOURS_IDEMPOTENCY_KEY = True
    later = due + dt.timedelta(minutes=1)
    with clock.frozen(later):
        a, b = deliveries_claim(limit=10)
    Delivery.objects.for_tenant(tenant).filter(pk=b).update(state="sending", lease_until=later)
    DueDelivery.objects.for_tenant(tenant).filter(delivery_id=b).delete()
    assert set(assert_queue_kept(tenant)) == {a}
    assert deliveries_reclaim(now=later + dt.timedelta(minutes=10)) == {"claimed": 1, "sending": 1, "waiting": 0}
    assert set(assert_queue_kept(tenant)) == {a, b}
    assert send_due(later + dt.timedelta(minutes=11)) == ["sent", "sent"]
    assert assert_queue_kept(tenant) == {}


def test_a_bulk_insert_of_step_rows_fills_the_queue_in_one_statement(api, tenant):
    journey = make_journey(tenant, steps=[("P1D", "Day one"), ("P2D", "Day three")])
    Step.objects.for_tenant(tenant).filter(journey=journey, position=2).update(
        wait_kind="after_anchor", anchor="delivered_at")
    for n in range(3):
        with clock.frozen(NOON):
            paid_order(api, external_id=f"O{n}", customer=f"c{n}")
    with clock.frozen(NOON):
        process_events()
    Delivery.objects.for_tenant(tenant).delete()
    assert queue(tenant) == {}
    enrollments = list(Enrollment.objects.for_tenant(tenant).select_related("journey", "order"))
    first, second = Step.objects.for_tenant(tenant).filter(journey=journey).order_by("position")
    with clock.frozen(NOON):
        rows = [step_delivery(enrollment=e, step=step, previous_at=NOON) for e in enrollments
                for step in (first, second)]
        Delivery.objects.for_tenant(tenant).bulk_create(rows)
        Delivery.objects.for_tenant(tenant).bulk_create(
            [step_delivery(enrollment=e, step=first, previous_at=NOON) for e in enrollments], ignore_conflicts=True)
    # The three first steps are due; the three second steps wait for the delivery: not in the queue.
    assert sorted(assert_queue_kept(tenant).values()) == [NOON + dt.timedelta(days=1)] * 3
    assert Delivery.objects.for_tenant(tenant).filter(state="waiting").count() == 3
