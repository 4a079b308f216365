"""Feedback journeys end to end in one process: order → feedback email in the outbox → links."""

import datetime as dt
import re

from django.core import mail

from feedback.models import Survey
from journeys.models import EmailTemplate, Journey, Step
from lifecycle import clock
from lifecycle.models import Customer, Product
from tests.factories import order_payload
from tests.journeys.helpers import at, process_events
from tests.journeys.test_engine import send_due

# 10:00 in Berlin on a weekday: outside quiet hours.
NOON = at("2026-11-23T09:00:00+00:00")
SUPPORT = "support@acme.example.com"


def feedback_journey(tenant, survey: str = "nps", *, trigger=Journey.Trigger.ORDER_DELIVERED, wait="P1D",
                     name=None, **fields) -> Journey:
    from journeys.durations import parse_duration

    journey = Journey.objects.for_tenant(tenant).create(
        tenant=tenant, name=name or f"Ask {survey}", trigger=trigger, status=Journey.Status.ACTIVE, **fields)
    template = EmailTemplate.objects.for_tenant(tenant).create(
        tenant=tenant, name=f"{journey.name} email", subject="A quick question",
        body="<p>Hi {{ first_name }}, thanks for order {{ order.number }}.</p>", signature="Mia from Acme")
    Step.objects.for_tenant(tenant).create(tenant=tenant, journey=journey, position=1, wait=parse_duration(wait),
                                           kind=Step.Kind.FEEDBACK_REQUEST, template=template,
                                           config={"survey": survey})
    return journey


def nps_survey(tenant, **fields) -> Survey:
    defaults = {"key": "nps", "name": "NPS", "kind": Survey.Kind.NPS, "alert_email": SUPPORT}
    return Survey.objects.for_tenant(tenant).create(tenant=tenant, **{**defaults, **fields})


def delivered_order(api, *, external_id="1001", customer=None, **overrides) -> dict:
    customer = {"external_id": "c1", "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
                "locale": "en", "marketing_consent": True, **(customer or {})}
    body = order_payload(external_id=external_id, number=f"#{external_id}", customer=customer, status="delivered",
                         placed_at="2026-11-20T08:00:00Z", **overrides)
    assert api.post("/api/v1/orders", body).status_code in (200, 201)
    return body


def send_feedback_email(api, tenant, *, at_time=NOON, **order):
    """Deliver an order now, let the journeys run, send what is due a day later: the outbox's email."""
    with clock.frozen(at_time):
        delivered_order(api, **order)
        process_events()
    before = len(mail.outbox)
    assert send_due(at_time + dt.timedelta(days=1)) == ["sent"]
    assert len(mail.outbox) == before + 1
    Product.objects.for_tenant(tenant).update(url="https://acme.example.com/products/beans")
    return mail.outbox[-1]


def score_links(message) -> dict[int, str]:
    """score → path, read off the email's HTML buttons (and checked against its text part)."""
    html = message.alternatives[0][0]
    found = {int(label): href for href, label in re.findall(r'<a class="score"[^>]*href="([^"]+)"[^>]*>(\d+)</a>', html)}
    for score, url in found.items():
        assert f"{score}: {url}" in message.body
    return {score: url.removeprefix("http://127.0.0.1:8000") for score, url in found.items()}


def customer(tenant) -> Customer:
    return Customer.objects.for_tenant(tenant).get(external_id="c1")
