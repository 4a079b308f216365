"""Webhook steps against a real local HTTP receiver: the signed payload, retries with backoff by the same key,
every attempt logged, the send gate, the retry window, a crash between the POST and its record."""

import datetime as dt
import json

import pytest
from django.core import mail

from journeys.definition import JourneyIn
from journeys.dispatch import deliveries_send
from journeys.models import Delivery, Step, WebhookAttempt, WebhookCall
from journeys.schedule import deliveries_claim
from journeys.selectors import customer_journeys_explain
from journeys.webhooks import (
    backoff,
    signature,
    signature_valid,
    webhook_call_attempt,
    webhook_calls_due,
    webhook_secret_rotate,
)
from lifecycle import clock
from lifecycle.models import Customer, Tenant
from tests.factories import order_payload

from .helpers import at, make_journey, process_events
from .webhook_server import Receiver

pytestmark = pytest.mark.django_db

NOON = at("2026-11-23T09:00:00+00:00")  # 10:00 in Berlin: outside quiet hours
DUE = NOON + dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def _local_receivers(settings):
    settings.JOURNEY_WEBHOOK_ALLOW_PRIVATE_HOSTS = True  # the receiver is on 127.0.0.1


def webhook_journey(tenant, url: str, **fields):
    """Step 1: the webhook (a day after the order); step 2: an email two days later."""
    journey = make_journey(tenant, name="App push", steps=[("P1D", "unused"), ("P2D", "Day three")], **fields)
    Step.objects.for_tenant(tenant).filter(journey=journey, position=1).update(
        kind="webhook", template=None, config={"url": url, "data": {"sms_template": "thanks"}})
    return journey


def order(api, n=0, **customer):
    body = order_payload(external_id=f"W-{n}", customer={"external_id": f"c{n}", "email": f"c{n}@example.com",
                                                         "first_name": f"N{n}", "marketing_consent": True,
                                                         **customer})
    with clock.frozen(NOON):
        assert api.post("/api/v1/orders", body).status_code == 201
        process_events()


def send_due(when=DUE) -> dict:
    with clock.frozen(when):
        return dict(deliveries_send(delivery_ids=deliveries_claim(limit=500)))


def attempt_all(when) -> list[str]:
    with clock.frozen(when):
        return [webhook_call_attempt(call_id=pk) for _, pk in webhook_calls_due()]


def test_a_webhook_step_posts_the_documented_payload_signed_and_moves_the_journey_on(api, tenant):
    secret = webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    with Receiver() as receiver:
        journey = webhook_journey(tenant, receiver.url)
        order(api)

        assert send_due() == {"sent": 1, "": 0}
        call = WebhookCall.objects.for_tenant(tenant).get()
        delivery = Delivery.objects.for_tenant(tenant).get(step__position=1)
        assert (delivery.state, delivery.sent_at, delivery.reason) == ("sent", DUE, f"webhook queued: {call.idempotency_key}")
        assert mail.outbox == []  # a webhook step sends no email
        # The journey moved on at once: the POST's retries never hold it back.
        assert Delivery.objects.for_tenant(tenant).get(step__position=2).due_at == DUE + dt.timedelta(days=2)
        assert receiver.requests == []  # nothing is POSTed before the call's task runs

        assert attempt_all(DUE) == ["delivered"]

    [got] = receiver.requests
    assert got.key == call.idempotency_key == f"jd_{tenant.pk}_{delivery.pk}"
    assert got.event == "journey.webhook"
    assert signature_valid(got.body, got.signature, secret.encode(), now=DUE.timestamp())
    assert not signature_valid(got.body, got.signature, b"whsec_someone-else", now=DUE.timestamp())
    assert not signature_valid(got.body, got.signature, secret.encode(), now=DUE.timestamp() + 600)  # a replay
    assert not signature_valid(got.body.replace(b"N0", b"N1"), got.signature, secret.encode(), now=DUE.timestamp())
    customer = Customer.objects.for_tenant(tenant).get()
    assert got.payload == {
        "id": call.idempotency_key, "type": "journey.webhook", "created_at": DUE.isoformat(),
        "store": {"slug": "acme", "name": "Acme Coffee"},
        "journey": {"id": journey.pk, "name": "App push"},
        "step": {"id": delivery.step_id, "position": 1, "name": ""},
        "customer": {"external_id": "c0", "email": "c0@example.com", "first_name": "N0", "last_name": "",
                     "locale": customer.locale, "time_zone": customer.time_zone},
        "order": {"external_id": "W-0", "number": customer.orders.get().number,
                  "total": str(customer.orders.get().total), "currency": "EUR"},
        "variables": {}, "data": {"sms_template": "thanks"},
    }
    call.refresh_from_db()
    assert (call.state, call.attempts, call.delivered_at, call.lease_until) == ("delivered", 1, DUE, None)
    [logged] = WebhookAttempt.objects.for_tenant(tenant).filter(call=call)
    assert (logged.number, logged.status_code, logged.error, logged.response_snippet) == (1, 200, "", '{"ok": true}')
    assert 0 <= logged.latency_ms < 5000
    assert attempt_all(DUE + dt.timedelta(hours=1)) == []  # delivered: never POSTed again
    assert len(receiver.requests) == 1


def test_a_receiver_that_is_down_gets_the_same_key_and_body_until_it_answers(api, tenant, settings):
    settings.JOURNEY_WEBHOOK_BACKOFF_BASE_SECONDS = 30
    webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    with Receiver(answer=lambda n: 503 if n <= 3 else 200) as receiver:
        webhook_journey(tenant, receiver.url)
        order(api)
        send_due()
        call = WebhookCall.objects.for_tenant(tenant).get()
        when = DUE
        for expected in ["pending", "pending", "pending", "delivered"]:
            assert attempt_all(when) == [expected]
            call.refresh_from_db()
            if expected == "pending":
                wait = call.next_attempt_at - when
                # Full jitter: anywhere from now to base * 2^(attempt-1).
                assert dt.timedelta(0) <= wait <= dt.timedelta(seconds=30 * 2 ** (call.attempts - 1))
                assert attempt_all(when + wait - dt.timedelta(microseconds=1) if wait else when) in ([], ["pending"])
                when = call.next_attempt_at
    assert receiver.statuses() == [503, 503, 503, 200]
    assert {r.key for r in receiver.requests} == {call.idempotency_key}
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes every time
    assert receiver.accepted == {call.idempotency_key: 1}
    logged = list(WebhookAttempt.objects.for_tenant(tenant).filter(call=call).order_by("number"))
    assert [(a.number, a.status_code, a.error) for a in logged] == [
        (1, 503, "HTTP 503"), (2, 503, "HTTP 503"), (3, 503, "HTTP 503"), (4, 200, "")]
    assert logged[0].response_snippet == "down for maintenance"


def test_a_refusal_fails_at_once_and_the_explain_view_says_why(api, tenant):
    webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    with Receiver(answer=lambda n: 422) as receiver:
        journey = webhook_journey(tenant, receiver.url)
        order(api)
        send_due()
        assert attempt_all(DUE) == ["failed"]
        assert attempt_all(DUE + dt.timedelta(days=1)) == []
    assert receiver.statuses() == [422]
    call = WebhookCall.objects.for_tenant(tenant).get()
    assert (call.state, call.last_error) == ("failed", "HTTP 422")
    [explained] = customer_journeys_explain(tenant=tenant, customer=Customer.objects.for_tenant(tenant).get(),
                                            journey=journey)
    step = explained.enrollments[0].steps[0]
    assert step.reason == "webhook failed: HTTP 422"
    assert step.summary == "Step 1 called the store's webhook 2026-11-24 10:00: webhook failed: HTTP 422"
    assert [h.reason for h in step.history][-1] == "webhook failed: HTTP 422"


def test_the_gate_holds_a_webhook_as_it_holds_an_email(api, tenant):
    webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    with Receiver() as receiver:
        webhook_journey(tenant, receiver.url)
        order(api, 0, marketing_consent=False)
        order(api, 1)
        order(api, 2)
        # No address of ours is needed: the store's system reaches the customer.
        Customer.objects.for_tenant(tenant).filter(external_id="c1").update(email="")
        Customer.objects.for_tenant(tenant).filter(external_id="c2").update(time_zone="Pacific/Auckland")  # 22:00
        assert send_due() == {"skipped": 1, "sent": 1, "deferred": 1, "": 0}
    by_customer = {d.customer.external_id: d for d in Delivery.objects.for_tenant(tenant).filter(step__position=1)
                   .select_related("customer")}
    assert (by_customer["c0"].state, by_customer["c0"].reason) == ("skipped", "no marketing consent")
    assert by_customer["c1"].state == "sent"
    assert (by_customer["c2"].state, by_customer["c2"].reason) == ("deferred", "quiet hours in the customer's time zone")
    assert list(WebhookCall.objects.for_tenant(tenant).values_list("customer__external_id", flat=True)) == ["c1"]


def test_a_webhook_counts_against_the_frequency_cap(api, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(frequency_cap_hours=48)
    webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    journey = webhook_journey(tenant, "http://127.0.0.1:9/unused")
    Step.objects.for_tenant(tenant).filter(journey=journey, position=2).update(wait=dt.timedelta(hours=1))
    order(api)
    send_due()
    result = send_due(DUE + dt.timedelta(hours=1))
    assert result == {"deferred": 1, "": 0}
    email = Delivery.objects.for_tenant(tenant).get(step__position=2)
    assert email.reason == "frequency cap: one marketing email per 48 h"


def test_down_for_ten_minutes_with_the_default_backoff_is_delivered_once_soon_after(api, tenant):
    """The default settings (30 s doubling, at most an hour, for a day): a receiver down for ten minutes
    gets the call within one backoff of coming back, once; a window shorter than the outage gives up."""
    webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    back_at = DUE + dt.timedelta(minutes=10)
    clock_now = {"at": DUE}
    with Receiver(answer=lambda n: 503 if clock_now["at"] < back_at else 200) as receiver:
        webhook_journey(tenant, receiver.url)
        order(api)
        send_due()
        call = WebhookCall.objects.for_tenant(tenant).get()
        while call.state == "pending":
            clock_now["at"] = call.next_attempt_at
            attempt_all(call.next_attempt_at)
            call.refresh_from_db()
    assert call.state == "delivered"
    assert receiver.accepted == {call.idempotency_key: 1}
    assert receiver.statuses()[-1] == 200 and set(receiver.statuses()[:-1]) == {503}
    # Backoffs of at most 30, 60, 120, 240, 480 s … reach past ten minutes within 6-7 tries (jitter makes
    # them shorter, so there may be a few more), and the last wait is at most 2^(n-1) * 30 s.
    assert 2 <= call.attempts <= 15
    assert back_at <= call.delivered_at <= back_at + dt.timedelta(seconds=min(3600, 30 * 2 ** (call.attempts - 2)))


def test_a_retry_window_shorter_than_the_outage_gives_up_with_its_reason(api, tenant, settings):
    settings.JOURNEY_WEBHOOK_RETRY_WINDOW_SECONDS = 300
    webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    with Receiver(answer=lambda n: 503) as receiver:
        webhook_journey(tenant, receiver.url)
        order(api)
        send_due()
        call = WebhookCall.objects.for_tenant(tenant).get()
        while call.state == "pending":
            attempt_all(call.next_attempt_at)
            call.refresh_from_db()
    assert call.state == "failed"
    assert call.last_error == f"gave up after {call.attempts} attempts: HTTP 503"
    assert WebhookAttempt.objects.for_tenant(tenant).filter(call=call).count() == call.attempts == len(receiver.requests)
    assert max(WebhookAttempt.objects.for_tenant(tenant).values_list("at", flat=True)) < DUE + dt.timedelta(seconds=300)


class WorkerDied(BaseException):
    """The process ended between the receiver's answer and our record of it."""


def test_a_worker_that_dies_after_the_post_leaves_a_call_retried_by_the_same_key(api, tenant, settings):
    settings.JOURNEY_WEBHOOK_TIMEOUT_SECONDS = 10
    webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    with Receiver() as receiver:
        webhook_journey(tenant, receiver.url)
        order(api)
        send_due()
        call = WebhookCall.objects.for_tenant(tenant).get()

        from journeys.webhooks import post_json

        def post_then_die(url, body, headers):
            post_json(url, body, headers)
            raise WorkerDied

        with clock.frozen(DUE), pytest.raises(WorkerDied):
            webhook_call_attempt(call_id=call.pk, post=post_then_die)
        # Leased while the dead worker's lease runs: nobody else tries it.
        assert attempt_all(DUE + dt.timedelta(seconds=39)) == []
        assert attempt_all(DUE + dt.timedelta(seconds=41)) == ["delivered"]
    assert [r.key for r in receiver.requests] == [call.idempotency_key] * 2
    assert receiver.requests[0].body == receiver.requests[1].body
    # At least once: the receiver saw the key twice and deduplicates by it (README).
    assert receiver.accepted == {call.idempotency_key: 2}
    assert list(WebhookAttempt.objects.for_tenant(tenant).values_list("number", "status_code")) == [(2, 200)]


def test_a_rotated_secret_signs_beside_the_new_one_for_a_day(api, tenant):
    with clock.frozen(NOON + dt.timedelta(hours=2)):  # the old one signs too until DUE + 2 h
        old = webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
        new = webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    assert old != new and new.startswith("whsec_")
    with Receiver() as receiver:
        webhook_journey(tenant, receiver.url)
        order(api, 0)
        order(api, 1)
        send_due()
        ids = list(WebhookCall.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True))
        with clock.frozen(DUE + dt.timedelta(hours=1)):
            webhook_call_attempt(call_id=ids[0])
        with clock.frozen(DUE + dt.timedelta(hours=3)):
            webhook_call_attempt(call_id=ids[1])
    within, after = receiver.requests
    assert within.signature.count("v1=") == 2
    assert signature_valid(within.body, within.signature, old.encode(), now=(DUE + dt.timedelta(hours=1)).timestamp())
    assert signature_valid(within.body, within.signature, new.encode(), now=(DUE + dt.timedelta(hours=1)).timestamp())
    assert after.signature.count("v1=") == 1
    assert not signature_valid(after.body, after.signature, old.encode(), now=(DUE + dt.timedelta(hours=3)).timestamp())
    assert signature_valid(after.body, after.signature, new.encode(), now=(DUE + dt.timedelta(hours=3)).timestamp())


def test_without_a_secret_or_to_a_private_host_the_call_fails_with_its_reason(api, tenant, settings):
    with Receiver() as receiver:
        webhook_journey(tenant, receiver.url)
        order(api, 0)
        send_due()
        assert attempt_all(DUE) == ["failed"]
        webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
        settings.JOURNEY_WEBHOOK_ALLOW_PRIVATE_HOSTS = False
        order(api, 1)
        send_due()
        assert attempt_all(DUE) == ["failed"]
    assert receiver.requests == []
    assert list(WebhookCall.objects.for_tenant(tenant).order_by("pk").values_list("last_error", flat=True)) == [
        "the store has no webhook signing secret: make one in Settings → Outbound webhooks",
        "127.0.0.1 resolves to 127.0.0.1, a private address; webhooks go to public hosts only"]


def test_backoff_is_exponential_capped_and_jittered(settings):
    settings.JOURNEY_WEBHOOK_BACKOFF_BASE_SECONDS = 30
    settings.JOURNEY_WEBHOOK_BACKOFF_MAX_SECONDS = 3600
    assert [backoff(n, rng=lambda: 1.0).total_seconds() for n in (1, 2, 3, 8, 9, 40)] == [30, 60, 120, 3600, 3600, 3600]
    assert backoff(3, rng=lambda: 0.5).total_seconds() == 60
    assert len({backoff(5) for _ in range(20)}) > 1


WEBHOOK_JOURNEY = {"name": "App push", "trigger": "order_paid", "steps": [
    {"position": 1, "kind": "webhook", "wait": "P1D", "config": {"url": "https://example.com/hooks"}}]}


@pytest.mark.parametrize(("config", "fields"), [
    ({}, {"steps.0.config.url": ["is required"]}),
    ({"url": "ftp://example.com/x"}, {"steps.0.config.url": [
        "must be a full http(s) address, such as https://example.com/hooks/lifecycle"]}),
    ({"url": "https://user:pw@example.com/x"}, {"steps.0.config.url": [
        "must not carry a user name or password: the call is signed instead (X-Lifecycle-Signature)"]}),
    ({"url": "https://example.com/x", "data": {"blob": "x" * 5000}}, {"steps.0.config.data": [
        "is 5012 characters as JSON; keep it under 4000"]}),
    ({"url": "https://example.com/x", "retries": 3}, {"steps.0.config.retries": [
        "is not a field of this request; check its spelling"]}),
])
def test_a_webhook_steps_mistakes_are_400s_naming_the_field(api, tenant, config, fields):
    body = json.loads(json.dumps(WEBHOOK_JOURNEY))
    body["steps"][0]["config"] = config
    response = api.post("/api/v1/journeys", body)
    assert response.status_code == 400, response.content
    assert response.json()["fields"] == fields
    assert not Step.objects.for_tenant(tenant).exists()


def test_a_webhook_journey_round_trips_and_needs_the_secret_to_go_live(api, tenant):
    created = api.post("/api/v1/journeys", {**WEBHOOK_JOURNEY, "status": "active"})
    assert created.status_code == 400
    assert "make the store's webhook secret first" in json.dumps(created.json())
    assert not Step.objects.for_tenant(tenant).exists()
    webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    created = api.post("/api/v1/journeys", {**WEBHOOK_JOURNEY, "status": "active"})
    assert created.status_code in (200, 201), created.content
    exported = api.get(f"/api/v1/journeys/{created.json()['id']}").json()
    step = exported["steps"][0]
    assert (step["kind"], step["config"], step["template"]) == ("webhook", {"url": "https://example.com/hooks"}, None)
    assert JourneyIn.model_validate(exported | {"status": None}).steps[0].kind == "webhook"


def test_webhook_secret_made_and_rotated_is_never_stored_in_the_clear(tenant):
    from journeys.models import WebhookSecret

    secret = webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    row = WebhookSecret.objects.for_tenant(tenant).get()
    assert secret not in row.secret_encrypted and row.previous_secret_encrypted == ""


def test_erasure_strips_the_customer_from_their_calls_and_stops_the_pending_ones(api, tenant):
    webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    with Receiver(answer=lambda n: 503 if n == 1 else 200) as receiver:
        webhook_journey(tenant, receiver.url)
        order(api, 0)
        order(api, 1)
        send_due()
        first, second = WebhookCall.objects.for_tenant(tenant).order_by("pk")
        with clock.frozen(DUE):
            assert webhook_call_attempt(call_id=first.pk) == "pending"  # the receiver is down
            assert webhook_call_attempt(call_id=second.pk) == "delivered"

        assert api.delete("/api/v1/customers/c0").status_code == 204
        assert api.delete("/api/v1/customers/c1").status_code == 204
        process_events()

        assert attempt_all(DUE + dt.timedelta(days=1)) == []  # never sent after the erasure
    assert len(receiver.requests) == 2
    for call in WebhookCall.objects.for_tenant(tenant).order_by("pk"):
        assert "@example.com" not in call.body and "N0" not in call.body and "N1" not in call.body
        assert json.loads(call.body) == {"id": call.idempotency_key, "type": "journey.webhook",
                                         "created_at": DUE.isoformat(), "customer": None, "erased": True}
    assert list(WebhookCall.objects.for_tenant(tenant).order_by("pk").values_list("state", "last_error")) == [
        ("failed", "customer erased"), ("delivered", "")]


def test_a_signature_header_that_is_not_ours_is_refused_not_an_error():
    body, key = b'{"id": "jd_1_1"}', b"whsec_x"
    good = signature(body, [key], 1_800_000_000)
    assert signature_valid(body, good, key, now=1_800_000_000)
    for header in ("", "v1=abc", "t=²,v1=abc", "t=١٨٠٠٠٠٠٠٠٠,v1=abc", good.replace("t=", "t=-"),
                   good + ",t=1800000000", "t=" + "9" * 40 + ",v1=abc"):
        assert not signature_valid(body, header, key, now=1_800_000_000), header
