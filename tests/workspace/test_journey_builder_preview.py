"""The builder's live preview and "send a test to me": the real rendering on unsaved rows, for a
real customer of the store or a sample; escaped, sandboxed, links inert; nothing written, and a
test goes to the signed-in user only, with no Delivery and no customer touched."""

import json
import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.urls import reverse

from feedback.models import SurveyRequest
from journeys.io import library_install
from journeys.models import Delivery, EmailTemplate, Enrollment, Journey, Step
from journeys.preview import _TOKEN
from lifecycle.models import Customer, Event, Order, OutboxMessage
from loyalty.models import LedgerEntry, LoyaltyAccount
from referrals.models import ReferralCode
from tests.factories import order_payload

from .conftest import client_for, make_user

pytestmark = pytest.mark.django_db

TENANT_MODELS = (Customer, Order, Event, Journey, Step, EmailTemplate, Enrollment, Delivery, SurveyRequest,
                 LoyaltyAccount, LedgerEntry, ReferralCode)


def everything(tenant) -> str:
    rows = {m.__name__: list(m.objects.for_tenant(tenant).order_by("pk").values()) for m in TENANT_MODELS}
    rows["outbox"] = list(OutboxMessage.objects.order_by("pk").values())
    return json.dumps(rows, default=str, sort_keys=True)


@pytest.fixture
def review(tenant):
    library_install(tenant=tenant, keys=["review-request"])
    journey = Journey.objects.for_tenant(tenant).get(library_key="review-request")
    return journey, Step.objects.for_tenant(tenant).get(journey=journey)


def preview_url(journey, step, name="journey_step_preview") -> str:
    return reverse(f"workspace:{name}", kwargs={"tenant": "acme", "journey_id": journey.pk, "step_id": step.pk})


def preview(client, journey, step, **fields):
    data = {"subject": "Hi {{ first_name }}", "preheader": "", "body": "<p>Hello {{ first_name }}</p>",
            "signature": "", **fields}
    return client.post(preview_url(journey, step), data)


def test_the_preview_is_the_real_email_for_a_real_customer(as_marketer, tenant, review, a_customer):
    journey, step = review
    template = step.template
    before = everything(tenant)
    response = preview(as_marketer, journey, step, customer=str(a_customer.pk), subject=template.subject,
                       preheader=template.preheader, body=template.body, signature=template.signature)
    assert response.status_code == 200
    data = response.json()
    assert data["rendered"] is True and data["problems"] == []
    assert data["subject"] == "How are you finding House beans 1 kg, Paper filters?"
    assert data["preheader"] == "Two weeks in, your honest take helps the next person decide."
    assert (data["to"], data["from"], data["customer"]) == (
        "ada@a-store.example.com", "Acme Coffee <hello@lifecycle.localhost>", "Ada")
    html = data["html"]
    assert html.startswith("<!DOCTYPE html>") and "<p>Hi Ada,</p>" in re.sub(r' style="[^"]*"', "", html)
    assert 'style="' in html and "<style>" not in html  # css-inline ran
    assert "Lena, founder" in html and "Acme Coffee" in html
    assert "Hi Ada," in data["text"] and "House beans 1 kg" in data["text"]
    assert everything(tenant) == before


def test_links_that_would_act_for_the_customer_are_inert(as_marketer, review, a_customer, settings):
    journey, step = review
    data = preview(as_marketer, journey, step, customer=str(a_customer.pk),
                   body='<p><a href="{{ loyalty_url }}">Points</a> <a href="{{ unsubscribe_url }}">Leave</a></p>').json()
    for part in (data["html"], data["text"]):
        assert not _TOKEN.search(part), _TOKEN.search(part)
        assert f"{settings.PUBLIC_BASE_URL}/u/preview" in part
    assert f'href="{settings.PUBLIC_BASE_URL}/l/preview"' in data["html"]


def test_values_are_escaped_and_markup_is_sanitized(as_marketer, tenant, review, a_customer):
    journey, step = review
    Customer.objects.for_tenant(tenant).filter(pk=a_customer.pk).update(first_name='<script>alert("x")</script>')
    data = preview(as_marketer, journey, step, customer=str(a_customer.pk),
                   body='<p>Hi {{ first_name }}</p><script>steal()</script><a href="javascript:evil()">x</a>'
                        '<img src=x onerror="evil()">').json()
    html = data["html"]
    assert "<p>Hi &lt;script&gt;alert(\"x\")&lt;/script&gt;</p>" in re.sub(r' style="[^"]*"', "", html)
    for bad in ("<script", "steal()", "javascript:", "onerror"):
        assert bad not in html, bad
    assert data["subject"] == 'Hi <script>alert("x")</script>'  # a subject is plain text: the page sets textContent


@pytest.mark.parametrize(("body", "expected"), [
    ("{{ settings.SECRET_KEY }}{{ request.user }}", "{{ settings.SECRET_KEY }} is not a placeholder"),
    ("{% load static %}", "is not a valid template: Invalid block tag on line 2: 'load'"),
    ('{% include "email/layout.html" %}', "is not a valid template: Invalid block tag on line 2: 'include'"),
    ("{% debug %}", "is not a valid template: Invalid block tag on line 2: 'debug'"),
    ("{{ customer.tenant.api_keys }}", "{{ customer.tenant.api_keys }} is not a placeholder; customer has"),
])
def test_the_sandbox_reaches_nothing_beyond_its_plain_values(as_marketer, review, a_customer, body, expected,
                                                            settings):
    journey, step = review
    response = preview(as_marketer, journey, step, customer=str(a_customer.pk), body=f"<p>Hi</p>\n{body}")
    assert response.status_code == 200
    data = response.json()
    assert {p["line"] for p in data["problems"]} == {2}
    assert expected in data["problems"][0]["message"]
    assert settings.SECRET_KEY not in response.content.decode()
    if data["rendered"]:  # a name the context lacks renders as nothing
        assert "<p>Hi</p>\n</div>" in re.sub(r' style="[^"]*"', "", data["html"])


def test_a_customer_of_another_store_is_not_found(as_marketer, review, other_api, other_tenant):
    journey, step = review
    assert other_api.post("/api/v1/orders", order_payload(
        external_id="B-1", customer={"external_id": "B-C", "email": "bea@b-store.example.com",
                                     "first_name": "Bea"})).status_code == 201
    bea = Customer.objects.for_tenant(other_tenant).get(external_id="B-C")
    response = preview(as_marketer, journey, step, customer=str(bea.pk))
    assert response.status_code == 400
    assert response.json() == {"error": "That customer is not in this store."}
    assert "Bea" not in response.content.decode()
    page = as_marketer.get(reverse("workspace:journey", kwargs={"tenant": "acme", "journey_id": journey.pk})
                           + f"?step={step.pk}&customer={bea.pk}").content.decode()
    assert "That customer is not in this store." in page and "bea@b-store" not in page
    assert preview(as_marketer, journey, step, customer="1 OR 1=1").json() == {"error": "Choose a customer from the list."}


def test_a_store_without_customers_previews_for_a_sample(as_marketer, review):
    journey, step = review
    data = preview(as_marketer, journey, step, customer="sample",
                   subject="{{ first_name }}, order {{ order.number }}").json()
    assert (data["subject"], data["to"], data["customer"]) == ("Ada, order #1001", "ada@example.com",
                                                               "Ada Lovelace (sample)")
    page = as_marketer.get(reverse("workspace:journey", kwargs={"tenant": "acme", "journey_id": journey.pk}))
    assert page.context["customer_key"] == "sample"


def test_the_picker_offers_recent_customers_first(as_marketer, review, a_customer):
    journey, step = review
    page = as_marketer.get(reverse("workspace:journey", kwargs={"tenant": "acme", "journey_id": journey.pk}))
    assert [c.key for c in page.context["customers"]] == [str(a_customer.pk), "sample"]
    assert page.context["preview"].to == "ada@a-store.example.com"


def test_a_survey_step_previews_its_buttons_with_inert_links(as_marketer, tenant, review, a_customer, settings):
    journey, step = review
    Step.objects.for_tenant(tenant).filter(pk=step.pk).update(kind="feedback_request", config={"survey": "nps"})
    step.refresh_from_db()
    data = preview(as_marketer, journey, step, customer=str(a_customer.pk)).json()
    assert data["rendered"] is True
    for score in range(11):
        assert f'href="{settings.PUBLIC_BASE_URL}/f/preview/{score}"' in data["html"]
    assert not _TOKEN.search(data["html"])
    assert SurveyRequest.objects.for_tenant(tenant).count() == 0


def test_preview_refuses_what_it_cannot_use(as_marketer, tenant, review):
    journey, step = review
    assert as_marketer.get(preview_url(journey, step)).status_code == 405
    Step.objects.for_tenant(tenant).filter(pk=step.pk).update(kind="award_points", template=None)
    response = preview(as_marketer, journey, step)
    assert (response.status_code, response.json()) == (400, {"error": "This step sends no email."})
    Step.objects.for_tenant(tenant).filter(pk=step.pk).update(kind="email")
    response = preview(as_marketer, journey, step, subject="x" * 301)
    assert response.status_code == 400 and "subject" in response.json()["error"]


# --- send a test to me --------------------------------------------------------------


def test_send_a_test_to_me(as_marketer, marketer, tenant, review, a_customer):
    journey, step = review
    cache.delete(f"t:{tenant.pk}:journeys:test-sends:{marketer.pk}")
    before = everything(tenant)
    response = as_marketer.post(preview_url(journey, step, "journey_step_test"),
                                {"subject": "Hi {{ first_name }}", "body": '<p>Hello <a href="{{ loyalty_url }}">x</a></p>',
                                 "customer": str(a_customer.pk)}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["sent_to"] == "mara@example.com"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert (message.to, message.subject) == (["mara@example.com"], "[Test] Hi Ada")
    assert "List-Unsubscribe" not in message.extra_headers and "List-Unsubscribe-Post" not in message.extra_headers
    assert message.extra_headers["X-Lifecycle-Test"] == "1"
    assert message.extra_headers["Message-ID"].startswith(f"<journey-test.{tenant.pk}.")
    assert message.metadata == {"tenant_id": tenant.pk, "journey_id": journey.pk, "step_id": step.pk, "test": "1"}
    html = message.alternatives[0][0]
    assert "Hello" in html and not _TOKEN.search(html) and not _TOKEN.search(message.body)
    assert everything(tenant) == before  # no Delivery, no customer, no outbox row (the test backend is used)


def test_without_javascript_the_test_comes_back_as_a_message(as_marketer, review, a_customer):
    journey, step = review
    response = as_marketer.post(preview_url(journey, step, "journey_step_test"),
                                {"subject": "Hi", "body": "<p>Hello</p>", "customer": "sample"})
    assert response.status_code == 302
    page = as_marketer.get(response["Location"])
    assert [str(m) for m in page.context["messages"]] == ["Test sent to mara@example.com, subject starting “[Test]”."]
    assert len(mail.outbox) == 1


def test_a_user_without_an_email_gets_a_clear_message_and_nothing_is_sent(tenant, review):
    journey, step = review
    user = make_user("noemail", tenant)
    user.email = ""
    user.save()
    client = client_for(user)
    page = client.get(reverse("workspace:journey", kwargs={"tenant": "acme", "journey_id": journey.pk})).content.decode()
    assert "Your account has no email address" in page
    response = client.post(preview_url(journey, step, "journey_step_test"), {"subject": "Hi", "body": "Hi"},
                           HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("Your account has no email address, so there is nowhere to send a test.")
    assert mail.outbox == []


def test_a_broken_email_is_not_sent(as_marketer, review):
    journey, step = review
    response = as_marketer.post(preview_url(journey, step, "journey_step_test"),
                                {"subject": "Hi", "body": "<p>{% if %}</p>"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("The email cannot be rendered yet: The body, line 1, is not a valid")
    assert mail.outbox == []


def test_tests_are_limited_per_hour(as_marketer, marketer, tenant, review, monkeypatch):
    journey, step = review
    cache.delete(f"t:{tenant.pk}:journeys:test-sends:{marketer.pk}")
    monkeypatch.setattr("journeys.preview.TEST_SENDS_PER_HOUR", 2)
    codes = [as_marketer.post(preview_url(journey, step, "journey_step_test"), {"subject": "Hi", "body": "Hi"},
                              HTTP_ACCEPT="application/json").status_code for _ in range(3)]
    assert codes == [200, 200, 400]
    assert len(mail.outbox) == 2


def test_the_sample_context_has_the_shape_of_a_real_one(tenant, review, a_customer):
    """The sample customer's context must offer every placeholder a real customer's does."""
    from journeys.preview import _delivery, _sample_context
    from journeys.rendering import email_context

    journey, step = review
    order = Order.objects.for_tenant(tenant).get(customer=a_customer)
    a_customer.tenant = tenant
    real = email_context(_delivery(tenant, journey, step, a_customer, order, {"subject": "", "body": ""}))

    def shape(value):
        return {k: shape(v) for k, v in value.items()} if isinstance(value, dict) else type(value).__name__

    sample = _sample_context(tenant)
    # The review request is a survey step: its own names (survey, review_links …) come from the
    # survey sample, which the preview adds for that kind; the shared ones must match.
    from journeys.template_checks import KIND_CONTEXT

    assert set(shape(sample)) == set(shape(real)) - set(KIND_CONTEXT[step.kind])
    assert set(sample["order"]) == set(real["order"]) and set(sample["customer"]) == set(real["customer"])
    assert re.match(r"^#\d+$", sample["order"]["number"])
