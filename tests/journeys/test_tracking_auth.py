"""ESP tracking webhooks fail closed: every endpoint anymail has refuses a post that does not prove
where it came from, and changes nothing; a verified event finds its delivery only through what we
sent (the HMAC'd Message-ID or signed metadata), never through guessable tenant/delivery ids."""

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core import mail
from django.test import Client
from django.urls import reverse

from journeys import tracking
from journeys.models import Delivery
from journeys.rendering import delivery_token
from lifecycle import clock
from lifecycle.models import Customer, Event
from tests.factories import order_payload

from .helpers import make_journey, process_events
from .test_engine import send_due
from .test_tracking import (
    AUTH,
    NOON,
    SENT_AT,
    metadata,
    pm_bounce,
    pm_delivery,
    pm_open,
    pm_subscription_change,
)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TRACKING_URLS = sorted({reverse(f"anymail:{p.name}") for p in tracking.urlpatterns})
WRONG_AUTH = "Basic " + base64.b64encode(b"user:guess").decode()


@pytest.fixture(autouse=True)
def _webhook_settings(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "user:pass"}
    settings.EMAIL_BACKEND = "tests.journeys.test_tracking.PostmarkLikeBackend"


def send_one(api, tenant, email: str) -> Delivery:
    make_journey(tenant, name="Welcome", steps=[("P1D", "Setup tips"), ("P6D", "How is it going?")])
    with clock.frozen(NOON):
        api.post("/api/v1/orders", order_payload(
            external_id="O1", customer={"external_id": "c1", "email": email, "marketing_consent": True}))
        process_events()
    assert send_due(SENT_AT) == ["sent"]
    return Delivery.objects.for_tenant(tenant).get(state="sent")


@pytest.fixture
def two_stores(api, tenant, other_api, other_tenant) -> tuple[Delivery, Delivery]:
    """A sent delivery in each of two stores (their ids are sequential, as an attacker would guess)."""
    return send_one(api, tenant, "ada@example.com"), send_one(other_api, other_tenant, "bob@example.com")


def snapshot(*tenants) -> str:
    rows = {
        t.pk: {
            "deliveries": list(Delivery.objects.for_tenant(t).order_by("pk").values()),
            "customers": list(Customer.objects.for_tenant(t).order_by("pk").values()),
            "events": list(Event.objects.for_tenant(t).order_by("pk").values("pk", "type", "data", "dedupe_key")),
        }
        for t in tenants
    }
    return json.dumps(rows, default=str, sort_keys=True)


def post(url: str, body: bytes | str, *, auth: str | None = AUTH, content_type="application/json", **headers):
    if auth:
        headers["HTTP_AUTHORIZATION"] = auth
    client = Client(raise_request_exception=False)
    return client.post(url, data=body, content_type=content_type, **headers)


def forged_unsubscribe(delivery: Delivery, **metadata_fields) -> dict:
    """What the probe sent: Postmark's SubscriptionChange naming a store's tenant_id/delivery_id."""
    body = pm_subscription_change(delivery)
    body["MessageID"] = str(uuid.uuid4())
    body["Metadata"] = {"tenant_id": str(delivery.tenant_id), "delivery_id": str(delivery.pk), **metadata_fields}
    return body


def test_every_tracking_endpoint_is_served_and_no_inbound_one():
    assert "/anymail/postmark/tracking/" in TRACKING_URLS
    assert {"/anymail/mailgun/tracking/", "/anymail/sendgrid/tracking/", "/anymail/amazon_ses/tracking/",
            "/anymail/mandrill/", "/anymail/resend/tracking/", "/anymail/unisender_go/tracking/"} <= set(TRACKING_URLS)
    assert len(TRACKING_URLS) == 15
    assert Client().post("/anymail/postmark/inbound/", "{}", content_type="application/json").status_code == 404


BODIES = [b"", b"garbage \xff\xfe", b"{}", b"[]", b'[{"event": "unsubscribe"}]', b"[" * 5000,
          b'{"signature": {"timestamp": "1", "token": "x", "signature": "y"}, "event-data": {}}']
NO_AUTH = [None, WRONG_AUTH, "Bearer user:pass", "Basic !!!", "Basic " + base64.b64encode(b"user:pass ").decode()]


@pytest.mark.parametrize("url", TRACKING_URLS)
def test_an_unauthenticated_post_to_any_tracking_endpoint_is_401_and_changes_nothing(two_stores, tenant, other_tenant,
                                                                                       url):
    mine, theirs = two_stores
    before = snapshot(tenant, other_tenant)

    for auth in NO_AUTH:
        for body in [json.dumps(forged_unsubscribe(theirs)), json.dumps(pm_bounce(mine)), "garbage", ""]:
            response = post(url, body, auth=auth)
            assert response.status_code == 401, (url, auth, response.content)
            assert response["WWW-Authenticate"] == 'Basic realm="ESP tracking webhook"'
            assert "ANYMAIL_WEBHOOK_SECRET" in response.json()["message"]

    assert snapshot(tenant, other_tenant) == before


@pytest.mark.parametrize("url", TRACKING_URLS)
def test_garbage_with_the_right_auth_is_refused_with_a_4xx_never_a_500(two_stores, tenant, other_tenant, url):
    before = snapshot(tenant, other_tenant)

    for body, content_type in [*((b, "application/json") for b in BODIES),
                               ("event=unsubscribe&mandrill_events=[]", "application/x-www-form-urlencoded")]:
        response = post(url, body, content_type=content_type)
        # An empty object or list may be a batch of no events (200); signing ESPs cannot verify it (403).
        assert response.status_code in (200, 400, 403), (url, body, response.content)
        if response.status_code != 200:
            assert response.json()["message"]

    assert snapshot(tenant, other_tenant) == before


@pytest.mark.parametrize("url", ["/anymail/mailgun/tracking/", "/anymail/mailersend/tracking/", "/anymail/mandrill/",
                                 "/anymail/postal/tracking/", "/anymail/unisender_go/tracking/"])
def test_a_signing_esp_whose_key_is_not_configured_answers_403(two_stores, tenant, other_tenant, url):
    # Mailgun, MailerSend, Mandrill, Postal and Unisender Go cannot check a post without their key.
    before = snapshot(tenant, other_tenant)

    response = post(url, json.dumps({"event": "unsubscribed"}))

    assert response.status_code == 403
    assert "not configured" in response.json()["message"]
    assert snapshot(tenant, other_tenant) == before


def test_without_any_webhook_secret_configured_every_post_is_refused(settings, two_stores, tenant, other_tenant):
    mine, _ = two_stores
    settings.ANYMAIL = {}
    before = snapshot(tenant, other_tenant)

    for auth in (AUTH, None):
        response = post("/anymail/postmark/tracking/", json.dumps(pm_bounce(mine)), auth=auth)
        assert response.status_code == 403
        assert response.json()["message"] == "Tracking webhooks are not configured on this server."

    assert snapshot(tenant, other_tenant) == before


def test_a_head_request_answers_without_auth_and_reads_nothing(two_stores, tenant, other_tenant):
    before = snapshot(tenant, other_tenant)

    assert Client().head("/anymail/postmark/tracking/").status_code == 200
    assert Client().get("/anymail/postmark/tracking/").status_code == 405
    assert Client().get("/anymail/unisender_go/tracking/").status_code == 200  # how Unisender Go checks the URL

    assert snapshot(tenant, other_tenant) == before


@pytest.mark.parametrize("token", [None, "", "0" * 24, "not-hex", "deadbeef"], ids=["absent", "empty", "zeros",
                                                                                      "not-hex", "short"])
def test_forged_metadata_with_valid_auth_but_no_valid_token_is_ignored(two_stores, tenant, other_tenant, token, caplog):
    """The probe's attack, with the right basic auth: sequential tenant_id/delivery_id of another store."""
    mine, theirs = two_stores
    before = snapshot(tenant, other_tenant)
    fields = {} if token is None else {"delivery_token": token}

    for target in (theirs, mine):
        for body in (forged_unsubscribe(target, **fields), {**pm_open(target), "MessageID": str(uuid.uuid4()),
                                                           "Metadata": forged_unsubscribe(target, **fields)["Metadata"]}):
            assert post("/anymail/postmark/tracking/", json.dumps(body)).status_code == 200

    assert snapshot(tenant, other_tenant) == before
    assert "ignored Postmark" in caplog.text


def test_one_stores_token_does_not_open_another_stores_delivery(two_stores, tenant, other_tenant):
    mine, theirs = two_stores
    before = snapshot(tenant, other_tenant)
    token = delivery_token(mine.tenant_id, mine.pk)

    for metadata_fields in ({"tenant_id": str(theirs.tenant_id), "delivery_id": str(theirs.pk)},
                            {"tenant_id": str(theirs.tenant_id), "delivery_id": str(mine.pk)},
                            {"tenant_id": str(mine.tenant_id), "delivery_id": str(theirs.pk)}):
        body = forged_unsubscribe(theirs, delivery_token=token)
        body["Metadata"].update(metadata_fields)
        assert post("/anymail/postmark/tracking/", json.dumps(body)).status_code == 200
    # A genuine ESP message id with metadata signed for another delivery: the event is void.
    body = pm_bounce(mine)
    body["Metadata"] = metadata(theirs)
    assert post("/anymail/postmark/tracking/", json.dumps(body)).status_code == 200

    assert snapshot(tenant, other_tenant) == before


def test_a_guessed_own_message_id_is_ignored(two_stores, tenant, other_tenant):
    """Our Message-ID carries an HMAC: the old guessable shape, or a wrong HMAC, names nothing."""
    _, theirs = two_stores
    before = snapshot(tenant, other_tenant)
    t, d = theirs.tenant_id, theirs.pk

    for guessed in (f"<journey.{t}.{d}@127.0.0.1>", f"journey.{t}.{d}@127.0.0.1", f"<journey.{t}.{d}.{'a' * 24}@x>",
                    f"<journey.{t}.{d}.{delivery_token(t, d + 1)}@127.0.0.1>", f"<journey.{t}.{'9' * 30}@x>"):
        body = {**pm_bounce(theirs), "MessageID": guessed, "Metadata": {}, "Email": "bob@example.com"}
        assert post("/anymail/postmark/tracking/", json.dumps(body)).status_code == 200

    assert snapshot(tenant, other_tenant) == before


def test_a_genuine_event_updates_exactly_its_delivery(two_stores, tenant, other_tenant):
    mine, theirs = two_stores
    others_before = snapshot(other_tenant)

    assert post("/anymail/postmark/tracking/", json.dumps(pm_bounce(mine))).status_code == 200

    mine.refresh_from_db()
    assert mine.bounced_at is not None
    assert Customer.objects.for_tenant(tenant).get().suppression_reason == "bounce"
    assert [e.data["delivery_id"] for e in Event.objects.for_tenant(tenant).filter(type="email.bounced")] == [mine.pk]
    assert snapshot(other_tenant) == others_before


def test_an_event_naming_our_message_id_finds_it_when_the_esp_gave_no_id(two_stores, tenant, other_tenant):
    """An ESP that answers the send with no id of its own reports our (HMAC'd) Message-ID back,
    with or without its angle brackets; the metadata it echoes is signed."""
    mine, theirs = two_stores
    Delivery.objects.for_tenant(tenant).filter(pk=mine.pk).update(esp_message_id=mine.message_id)
    others_before = snapshot(other_tenant)
    [sent] = [m for m in mail.outbox if m.metadata["delivery_id"] == mine.pk]
    assert mine.message_id == sent.extra_headers["Message-ID"]

    delivered = {**pm_delivery(mine), "MessageID": mine.message_id.strip("<>"), "Metadata": {}}
    opened = {**pm_open(mine), "MessageID": mine.message_id}
    for body in (delivered, opened):
        assert post("/anymail/postmark/tracking/", json.dumps(body)).status_code == 200

    mine.refresh_from_db()
    assert mine.delivered_at is not None and mine.opened_at is not None
    assert Event.objects.for_tenant(tenant).filter(type__in=["email.delivered", "email.opened"]).count() == 2
    assert snapshot(other_tenant) == others_before


def test_signed_metadata_finds_a_delivery_whose_esp_id_was_never_recorded(two_stores, tenant, other_tenant):
    mine, _ = two_stores
    Delivery.objects.for_tenant(tenant).filter(pk=mine.pk).update(state="ambiguous", esp_message_id="")
    others_before = snapshot(other_tenant)
    esp_id = str(uuid.uuid4())

    assert post("/anymail/postmark/tracking/", json.dumps({**pm_delivery(mine), "MessageID": esp_id})).status_code == 200

    mine.refresh_from_db()
    assert (mine.state, mine.esp_message_id) == ("ambiguous", esp_id)
    assert mine.delivered_at is not None
    assert snapshot(other_tenant) == others_before


# --- The settings: production refuses to start without the secrets; embedded makes one ----------------

PRODUCTION = {
    "LIFECYCLE_PROFILE": "production",
    "SECRET_KEY": "a-production-secret-key-for-the-settings-check-0123456789",
    "DATABASE_URL": "postgres://nobody@127.0.0.1:5432/never_connected",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    "ALLOWED_HOSTS": "lifecycle.example.com",
    "PUBLIC_BASE_URL": "https://lifecycle.example.com",
    "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
}
SETUP = "import django; django.setup(); from django.conf import settings; print(settings.ANYMAIL['WEBHOOK_SECRET'])"


def start(extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANYMAIL_", "LIFECYCLE_", "DJANGO_")) and k not in PRODUCTION and k != "EMAIL_BACKEND"}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", LIFECYCLE_VAR_DIR=str(tmp_path / "var"), **extra)
    return subprocess.run([sys.executable, "-c", SETUP], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_production_refuses_to_start_without_the_webhook_secret(tmp_path):
    done = start(PRODUCTION, tmp_path)

    assert done.returncode != 0
    assert ("ImproperlyConfigured: ANYMAIL_WEBHOOK_SECRET must be set in the environment "
            "(LIFECYCLE_PROFILE=production).") in done.stderr
    assert not (tmp_path / "var" / "anymail_webhook_secret").exists()  # never generated in production


@pytest.mark.parametrize("weak", ["nocolon-but-long-enough-0123456789", "user:short", ":no-user-0123456789abcdef"])
def test_production_refuses_a_weak_webhook_secret(tmp_path, weak):
    done = start({**PRODUCTION, "ANYMAIL_WEBHOOK_SECRET": weak}, tmp_path)

    assert done.returncode != 0
    assert "ANYMAIL_WEBHOOK_SECRET must be 'user:password' with a password of 16 characters or more" in done.stderr


def test_production_starts_with_the_webhook_secret(tmp_path):
    done = start({**PRODUCTION, "ANYMAIL_WEBHOOK_SECRET": "lifecycle:s3cret-webhook-password-42"}, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "lifecycle:s3cret-webhook-password-42"


@pytest.mark.parametrize(("backend", "setting"), [("mailgun", "MAILGUN_WEBHOOK_SIGNING_KEY"),
                                                  ("postal", "POSTAL_WEBHOOK_KEY"),
                                                  ("mandrill", "MANDRILL_WEBHOOK_KEY"),
                                                  ("sendgrid", "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY"),
                                                  ("resend", "RESEND_SIGNING_SECRET")])
def test_production_refuses_a_signing_esp_without_its_signing_key(tmp_path, backend, setting):
    env = {**PRODUCTION, "ANYMAIL_WEBHOOK_SECRET": "lifecycle:s3cret-webhook-password-42",
           "EMAIL_BACKEND": f"anymail.backends.{backend}.EmailBackend"}

    refused = start(env, tmp_path)
    started = start({**env, f"ANYMAIL_{setting}": "the-esp-signing-key"}, tmp_path)

    assert refused.returncode != 0
    assert f"ImproperlyConfigured: ANYMAIL_{setting} must be set in the environment" in refused.stderr
    assert started.returncode == 0, started.stderr


def test_production_with_a_basic_auth_only_esp_needs_just_the_secret(tmp_path):
    env = {**PRODUCTION, "ANYMAIL_WEBHOOK_SECRET": "lifecycle:s3cret-webhook-password-42",
           "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend", "ANYMAIL_POSTMARK_SERVER_TOKEN": "x"}

    assert start(env, tmp_path).returncode == 0


def test_the_embedded_profile_generates_a_secret_once_and_keeps_it(tmp_path):
    first = start({"LIFECYCLE_PROFILE": "embedded"}, tmp_path)
    second = start({"LIFECYCLE_PROFILE": "embedded"}, tmp_path)

    assert first.returncode == 0, first.stderr
    user, _, password = first.stdout.strip().partition(":")
    assert user == "lifecycle" and len(password) >= 32
    assert second.stdout == first.stdout
    stored = tmp_path / "var" / "anymail_webhook_secret"
    assert stored.read_text().strip() == first.stdout.strip()
    assert stored.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert start({"LIFECYCLE_PROFILE": "embedded"}, tmp_path / "elsewhere").stdout != first.stdout
