"""Sending through the store's own domain: an unverified one holds the email with its reason in the explain
view (SENDING_DOMAIN_REQUIRED), a verified one lets it go; a store with its own ESP account sends through
anymail's backend for that ESP with the store's credentials (a Postmark API on 127.0.0.1), another store
through the platform's."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from journeys.models import Delivery
from lifecycle import clock
from lifecycle.models import SendingDomain
from lifecycle.sending_domains import sending_domain_save
from tests.factories import order_payload

from .helpers import make_journey, process_events
from .test_engine import send_due
from .test_explain import NOON, explain, order

pytestmark = pytest.mark.django_db

DUE = NOON + dt.timedelta(days=1)


class FakePostmark(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakePostmark.received.append({"path": self.path, "token": self.headers.get("X-Postmark-Server-Token"),
                                      "from": body.get("From"), "to": body.get("To")})
        answer = json.dumps({"To": body.get("To"), "SubmittedAt": "2026-11-24T09:00:00Z", "ErrorCode": 0,
                             "Message": "OK", "MessageID": f"pm-{len(FakePostmark.received)}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def postmark_api(settings):
    FakePostmark.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePostmark)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_API_URL": f"http://127.0.0.1:{server.server_port}/"}
    yield FakePostmark.received
    server.shutdown()


def store_domain(tenant, *, esp="", verified=False, token="pm-token-acme"):
    sending_domain_save(tenant=tenant, values={"domain": "acme.example", "esp": esp, "dkim_selector": "pm",
                                               "dkim_value": "v=DKIM1; k=rsa; p=KEY"},
                        credentials={"server_token": token} if esp else {}, by="olivia")
    if verified:
        SendingDomain.objects.for_tenant(tenant).update(state=SendingDomain.State.VERIFIED)


def due_email(api, tenant):
    tenant.sender_email = "hello@acme.example"
    tenant.save(update_fields=["sender_email"])
    journey = make_journey(tenant, steps=[("P1D", "Welcome")])
    with clock.frozen(NOON):
        order(api)
        process_events()
    return journey


def test_an_unverified_domain_holds_the_email_and_the_explain_view_says_why(api, tenant, settings):
    settings.SENDING_DOMAIN_REQUIRED = True
    journey = due_email(api, tenant)
    store_domain(tenant)  # added, never verified
    assert send_due(DUE) == ["deferred"]
    assert mail.outbox == []
    [item] = explain(api, journey)["journeys"]
    assert item["summary"].startswith("Step 1 deferred until 2026-11-24 11:00 (sending domain not verified: "
                                      "acme.example (the sender address's) has no verified SPF, DKIM and DMARC")
    # Verified (the check found the three records): the held email goes at its next turn.
    SendingDomain.objects.for_tenant(tenant).update(state=SendingDomain.State.VERIFIED)
    assert send_due(DUE + dt.timedelta(hours=1)) == ["sent"]
    assert [m.from_email for m in mail.outbox] == [f"{tenant.sender_name or tenant.name} <hello@acme.example>"]


def test_without_the_setting_an_unverified_domain_sends(api, tenant, settings):
    settings.SENDING_DOMAIN_REQUIRED = False
    due_email(api, tenant)
    assert send_due(DUE) == ["sent"]


def test_a_store_with_its_own_esp_account_sends_through_it_with_its_credentials(api, tenant, other_tenant,
                                                                              other_api, postmark_api, settings):
    settings.SENDING_DOMAIN_REQUIRED = True
    due_email(api, tenant)
    store_domain(tenant, esp="postmark", verified=True)
    # The other store: no domain of its own, the platform's ESP (anymail's test backend here).
    make_journey(other_tenant, steps=[("P1D", "Hi from Globex")])
    with clock.frozen(NOON):
        assert other_api.post("/api/v1/orders", order_payload(
            external_id="G1", customer={"external_id": "g-1", "email": "gil@example.com", "marketing_consent": True},
            placed_at="2026-11-23T08:00:00Z")).status_code == 201
        process_events()
    assert send_due(DUE) == ["sent", "sent"]
    assert postmark_api == [{"path": "/email", "token": "pm-token-acme", "from": f"{tenant.name} <hello@acme.example>",
                             "to": "ada@example.com"}]
    assert [m.to for m in mail.outbox] == [["gil@example.com"]]
    sent = Delivery.objects.for_tenant(tenant).get()
    assert sent.esp_message_id == "pm-1"
