"""Outbound webhooks in the workspace: the owner makes and rotates the signing secret, shown once; every
call's attempts are on the settings page and on the customer's timeline."""

import datetime as dt
import re

import pytest
from django.urls import reverse

from journeys.models import Delivery, WebhookCall
from journeys.webhooks import signing_secrets, webhook_call_attempt
from lifecycle import clock
from lifecycle.models import Customer, Event, Membership
from tests.journeys.test_webhook_step import DUE, order, send_due, webhook_journey
from tests.journeys.webhook_server import Receiver

from .conftest import client_for, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_owner(tenant):
    return client_for(make_user("olivia", tenant, Membership.Role.OWNER))


def url(tenant, name: str, **kwargs) -> str:
    return reverse(f"workspace:{name}", kwargs={"tenant": tenant.slug, **kwargs})


def test_the_owner_makes_a_secret_shown_once_and_rotates_it(as_owner, tenant):
    page = as_owner.get(url(tenant, "settings-webhooks")).content.decode()
    assert "None yet" in page and "Make a secret" in page

    made = as_owner.post(url(tenant, "settings-webhooks"))
    assert made.status_code == 201
    first = re.search(r'id="webhook-secret">([^<]+)<', made.content.decode()).group(1)
    assert first.startswith("whsec_")
    assert signing_secrets(tenant.pk, clock.now()) == [first.encode()]
    assert first not in as_owner.get(url(tenant, "settings-webhooks")).content.decode()  # shown once

    rotated = as_owner.post(url(tenant, "settings-webhooks")).content.decode()
    second = re.search(r'id="webhook-secret">([^<]+)<', rotated).group(1)
    assert second != first and "The previous secret keeps signing beside it for 24 hours" in rotated
    assert signing_secrets(tenant.pk, clock.now()) == [second.encode(), first.encode()]
    assert signing_secrets(tenant.pk, clock.now() + dt.timedelta(days=1, seconds=1)) == [second.encode()]
    events = list(Event.objects.for_tenant(tenant).filter(type="store.webhook_secret_rotated").order_by("pk")
                  .values_list("data", flat=True))
    assert events == [{"by": "olivia", "first": True}, {"by": "olivia", "first": False}]
    assert first not in str(events) and second not in str(events)


def test_every_attempt_is_on_the_settings_page_and_the_customers_timeline(api, tenant, as_owner, settings):
    settings.JOURNEY_WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    as_owner.post(url(tenant, "settings-webhooks"))
    with Receiver(answer=lambda n: 503 if n == 1 else 200) as receiver:
        webhook_journey(tenant, receiver.url)
        order(api)
        send_due()
        call = WebhookCall.objects.for_tenant(tenant).get()
        with clock.frozen(DUE):
            assert webhook_call_attempt(call_id=call.pk) == "pending"
        call.refresh_from_db()
        with clock.frozen(call.next_attempt_at):
            assert webhook_call_attempt(call_id=call.pk) == "delivered"

    page = as_owner.get(url(tenant, "settings-webhooks")).content.decode()
    assert call.idempotency_key in page and "HTTP 503" in page and "HTTP 200" in page and "down for maintenance" in page
    customer = Customer.objects.for_tenant(tenant).get()
    timeline = as_owner.get(url(tenant, "customer", customer_id=customer.pk)).content.decode()
    assert f"delivered · key {call.idempotency_key}" in timeline
    assert "Attempt 1" in timeline and "HTTP 503" in timeline and "Attempt 2" in timeline and "HTTP 200" in timeline
    assert Delivery.objects.for_tenant(tenant).get(step__position=1).state == "sent"
