"""Unsubscribe links: a GET (what a mail scanner does) changes nothing; the RFC 8058 POST
unsubscribes at once, without cookies; bad tokens are a 404, old ones a friendly page."""

import datetime as dt
import time

import pytest
from django.test import Client

from journeys.models import Delivery, Enrollment
from lifecycle import clock
from lifecycle.links import make_token
from lifecycle.models import Customer, Event
from tests.factories import order_payload

from .helpers import at, make_journey, process_events
from .test_engine import send_due

pytestmark = pytest.mark.django_db
NOON = at("2026-11-23T09:00:00+00:00")


@pytest.fixture
def enrolled(api, tenant):
    make_journey(tenant, steps=[("P1D", "One"), ("P2D", "Two")], exit_events=["customer.unsubscribed"])
    with clock.frozen(NOON):
        api.post("/api/v1/orders", order_payload(customer={"external_id": "c1", "email": "ada@example.com",
                                                           "marketing_consent": True}))
        process_events()
    customer = Customer.objects.for_tenant(tenant).get()
    return customer


def unsubscribe_path(customer) -> str:
    return "/u/" + make_token("unsubscribe", tenant_id=customer.tenant_id, customer_id=customer.pk)


def test_get_shows_a_confirm_page_and_changes_nothing(enrolled):
    client = Client()
    for _ in range(3):
        response = client.get(unsubscribe_path(enrolled))
        assert response.status_code == 200
        assert b"Unsubscribe from Acme Coffee?" in response.content
        assert b'<form method="post"' in response.content

    enrolled.refresh_from_db()
    assert enrolled.unsubscribed_at is None and enrolled.marketing_consent is True
    assert not Event.objects.for_tenant(enrolled.tenant).filter(type="customer.unsubscribed").exists()


def test_one_click_post_unsubscribes_without_cookies_and_stops_later_steps(enrolled, tenant):
    assert send_due(NOON + dt.timedelta(days=1)) == ["sent"]
    client = Client(enforce_csrf_checks=True)

    response = client.post(unsubscribe_path(enrolled), data="List-Unsubscribe=One-Click",
                           content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert b"You're unsubscribed" in response.content
    enrolled.refresh_from_db()
    assert enrolled.unsubscribed_at is not None and enrolled.marketing_consent is False
    assert enrolled.consent_source == "unsubscribe"
    [event] = Event.objects.for_tenant(tenant).filter(type="customer.unsubscribed")
    assert event.data == {"source": "unsubscribe", "detail": "one-click"}
    # A second POST is harmless.
    assert client.post(unsubscribe_path(enrolled)).status_code == 200
    assert Event.objects.for_tenant(tenant).filter(type="customer.unsubscribed").count() == 1

    assert send_due(NOON + dt.timedelta(days=3)) == ["skipped"]
    later = Delivery.objects.for_tenant(tenant).get(step__position=2)
    assert later.reason == "exit: customer.unsubscribed"
    assert Enrollment.objects.for_tenant(tenant).get().state == "exited"


def test_unsubscribe_is_honoured_by_the_gate_before_the_event_is_processed(enrolled, tenant):
    Client().post(unsubscribe_path(enrolled))

    assert send_due(NOON + dt.timedelta(days=1)) == ["skipped"]
    assert Delivery.objects.for_tenant(tenant).get(step__position=1).reason in {
        "exit: customer.unsubscribed", "unsubscribed from marketing email"}


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: "not-a-token",
    lambda t: make_token("survey", tenant_id=1, customer_id=1),
])
def test_bad_tokens_are_404_and_write_nothing(enrolled, mangle):
    token = unsubscribe_path(enrolled).removeprefix("/u/")
    client = Client()

    assert client.get("/u/" + mangle(token)).status_code == 404
    assert client.post("/u/" + mangle(token)).status_code == 404

    enrolled.refresh_from_db()
    assert enrolled.unsubscribed_at is None


def test_a_token_for_a_customer_of_another_tenant_is_404(enrolled, other_tenant):
    token = make_token("unsubscribe", tenant_id=other_tenant.pk, customer_id=enrolled.pk)

    assert Client().post("/u/" + token).status_code == 404
    enrolled.refresh_from_db()
    assert enrolled.unsubscribed_at is None


def test_links_work_for_months_then_show_a_friendly_page(enrolled, monkeypatch):
    path = unsubscribe_path(enrolled)
    real = time.time()
    monkeypatch.setattr("django.core.signing.time.time", lambda: real + 200 * 86400)
    assert Client().get(path).status_code == 200

    monkeypatch.setattr("django.core.signing.time.time", lambda: real + 400 * 86400)
    expired = Client().post(path)

    assert expired.status_code == 410
    assert b"This link has expired" in expired.content
    enrolled.refresh_from_db()
    assert enrolled.unsubscribed_at is None
