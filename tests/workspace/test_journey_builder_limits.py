"""The builder: where an A/B split's branches meet again, and its side of the template limits
(journeys.render_limits): a template that would make too much work is refused where the marketer
saves it, and the preview answers quickly with the problem."""

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
    from workspace.builder_forms import StepForm

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


def test_an_ab_split_saved_in_the_builder_keeps_where_its_branches_meet(tenant, as_marketer):
    from workspace.builder_forms import StepForm

    journey = make_journey(tenant, status=Journey.Status.DRAFT, steps=[
        ("PT0S", "unused"), ("PT0S", "A1"), ("PT0S", "A2"), ("PT0S", "B1"), ("PT0S", "Together")])
    step = Step.objects.for_tenant(tenant).get(journey=journey, position=1)
    data = {key: ("" if value is None else value) for key, value in StepForm.initial_for(step).items()}
    data.update(kind="ab_split", variants="2:50, 4:50", ab_then="5")
    url = reverse("workspace:journey_step", kwargs={"tenant": "acme", "journey_id": journey.pk, "step_id": step.pk})

    assert as_marketer.post(url, data).status_code == 302
    step.refresh_from_db()
    assert step.config == {"variants": [{"step": 2, "weight": 50}, {"step": 4, "weight": 50}], "then": 5}
    assert StepForm.initial_for(step)["ab_then"] == 5  # saved again unchanged, it keeps its join
    page = as_marketer.get(reverse("workspace:journey", kwargs={"tenant": "acme", "journey_id": journey.pk}))
    assert "each customer gets one branch, then goes on at step 5" in page.content.decode()

    data = {key: ("" if value is None else value) for key, value in StepForm.initial_for(step).items()}
    data.update(ab_then="3")  # inside the first branch: refused at activation, said beside the step
    assert as_marketer.post(url, data).status_code == 302
    from journeys.builder_checks import journey_problems

    assert "After the branches the split goes on at step 3, which is not after every branch's step: pick a later " \
           "step." in [p.message for p in journey_problems(journey)]
