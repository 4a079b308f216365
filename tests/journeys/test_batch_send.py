"""Send tasks send in batches (journeys/dispatch.py, the one send path): every state, the gate and the
ledger, with a handful of statements per wave of rows instead of ten per email."""

import datetime as dt
import threading
import time

import pytest
import requests
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from journeys import dispatch as services_send
from journeys.dispatch import deliveries_send
from journeys.models import Delivery, Enrollment, Journey
from journeys.rendering import esp_send, message_id_for
from journeys.schedule import deliveries_claim, deliveries_claimed, deliveries_reclaim
from lifecycle import citus, clock
from lifecycle.models import Customer, Event
from tests.factories import order_payload

from .helpers import at, make_journey, process_events

pytestmark = pytest.mark.django_db

NOON = at("2026-11-23T09:00:00+00:00")  # 10:00 in Berlin: outside quiet hours
DUE = NOON + dt.timedelta(days=1)


def customers_with_due_email(api, tenant, count: int, **journey_fields) -> Journey:
    """`count` customers (c0, c1, …) each in a two-step journey whose first email is due at DUE."""
    journey = make_journey(tenant, steps=[("P1D", "Hello {{ first_name }}"), ("P2D", "Day three")], **journey_fields)
    with clock.frozen(NOON):
        for n in range(count):
            body = order_payload(customer={"external_id": f"c{n}", "email": f"c{n}@example.com",
                                           "first_name": f"N{n}", "marketing_consent": True})
            assert api.post("/api/v1/orders", body).status_code == 201
        process_events()
    return journey


def claim() -> list[int]:
    with clock.frozen(DUE):
        return deliveries_claim(limit=500)


def send(ids, **kwargs):
    with clock.frozen(DUE):
        return dict(deliveries_send(delivery_ids=ids, **kwargs))


def rows(tenant, **filters):
    return list(Delivery.objects.for_tenant(tenant).filter(**filters).order_by("pk"))


def test_a_batch_sends_each_email_once_and_moves_every_journey_on(api, tenant):
    journey = customers_with_due_email(api, tenant, 30)  # more than one wave
    ids = claim()
    assert len(ids) == 30 > services_send.send_wave()

    assert send(ids) == {"sent": 30, "": 0}

    first = rows(tenant, step__position=1)
    assert {d.state for d in first} == {"sent"} and {d.attempts for d in first} == {1}
    assert [d.message_id for d in first] == [message_id_for(d) for d in first]
    assert all(d.esp_message_id and d.sent_at == DUE and d.lease_until is None for d in first)
    assert [d.history for d in first] == [[]] * 30  # "sent" is said by state and sent_at, not stored again
    assert sorted(m.to[0] for m in mail.outbox) == sorted(f"c{n}@example.com" for n in range(30))
    assert sorted(m.extra_headers["Message-ID"] for m in mail.outbox) == sorted(d.message_id for d in first)
    to_c0 = next(m for m in mail.outbox if m.to == ["c0@example.com"])
    assert to_c0.subject == "Hello N0" and to_c0.metadata["journey_id"] == journey.pk
    second = rows(tenant, step__position=2)
    assert [(d.state, d.due_at) for d in second] == [("pending", DUE + dt.timedelta(days=2))] * 30
    assert sorted(d.enrollment_id for d in second) == sorted(d.enrollment_id for d in first)

    # The same task delivered again, or a copy of it: nothing is ours any more, nothing is sent.
    assert send(ids) == {"": 30}
    assert len(mail.outbox) == 30

    # The last step completes each enrollment.
    with clock.frozen(DUE + dt.timedelta(days=2)):
        assert dict(deliveries_send(delivery_ids=deliveries_claim(limit=500))) == {"sent": 30, "": 0}
    assert set(Enrollment.objects.for_tenant(tenant).values_list("state", "reason")) == {("completed",
                                                                                            "all steps done")}
    assert len(mail.outbox) == 60


def test_a_waves_statements_do_not_grow_with_its_size(api, tenant):
    customers_with_due_email(api, tenant, services_send.send_wave() + 3)
    ids = claim()

    def statements(batch) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert send(batch)["sent"] == len(batch)
        return len(queries)

    small, full = statements(ids[:3]), statements(ids[3:])
    assert len(ids[3:]) == services_send.send_wave()
    # take, load (+ tenants, journeys and steps once), exit events, lines, points, the enrollments' variables
    # (a discount code step's code), the store's own sending account, and one transaction recording the
    # sends and the next steps.
    assert small == full <= 15


def test_the_gate_decides_each_row_of_a_batch_with_its_reason(api, tenant, other_tenant, other_api):
    customers_with_due_email(api, tenant, 5, exit_events=["order.refunded"])
    customers_with_due_email(other_api, other_tenant, 1)
    Customer.objects.for_tenant(tenant).filter(external_id="c1").update(unsubscribed_at=NOON)
    Customer.objects.for_tenant(tenant).filter(external_id="c2").update(time_zone="Pacific/Auckland")  # 22:00
    refunded = Customer.objects.for_tenant(tenant).get(external_id="c3")
    enrollment = Enrollment.objects.for_tenant(tenant).get(customer=refunded)
    Event.objects.for_tenant(tenant).create(tenant=tenant, customer=refunded, order_id=enrollment.order_id,
                                            type="order.refunded", occurred_at=NOON + dt.timedelta(hours=1),
                                            processed_at=NOON + dt.timedelta(hours=1))
    # A higher-priority journey's email for c4 is due too: c4's email of this journey waits for it.
    high = make_journey(tenant, name="High", steps=[("PT0S", "High")], priority=5)
    Delivery.objects.for_tenant(tenant).create(
        tenant=tenant, enrollment=Enrollment.objects.for_tenant(tenant).create(
            tenant=tenant, journey=high, customer_id=Customer.objects.for_tenant(tenant).get(external_id="c4").pk,
            state="active", enrolled_at=NOON), step=high.steps.get(), journey=high,
        customer_id=Customer.objects.for_tenant(tenant).get(external_id="c4").pk, message_class="marketing",
        priority=5, state="pending", due_at=DUE + dt.timedelta(hours=1))
    ids = [pk for pk in claim()]
    Delivery.objects.for_tenant(tenant).filter(journey=high).update(due_at=DUE)  # due, not claimed

    assert send(ids) == {"sent": 2, "skipped": 2, "deferred": 2, "": 0}

    by_customer = {d.customer.external_id: d for d in Delivery.objects.for_tenant(tenant).filter(
        pk__in=ids).select_related("customer")}
    assert {c: (d.state, d.reason) for c, d in by_customer.items()} == {
        "c0": ("sent", ""),
        "c1": ("skipped", "unsubscribed from marketing email"),
        "c2": ("deferred", "quiet hours in the customer's time zone"),
        "c3": ("skipped", "exit: order.refunded"),
        "c4": ("deferred", "frequency cap: 'High' has priority"),
    }
    assert by_customer["c2"].due_at == at("2026-11-24T19:00:00+00:00")  # 08:00 in Auckland
    assert Enrollment.objects.for_tenant(tenant).get(customer=refunded).state == "exited"
    assert Delivery.objects.for_tenant(other_tenant).get(step__position=1).state == "sent"
    assert sorted(m.to[0] for m in mail.outbox) == ["c0@example.com", "c0@example.com"]  # one per store


def test_an_esp_error_is_recorded_on_its_own_row_only(api, tenant):
    customers_with_due_email(api, tenant, 4)
    ids = claim()
    response = requests.Response()
    response.status_code, response.reason, response._content = 503, "Service Unavailable", b"{}"
    busy, refused = ids[1], ids[2]

    def esp(message, *, connection):
        delivery_id = message.metadata["delivery_id"]
        if delivery_id == busy:
            raise AnymailAPIError("ESP says 503", status_code=503, response=response)
        if delivery_id == refused:
            raise AnymailRecipientsRefused("all recipients refused")
        return esp_send(message, connection=connection)

    assert send(ids, send=esp) == {"sent": 2, "pending": 1, "failed": 1, "": 0}

    retried, failed = Delivery.objects.for_tenant(tenant).get(pk=busy), Delivery.objects.for_tenant(tenant).get(
        pk=refused)
    assert (retried.state, retried.due_at, retried.attempts) == ("pending", DUE + dt.timedelta(seconds=30), 1)
    assert retried.reason == "retrying: AnymailAPIError: ESP says 503"
    assert (failed.state, failed.reason) == ("failed", "AnymailRecipientsRefused: all recipients refused")
    assert sorted(m.extra_headers["Message-ID"] for m in mail.outbox) == sorted(
        d.message_id for d in rows(tenant, state="sent"))
    assert rows(tenant, step__position=2, state="pending") != [] and len(rows(tenant, step__position=2)) == 2


class WorkerKilled(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs (not an Exception: nothing catches it)."""


def crash_after_the_esp(at_delivery: int):
    def esp(message, *, connection):
        result = esp_send(message, connection=connection)  # the ESP has accepted it
        if message.metadata["delivery_id"] == at_delivery:
            raise WorkerKilled
        return result
    return esp


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_crash_between_the_esp_and_the_record_never_loses_or_silently_resends(api, tenant, settings,
                                                                                  idempotent):
    settings.ESP_HONOURS_IDEMPOTENCY_KEY = idempotent
    customers_with_due_email(api, tenant, 4)
    ids = claim()

    with pytest.raises(WorkerKilled):
        send(ids, send=crash_after_the_esp(ids[1]))

    handed = [m.extra_headers["Message-ID"] for m in mail.outbox]
    assert len(handed) == 4  # the wave went to the ESP; the worker died before recording it
    assert [(d.state, d.attempts) for d in rows(tenant, pk__in=ids)] == [("sending", 1)] * 4
    assert rows(tenant, step__position=2) == []

    # Not yet: the send lease has not run out.
    assert deliveries_reclaim(now=DUE + dt.timedelta(seconds=60))["sending"] == 0
    assert deliveries_reclaim(now=DUE + dt.timedelta(minutes=3))["sending"] == 4

    later = DUE + dt.timedelta(minutes=4)
    if not idempotent:
        # Maybe sent, maybe not: shown for a person to decide, never resent and never lost.
        assert {(d.state, d.reason) for d in rows(tenant, pk__in=ids)} == {
            ("ambiguous", "worker died after handing the email to the ESP; it may or may not have been sent")}
        with clock.frozen(later):
            assert deliveries_claim(limit=500) == []
        assert len(mail.outbox) == 4
        return
    # The ESP deduplicates by Message-ID: retried with the same key, then recorded once.
    with clock.frozen(later):
        again = deliveries_claim(limit=500)
        assert sorted(again) == sorted(ids)
        assert dict(deliveries_send(delivery_ids=again)) == {"sent": 4, "": 0}
    assert sorted(m.extra_headers["Message-ID"] for m in mail.outbox[4:]) == sorted(handed)
    assert [(d.state, d.attempts) for d in rows(tenant, pk__in=ids)] == [("sent", 2)] * 4
    assert len(rows(tenant, step__position=2, state="pending")) == 4


def test_concurrent_esp_calls_send_each_email_once(api, tenant, settings):
    settings.JOURNEY_SEND_CONCURRENCY = 8
    customers_with_due_email(api, tenant, 30)
    ids = claim()
    lock, in_flight, most = threading.Lock(), [0], [0]
    threads = set()

    def slow_esp(message, *, connection):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            threads.add(threading.current_thread().name)
        time.sleep(0.05)  # an ESP's round trip
        try:
            return esp_send(message, connection=connection)
        finally:
            with lock:
                in_flight[0] -= 1

    assert send(ids, send=slow_esp) == {"sent": 30, "": 0}

    assert 1 < most[0] <= 8 and threading.current_thread().name not in threads
    assert sorted(m.extra_headers["Message-ID"] for m in mail.outbox) == sorted(
        d.message_id for d in rows(tenant, step__position=1))
    assert len({m.extra_headers["Message-ID"] for m in mail.outbox}) == 30
    assert len(rows(tenant, step__position=2, state="pending")) == 30


def test_the_claim_takes_its_rows_by_ctid_whatever_the_statistics_say(api, tenant):
    customers_with_due_email(api, tenant, 3)
    # Statistics from before the burst: no row was claimable when the queue was last analyzed (the
    # deliveries left the queue when they went waiting, and came back into it when pending again).
    Delivery.objects.for_tenant(tenant).update(state="waiting")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM journeys_duedelivery")
        assert cursor.fetchone() == (0,)
        cursor.execute("ANALYZE journeys_duedelivery")
    Delivery.objects.for_tenant(tenant).update(state="pending")
    with CaptureQueriesContext(connection) as queries:
        assert len(claim()) == 3
    [statement] = [q["sql"] for q in queries if q["sql"].lstrip().startswith("UPDATE journeys_duedelivery")]
    # The claim wrote its leases on the queue only: the deliveries are untouched, still pending.
    assert not [q["sql"] for q in queries if "journeys_delivery " in q["sql"]]
    assert {d.state for d in rows(tenant)} == {"pending"}

    on_citus = citus.enabled(connection)
    with transaction.atomic(), connection.cursor() as cursor:
        if on_citus:  # the SET LOCAL below reaches the worker that plans the shard's statement
            cursor.execute("SET LOCAL citus.propagate_set_commands = 'local'")
        cursor.execute("SET LOCAL enable_seqscan = off")  # plan as on a big queue, not on this tiny one
        cursor.execute("EXPLAIN " + statement)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    # The due index finds and locks the rows once; the UPDATE takes them by address (a TID scan), never
    # by a second walk of the index comparing each entry with the claimed ctids: seconds on 100,000 due rows.
    if on_citus:  # one store's rows by their key (found by a read before it), on one shard
        assert "Task Count: 1" in plan and "duedelivery_pkey" in plan and "Seq Scan" not in plan, plan
        return
    assert plan.count("duedelivery_due_idx") == 1 and "Tid Scan on journeys_duedelivery" in plan, plan
    assert "ctid = ANY" in plan.split("duedelivery_due_idx")[1], plan


def test_a_wave_that_fails_before_the_esp_gives_its_rows_back_and_the_wave_before_is_recorded(
        api, tenant, monkeypatch):
    wave = services_send.send_wave()
    customers_with_due_email(api, tenant, 3 * wave)
    ids = claim()
    real, calls = services_send.gate_decisions, []

    def gate_that_fails_the_second_time(deliveries, now):
        calls.append(len(deliveries))
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real(deliveries, now)

    monkeypatch.setattr(services_send, "gate_decisions", gate_that_fails_the_second_time)
    with pytest.raises(RuntimeError):
        send(ids)

    states = dict(Delivery.objects.for_tenant(tenant).filter(pk__in=ids).values_list("pk", "state"))
    # The first wave was with the ESP: recorded. The second never got there: pending again, at once
    # (not left 'sending' for the reclaim), and claimable at once. The third was never taken: still
    # claimed (pending, its lease held), until its lease runs out.
    assert [states[pk] for pk in ids] == ["sent"] * wave + ["pending"] * wave + ["pending"] * wave
    assert deliveries_claimed(ids=ids) == set(ids[2 * wave:])
    assert sorted(m.extra_headers["Message-ID"] for m in mail.outbox) == sorted(
        d.message_id for d in rows(tenant, pk__in=ids[:wave]))
    given_back = rows(tenant, pk__in=ids[wave:2 * wave])
    assert {(d.reason, d.lease_until, d.attempts) for d in given_back} == {
        ("retry: the send task failed before handing it to the ESP", None, 1)}

    monkeypatch.setattr(services_send, "gate_decisions", real)
    with clock.frozen(DUE):
        again = deliveries_claim(limit=500)
        assert sorted(again) == sorted(ids[wave:2 * wave])
        assert dict(deliveries_send(delivery_ids=again)) == {"sent": wave, "": 0}
    assert len(mail.outbox) == 2 * wave
