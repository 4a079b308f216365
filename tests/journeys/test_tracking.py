"""Hearing back from the ESP: real-shaped Postmark and Mailgun tracking webhooks, posted to
anymail's URLs with basic auth (and Mailgun's HMAC), about a delivery the engine really sent."""

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid

import pytest
from anymail.backends.test import EmailBackend as AnymailTestBackend
from django.core import mail
from django.db import DatabaseError
from django.test import Client

from journeys.models import Delivery
from lifecycle import clock
from lifecycle.models import Customer, Event
from tests.factories import order_payload

from .helpers import at, make_journey, process_events
from .test_engine import send_due

pytestmark = pytest.mark.django_db

NOON = at("2026-11-23T09:00:00+00:00")  # 10:00 in Berlin
SENT_AT = NOON + dt.timedelta(days=1)
MAILGUN_SIGNING_KEY = "9c1e5b7d2f0a4e8b6c3d1f2a5e7b9c0d"
AUTH = "Basic " + base64.b64encode(b"user:pass").decode()
POSTMARK_URL = "/anymail/postmark/tracking/"
MAILGUN_URL = "/anymail/mailgun/tracking/"


class PostmarkLikeBackend(AnymailTestBackend):
    """anymail's test backend, answering with a message id shaped like Postmark's: a UUID."""

    def get_esp_message_id(self, message):
        return str(uuid.uuid4())


class MailgunLikeBackend(AnymailTestBackend):
    """…and like Mailgun's, which answers `id: "<…@mg.domain>"` (anymail keeps the brackets)."""

    def get_esp_message_id(self, message):
        return f"<20261124090000.{mail.outbox.index(message)}.{secrets.token_hex(8).upper()}@mg.acme.example>"


@pytest.fixture(autouse=True)
def _webhook_settings(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass", "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY}
    settings.EMAIL_BACKEND = "tests.journeys.test_tracking.PostmarkLikeBackend"


@pytest.fixture
def sent(api, tenant) -> Delivery:
    """Step 1 of two, sent through the engine to ada@example.com; step 2 due six days later."""
    make_journey(tenant, name="Welcome", steps=[("P1D", "Setup tips"), ("P6D", "How is it going?")])
    with clock.frozen(NOON):
        api.post("/api/v1/orders", order_payload(
            external_id="O1", customer={"external_id": "c1", "email": "ada@example.com", "time_zone": "Europe/Berlin",
                                        "marketing_consent": True}))
        process_events()
    assert send_due(SENT_AT) == ["sent"]
    delivery = Delivery.objects.for_tenant(tenant).get(state="sent")
    assert delivery.esp_message_id and delivery.esp_message_id != delivery.message_id
    return delivery


def metadata(delivery: Delivery) -> dict[str, str]:
    """The metadata the engine sent with the delivery, as the ESP echoes it back: Postmark converts
    metadata values to strings; so does Mailgun's user-variables."""
    [sent] = [m for m in mail.outbox if str(m.metadata.get("delivery_id")) == str(delivery.pk)]
    assert set(sent.metadata) == {"tenant_id", "journey_id", "step_id", "delivery_id", "delivery_token"}
    return {key: str(value) for key, value in sent.metadata.items()}


def postmark(payload: dict, auth: str | None = AUTH, client: Client | None = None):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return (client or Client()).post(POSTMARK_URL, data=json.dumps(payload), content_type="application/json",
                                     **headers)


def pm_delivery(delivery, **extra):
    return {"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
            "MessageID": delivery.esp_message_id, "Recipient": "ada@example.com", "Tag": f"journey-{delivery.journey_id}",
            "DeliveredAt": "2026-11-24T04:00:05.2735393-05:00", "Details": "smtp;250 2.0.0 OK",
            "Metadata": metadata(delivery), **extra}


def pm_open(delivery, received="2026-11-24T09:12:41.2493688Z"):
    return {"RecordType": "Open", "MessageStream": "outbound", "FirstOpen": True,
            "Client": {"Name": "Gmail", "Company": "Google", "Family": "Gmail"},
            "OS": {"Name": "unknown", "Company": "unknown", "Family": "unknown"}, "Platform": "WebMail",
            "UserAgent": "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0", "ReadSeconds": 5, "Geo": {},
            "MessageID": delivery.esp_message_id, "Metadata": metadata(delivery), "ReceivedAt": received,
            "Tag": f"journey-{delivery.journey_id}", "Recipient": "ada@example.com"}


def pm_click(delivery):
    return {"RecordType": "Click", "MessageStream": "outbound", "ClickLocation": "HTML",
            "Client": {"Name": "Chrome 35.0.1916.153", "Company": "Google", "Family": "Chrome"},
            "OS": {"Name": "OS X 10.7 Lion", "Company": "Apple Computer, Inc.", "Family": "OS X 10"},
            "Platform": "Desktop", "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5) etc.",
            "OriginalLink": "https://acme.example/setup", "Geo": {}, "MessageID": delivery.esp_message_id,
            "Metadata": metadata(delivery), "ReceivedAt": "2026-11-24T09:13:11.9065619Z",
            "Tag": f"journey-{delivery.journey_id}", "Recipient": "ada@example.com"}


def pm_bounce(delivery, type_="HardBounce", bounce_id=901542550, email="ada@example.com"):
    names = {"HardBounce": ("Hard bounce", 1), "SoftBounce": ("Soft bounce", 4096), "Transient": ("Message delayed", 2),
             "BadEmailAddress": ("Invalid email address", 100000)}
    name, code = names[type_]
    return {"RecordType": "Bounce", "ID": bounce_id, "Type": type_, "TypeCode": code, "ServerID": 23,
            "MessageStream": "outbound", "Name": name, "Tag": f"journey-{delivery.journey_id}",
            "MessageID": delivery.esp_message_id, "Metadata": metadata(delivery),
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "Email": email, "From": "hello@lifecycle.localhost", "BouncedAt": "2026-11-24T04:01:50.3963933-05:00",
            "DumpAvailable": True, "Inactive": True, "CanActivate": True, "Subject": "Setup tips"}


def pm_complaint(delivery):
    return {"RecordType": "SpamComplaint", "ID": 901542551, "Type": "SpamComplaint", "TypeCode": 512,
            "Name": "Spam complaint", "Tag": f"journey-{delivery.journey_id}", "MessageID": delivery.esp_message_id,
            "Metadata": metadata(delivery), "ServerID": 23, "MessageStream": "outbound", "Description": "",
            "Details": "Test spam complaint details", "Email": "ada@example.com", "From": "hello@lifecycle.localhost",
            "BouncedAt": "2026-11-24T10:28:50.3963933Z", "DumpAvailable": True, "Inactive": True,
            "CanActivate": False, "Subject": "Setup tips"}


def pm_subscription_change(delivery, suppress=True, reason="ManualSuppression"):
    return {"RecordType": "SubscriptionChange", "MessageID": delivery.esp_message_id, "ServerID": 23,
            "MessageStream": "outbound", "ChangedAt": "2026-11-24T10:17:32Z", "Recipient": "ada@example.com",
            "Origin": "Recipient", "SuppressSending": suppress, "SuppressionReason": reason if suppress else None,
            "Tag": f"journey-{delivery.journey_id}", "Metadata": metadata(delivery)}


def mailgun_body(event_data: dict, *, token: str | None = None, key: str = MAILGUN_SIGNING_KEY) -> dict:
    timestamp = str(int(event_data["timestamp"]))
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event_data}


def mg_event(delivery, event: str, timestamp: float, **extra) -> dict:
    return {"event": event, "timestamp": timestamp, "id": secrets.token_urlsafe(16), "log-level": "info",
            "recipient": "ada@example.com", "recipient-domain": "example.com", "tags": [f"journey-{delivery.journey_id}"],
            "user-variables": metadata(delivery), "campaigns": [], "flags": {"is-routed": False, "is-test-mode": False},
            "envelope": {"sender": "bounce@mg.acme.example", "transport": "smtp", "targets": "ada@example.com"},
            "message": {"headers": {"to": "Ada <ada@example.com>", "from": "Acme Coffee <hello@lifecycle.localhost>",
                                    "subject": "Setup tips",
                                    "message-id": delivery.esp_message_id.strip("<>")},
                        "attachments": [], "size": 4096},
            **extra}


def mailgun(body: dict, auth: str | None = AUTH, client: Client | None = None):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return (client or Client()).post(MAILGUN_URL, data=json.dumps(body), content_type="application/json", **headers)


def snapshot(tenant) -> str:
    rows = {
        "deliveries": list(Delivery.objects.for_tenant(tenant).order_by("pk").values()),
        "customers": list(Customer.objects.for_tenant(tenant).order_by("pk").values()),
        "events": list(Event.objects.for_tenant(tenant).order_by("pk").values("pk", "type", "dedupe_key")),
    }
    return json.dumps(rows, default=str, sort_keys=True)


def email_events(tenant) -> list[Event]:
    return list(Event.objects.for_tenant(tenant).filter(type__startswith="email.").order_by("pk"))


def test_delivery_open_and_click_update_the_delivery_once_and_land_on_the_timeline(sent, tenant):
    with clock.frozen(SENT_AT + dt.timedelta(minutes=20)):
        for payload in (pm_delivery(sent), pm_open(sent), pm_click(sent)):
            assert postmark(payload).status_code == 200

    sent.refresh_from_db()
    assert sent.state == "sent"
    assert sent.delivered_at == at("2026-11-24T09:00:05.273539+00:00")
    assert sent.opened_at == at("2026-11-24T09:12:41.249368+00:00")
    assert sent.clicked_at == at("2026-11-24T09:13:11.906561+00:00")
    assert (sent.bounced_at, sent.complained_at) == (None, None)
    heard = [(h["state"], h["reason"], h["esp_event"]) for h in sent.history[-3:]]
    assert heard == [("sent", "Postmark: delivered", "delivered"), ("sent", "Postmark: opened", "opened"),
                     ("sent", "Postmark: clicked", "clicked")]

    events = email_events(tenant)
    assert [(e.type, e.occurred_at) for e in events] == [
        ("email.delivered", sent.delivered_at), ("email.opened", sent.opened_at), ("email.clicked", sent.clicked_at)]
    base = {"esp": "Postmark", "delivery_id": sent.pk, "journey_id": sent.journey_id, "step_id": sent.step_id,
            "message_id": sent.esp_message_id}
    assert events[0].data == base
    assert events[2].data == {**base, "url": "https://acme.example/setup"}
    assert {e.customer_id for e in events} == {sent.customer_id}
    assert {e.order.external_id for e in events} == {"O1"}
    assert all(e.dedupe_key.startswith("esp:") for e in events)


def test_a_replayed_webhook_does_nothing_twice(sent, tenant):
    payloads = [pm_delivery(sent), pm_open(sent), pm_click(sent), pm_bounce(sent, "SoftBounce")]
    for payload in payloads:
        assert postmark(payload).status_code == 200
    before = snapshot(tenant)

    for payload in payloads:
        assert postmark(payload).status_code == 200

    assert snapshot(tenant) == before


def test_timestamps_are_set_once_but_every_open_is_on_the_timeline(sent, tenant):
    assert postmark(pm_open(sent, received="2026-11-24T09:12:41Z")).status_code == 200
    assert postmark(pm_open(sent, received="2026-11-25T18:00:00Z")).status_code == 200

    sent.refresh_from_db()
    assert sent.opened_at == at("2026-11-24T09:12:41+00:00")
    assert [e.occurred_at for e in email_events(tenant)] == [at("2026-11-24T09:12:41+00:00"),
                                                              at("2026-11-25T18:00:00+00:00")]


def test_an_unknown_message_id_is_ignored_with_200(sent, tenant, caplog):
    before = snapshot(tenant)
    stranger = pm_delivery(sent, MessageID=str(uuid.uuid4()), Metadata={})

    response = postmark(stranger)

    assert response.status_code == 200
    assert snapshot(tenant) == before
    assert "unknown message id" in caplog.text


@pytest.mark.parametrize("auth", [None, "Basic " + base64.b64encode(b"user:wrong").decode(), "Bearer user:pass"])
def test_wrong_or_missing_basic_auth_is_refused_and_writes_nothing(sent, tenant, auth):
    before = snapshot(tenant)

    response = postmark(pm_bounce(sent), auth=auth)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic ")
    assert snapshot(tenant) == before


def test_a_hard_bounce_suppresses_and_the_next_step_is_skipped(sent, tenant):
    assert postmark(pm_bounce(sent)).status_code == 200

    customer = Customer.objects.for_tenant(tenant).get()
    assert (customer.suppression_reason, customer.unsubscribed_at) == ("bounce", None)
    assert customer.suppressed_at is not None
    sent.refresh_from_db()
    assert (sent.state, sent.bounced_at) == ("sent", at("2026-11-24T09:01:50.396393+00:00"))
    assert sent.history[-1]["reason"] == "Postmark: bounced (bounced); hard bounce: address suppressed"
    [bounced] = email_events(tenant)
    assert bounced.type == "email.bounced"
    assert bounced.data["reject_reason"] == "bounced"
    assert bounced.data["effect"] == "hard bounce: address suppressed"
    assert bounced.data["description"].startswith("The server was unable to deliver")
    assert Event.objects.for_tenant(tenant).filter(type="customer.suppressed").get().data == {"reason": "bounce"}

    assert send_due(SENT_AT + dt.timedelta(days=6)) == ["skipped"]
    following = Delivery.objects.for_tenant(tenant).exclude(pk=sent.pk).get()
    assert (following.state, following.reason) == ("skipped", "address suppressed (bounce)")
    assert len(mail.outbox) == 1


def test_soft_and_transient_bounces_keep_the_address(sent, tenant):
    assert postmark(pm_bounce(sent, "SoftBounce", bounce_id=1)).status_code == 200
    assert postmark(pm_bounce(sent, "Transient", bounce_id=2)).status_code == 200

    customer = Customer.objects.for_tenant(tenant).get()
    assert customer.suppressed_at is None
    sent.refresh_from_db()
    assert sent.bounced_at == at("2026-11-24T09:01:50.396393+00:00")
    assert [h["reason"] for h in sent.history[-2:]] == ["Postmark: bounced (bounced); soft bounce: address kept",
                                                        "Postmark: deferred"]
    assert [e.type for e in email_events(tenant)] == ["email.bounced", "email.deferred"]
    assert send_due(SENT_AT + dt.timedelta(days=6)) == ["sent"]


def test_a_bounce_of_an_address_the_customer_no_longer_has_does_not_suppress_them(sent, tenant):
    Customer.objects.for_tenant(tenant).update(email="ada.new@example.com")

    assert postmark(pm_bounce(sent)).status_code == 200

    assert Customer.objects.for_tenant(tenant).get().suppressed_at is None
    [bounced] = email_events(tenant)
    assert bounced.data["effect"] == "hard bounce of an address the customer no longer has: not suppressed"


def test_a_complaint_stops_marketing_but_not_transactional_email(sent, tenant):
    last_event = Event.objects.for_tenant(tenant).order_by("-pk").values_list("pk", flat=True)[0]

    assert postmark(pm_complaint(sent)).status_code == 200

    customer = Customer.objects.for_tenant(tenant).get()
    assert (customer.suppressed_at, customer.suppression_reason) == (None, "")
    assert customer.unsubscribed_at is not None and customer.marketing_consent is False
    assert customer.consent_source == "unsubscribe"
    sent.refresh_from_db()
    assert (sent.state, sent.complained_at) == ("sent", at("2026-11-24T10:28:50.396393+00:00"))
    types = list(Event.objects.for_tenant(tenant).filter(pk__gt=last_event).order_by("pk")
                 .values_list("type", flat=True))
    assert types == ["customer.unsubscribed", "email.complained"]
    unsubscribed = Event.objects.for_tenant(tenant).get(type="customer.unsubscribed")
    assert unsubscribed.data == {"source": "unsubscribe", "detail": "Postmark complained"}

    assert send_due(SENT_AT + dt.timedelta(days=6)) == ["skipped"]
    assert Delivery.objects.for_tenant(tenant).exclude(pk=sent.pk).get().reason == "unsubscribed from marketing email"
    assert len(mail.outbox) == 1


def test_an_unsubscribe_at_the_esp_unsubscribes_from_marketing(sent, tenant):
    assert postmark(pm_subscription_change(sent)).status_code == 200

    customer = Customer.objects.for_tenant(tenant).get()
    assert customer.unsubscribed_at is not None and customer.suppressed_at is None
    assert [e.type for e in email_events(tenant)] == ["email.unsubscribed"]
    assert send_due(SENT_AT + dt.timedelta(days=6)) == ["skipped"]
    assert Delivery.objects.for_tenant(tenant).exclude(pk=sent.pk).get().reason == "unsubscribed from marketing email"


def test_a_rejected_invalid_address_is_suppressed(sent, tenant):
    # Postmark's BadEmailAddress bounce type is anymail's rejected / invalid.
    assert postmark(pm_bounce(sent, "BadEmailAddress")).status_code == 200

    customer = Customer.objects.for_tenant(tenant).get()
    assert customer.suppression_reason == "invalid address"
    [rejected] = email_events(tenant)
    assert (rejected.type, rejected.data["reject_reason"]) == ("email.rejected", "invalid")


def test_events_we_do_not_track_and_malformed_ones_are_ignored(sent, tenant):
    before = snapshot(tenant)

    assert postmark(pm_subscription_change(sent, suppress=False)).status_code == 200  # re-subscribed at the ESP
    assert postmark({"RecordType": "SomethingNew", "MessageID": sent.esp_message_id}).status_code == 200
    assert postmark({"MessageID": sent.esp_message_id}).status_code == 200

    assert snapshot(tenant) == before


def test_metadata_finds_a_delivery_whose_esp_id_was_never_recorded(sent, tenant):
    # The worker died after the ESP accepted the message: no esp id, state ambiguous.
    Delivery.objects.for_tenant(tenant).filter(pk=sent.pk).update(state="ambiguous", esp_message_id="")
    esp_id = str(uuid.uuid4())

    assert postmark(pm_delivery(sent, MessageID=esp_id)).status_code == 200

    sent.refresh_from_db()
    assert (sent.state, sent.esp_message_id) == ("ambiguous", esp_id)
    assert sent.delivered_at is not None
    assert [e.type for e in email_events(tenant)] == ["email.delivered"]


def test_metadata_naming_another_tenant_is_ignored(sent, tenant, other_tenant):
    before = snapshot(tenant)
    forged = {**metadata(sent), "tenant_id": str(other_tenant.pk)}

    assert postmark(pm_delivery(sent, Metadata=forged)).status_code == 200  # a known message id
    assert postmark(pm_delivery(sent, MessageID=str(uuid.uuid4()), Metadata=forged)).status_code == 200

    assert snapshot(tenant) == before
    assert Event.objects.for_tenant(other_tenant).count() == 0


def test_a_database_error_propagates_so_the_esp_retries(sent, tenant, monkeypatch):
    before = snapshot(tenant)

    def broken(**kwargs):
        raise DatabaseError("the connection went away")

    monkeypatch.setattr("journeys.engagement.event_append", broken)
    response = postmark(pm_bounce(sent), client=Client(raise_request_exception=False))

    assert response.status_code == 500
    assert snapshot(tenant) == before  # the suppression rolled back with it


def test_a_webhook_is_a_handful_of_queries(sent, django_assert_max_num_queries):
    # Find by esp id, savepoint, lock the row, dedupe check, update, timeline insert, release.
    with django_assert_max_num_queries(7):
        assert postmark(pm_delivery(sent)).status_code == 200


# --- Mailgun: JSON webhooks signed with HMAC-SHA256(signing key, timestamp + token) ---------


@pytest.fixture
def mg_sent(settings, api, tenant) -> Delivery:
    settings.EMAIL_BACKEND = "tests.journeys.test_tracking.MailgunLikeBackend"
    make_journey(tenant, name="Welcome", steps=[("P1D", "Setup tips"), ("P6D", "How is it going?")])
    with clock.frozen(NOON):
        api.post("/api/v1/orders", order_payload(
            external_id="O1", customer={"external_id": "c1", "email": "ada@example.com", "marketing_consent": True}))
        process_events()
    assert send_due(SENT_AT) == ["sent"]
    delivery = Delivery.objects.for_tenant(tenant).get(state="sent")
    assert delivery.esp_message_id.startswith("<20261124090000.0.")
    return delivery


def test_mailgun_delivered_then_permanent_failure(mg_sent, tenant):
    delivered = mg_event(mg_sent, "delivered", 1795510805.153125, **{
        "delivery-status": {"tls": True, "mx-host": "mx.example.com", "code": 250, "description": "",
                            "session-seconds": 0.43, "utf8": True, "attempt-no": 1, "message": "OK",
                            "certificate-verified": True}})
    failed = mg_event(mg_sent, "failed", 1795510865.5, severity="permanent", reason="bounce", **{
        "delivery-status": {"code": 550, "attempt-no": 1, "description": "",
                            "message": "5.1.1 The email account that you tried to reach does not exist."}})

    assert mailgun(mailgun_body(delivered)).status_code == 200
    assert mailgun(mailgun_body(failed)).status_code == 200

    mg_sent.refresh_from_db()
    assert mg_sent.delivered_at == dt.datetime.fromtimestamp(1795510805.153125, tz=dt.UTC)
    assert mg_sent.bounced_at == dt.datetime.fromtimestamp(1795510865.5, tz=dt.UTC)
    assert [e.type for e in email_events(tenant)] == ["email.delivered", "email.bounced"]
    assert email_events(tenant)[0].data["esp"] == "Mailgun"
    assert Customer.objects.for_tenant(tenant).get().suppression_reason == "bounce"


def test_mailgun_replays_with_a_new_signature_are_recorded_once(mg_sent, tenant):
    complained = mg_event(mg_sent, "complained", 1795514400.0)
    assert mailgun(mailgun_body(complained)).status_code == 200
    before = snapshot(tenant)

    # Mailgun signs each POST afresh: the retry has a new token, the event is the same.
    assert mailgun(mailgun_body(complained)).status_code == 200
    assert mailgun(mailgun_body(complained, token="a" * 50)).status_code == 200

    assert snapshot(tenant) == before
    customer = Customer.objects.for_tenant(tenant).get()
    assert customer.suppressed_at is None and customer.unsubscribed_at is not None


def test_mailgun_temporary_failure_is_a_deferral(mg_sent, tenant):
    deferred = mg_event(mg_sent, "failed", 1795510865.0, severity="temporary", reason="generic")
    assert mailgun(mailgun_body(deferred)).status_code == 200

    assert [e.type for e in email_events(tenant)] == ["email.deferred"]
    assert Customer.objects.for_tenant(tenant).get().suppressed_at is None


def test_mailgun_with_a_bad_signature_is_refused_and_writes_nothing(mg_sent, tenant):
    before = snapshot(tenant)
    forged = mailgun_body(mg_event(mg_sent, "complained", 1795514400.0), key="not-the-signing-key")

    assert mailgun(forged).status_code == 403
    assert mailgun(mailgun_body(mg_event(mg_sent, "complained", 1795514400.0)), auth=None).status_code == 401

    assert snapshot(tenant) == before


def test_a_real_esp_without_a_webhook_secret_is_flagged(settings):
    from journeys.checks import tracking_webhooks_secured

    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "x"}
    assert [w.id for w in tracking_webhooks_secured(None)] == ["journeys.W001"]
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "x", "WEBHOOK_SECRET": "user:pass"}
    assert tracking_webhooks_secured(None) == []
    settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
    settings.ANYMAIL = {"MAILGUN_API_KEY": "x", "WEBHOOK_SECRET": "user:pass"}
    [warning] = tracking_webhooks_secured(None)
    assert (warning.id, warning.msg) == ("journeys.W001", "ESP tracking webhooks refuse every post: "
                                                          "ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY not set.")
    settings.ANYMAIL = {"MAILGUN_API_KEY": "x", "WEBHOOK_SECRET": "user:pass", "MAILGUN_WEBHOOK_SIGNING_KEY": "k"}
    assert tracking_webhooks_secured(None) == []
    settings.EMAIL_BACKEND = "lifecycle.mail.OutboxBackend"
    settings.ANYMAIL = {}
    assert tracking_webhooks_secured(None) == []
