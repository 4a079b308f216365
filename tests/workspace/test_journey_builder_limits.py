"""The builder's side of the template limits (journeys.render_limits): a template that would make
too much work is refused where the marketer saves it, and the preview answers quickly with the problem."""

import time

import pytest
from django.urls import reverse

from journeys.models import EmailTemplate, Journey, Step
from lifecycle.models import Customer
from tests.journeys.helpers import make_journey
from tests.journeys.test_engine import paid_order
from tests.journeys.test_render_limits import BIG_PER_LINE, NESTED_FOUR_OVER_LETTERS, lines

pytestmark = pytest.mark.django_db


def test_the_workspace_shows_why_the_step_was_not_saved(tenant, as_marketer):
    journey = make_journey(tenant, status=Journey.Status.DRAFT)
    step = Step.objects.for_tenant(tenant).select_related("template").get(journey=journey)
    from journeys.builder_forms import StepForm

    data = {key: ("" if value is None else value) for key, value in StepForm.initial_for(step).items()}
    data["body"] = '<p>{{ first_name|ljust:"20000000" }}</p>'
    url = reverse("workspace:journey_step", kwargs={"tenant": "acme", "journey_id": journey.pk, "step_id": step.pk})

    response = as_marketer.post(url, data)

    assert response.status_code == 400
    page = response.content.decode()
    assert "its email would make too much work or too big a message" in page
    assert "pads to more than 200 characters with |ljust:&quot;20000000&quot;: use a number up to 200" in page
    assert EmailTemplate.objects.for_tenant(tenant).get(pk=step.template_id).body == step.template.body


def test_the_preview_answers_quickly_with_the_problem(tenant, as_marketer):
    journey = make_journey(tenant, status=Journey.Status.DRAFT)
    step = Step.objects.for_tenant(tenant).get(journey=journey)
    url = reverse("workspace:journey_step_preview",
                  kwargs={"tenant": "acme", "journey_id": journey.pk, "step_id": step.pk})

    started = time.monotonic()
    response = as_marketer.post(url, {"subject": "Hi", "preheader": "", "body": NESTED_FOUR_OVER_LETTERS,
                                      "signature": ""})
    assert time.monotonic() - started < 2

    assert response.status_code == 200
    data = response.json()
    assert data["rendered"] is False and data["html"] == ""
    assert any("loops nested 4 deep" in p["message"] for p in data["problems"])


def test_the_preview_for_a_customer_whose_order_makes_it_too_big_says_so(api, tenant, as_marketer):
    journey = make_journey(tenant, status=Journey.Status.DRAFT)
    step = Step.objects.for_tenant(tenant).get(journey=journey)
    url = reverse("workspace:journey_step_preview",
                  kwargs={"tenant": "acme", "journey_id": journey.pk, "step_id": step.pk})
    paid_order(api, external_id="BIG", customer={"external_id": "big", "email": "big@example.com"},
               lines=lines(20), total="20.00")
    customer = Customer.objects.for_tenant(tenant).get(external_id="big")

    started = time.monotonic()
    response = as_marketer.post(url, {"subject": "Hi", "preheader": "", "body": BIG_PER_LINE, "signature": "",
                                      "customer": str(customer.pk)})
    assert time.monotonic() - started < 3

    data = response.json()
    assert (response.status_code, data["rendered"], data["html"]) == (200, False, "")
    assert [p["message"] for p in data["problems"]] == [
        "The email cannot be rendered: the email grew past 1,000,000 characters while rendering (a loop repeats too "
        "much text): shorten what the loop repeats"]
