"""Numbers in a request are ASCII digits (issue 14, item 6).

`str.isdigit()` accepts "²" (which `int()` refuses: a 500) and "١" (Arabic-Indic one, which `int()`
reads as 1). Every place that reads an id or a count from a path, a query or a form now goes through
lifecycle.numbers: a path id that is not ASCII digits names nothing (404), a query or form value is
a 400 with a message, and nothing is written.
"""

import json
import re

import pytest
from django.http import Http404
from django.test import Client
from django.urls import reverse

from feedback.models import AnswerAttempt, SurveyResponse
from journeys.io import library_install
from journeys.models import Journey, Step
from lifecycle import clock
from lifecycle.links import make_token, read_token
from lifecycle.models import Product
from lifecycle.numbers import BadNumber, calendar_date, id_or_404, number_or_400, whole_number
from loyalty.models import LedgerEntry, Redemption, RewardCode
from tests.feedback.helpers import feedback_journey, nps_survey, score_links, send_feedback_email
from tests.loyalty.helpers import NOW, customer, paid_order, program, reward, sums
from tests.workspace.conftest import client_for, make_user

pytestmark = pytest.mark.django_db

NOT_ASCII = ["²", "١", "١٢", "٣", "1²", "𝟙", "¹", " 1", "1 ", "+1", "-1", "1.0", "", "0x1", "1" * 20]


@pytest.mark.parametrize("raw", NOT_ASCII)
def test_the_parser_takes_ascii_digits_only(raw):
    assert whole_number(raw) is None
    with pytest.raises(BadNumber) as refused:
        number_or_400(raw, "page", minimum=1, maximum=10)
    assert (refused.value.status, refused.value.message, refused.value.fields) == (
        400, "page must be a whole number from 1 to 10", {"page": ["must be a whole number from 1 to 10"]})
    with pytest.raises(Http404):
        id_or_404(raw)


def test_the_parser_reads_ascii_digits_in_range():
    assert whole_number("0") == 0 and whole_number("007") == 7 and whole_number(str(2**63 - 1)) == 2**63 - 1
    assert whole_number(str(2**63)) is None and whole_number("0", minimum=1) is None
    assert whole_number(7) is None and whole_number(None) is None
    assert number_or_400("10", "page", minimum=1, maximum=10) == 10 and id_or_404("42") == 42
    assert calendar_date("2026-01-31").isoformat() == "2026-01-31"
    assert [calendar_date(raw) for raw in ("20260131", "2026-W05-6", "２０２６-01-31", "2026-02-30", "")] == [None] * 5


# --- POST /f/<token>: the survey answer's score ------------------------------------------------


@pytest.mark.parametrize("score", ["²", "١", "٩", "1²"])
def test_a_survey_score_that_is_not_ascii_digits_is_a_400_and_records_nothing(api, tenant, score):
    nps_survey(tenant)
    feedback_journey(tenant, "nps")
    path = score_links(send_feedback_email(api, tenant))[9]
    token = path.split("/")[2]
    data = {"request": read_token("survey", token)["r"], "mode": "confirm", "score": score}
    response = Client().post(f"/f/{token}", data)
    assert response.status_code == 400
    assert "Please choose a score." in response.content.decode()
    auto = Client().post(f"/f/{token}", {**data, "mode": "auto"})
    assert auto.status_code == 400 and auto.json()["state"] == "invalid"
    assert not SurveyResponse.objects.for_tenant(tenant).exists()
    assert not AnswerAttempt.objects.for_tenant(tenant).exists()


# --- POST /l/<token>: the loyalty page's reward --------------------------------------------------


@pytest.mark.parametrize("raw", ["²", "١", "1²"])
def test_a_loyalty_reward_that_is_not_ascii_digits_is_a_400_and_spends_nothing(api, tenant, raw):
    prog = program(tenant, pending_days=0)
    reward(tenant, prog, cost=40)
    with clock.frozen(NOW):
        paid_order(api)
    url = f"/l/{make_token('loyalty', tenant_id=tenant.pk, customer_id=customer(tenant).pk)}"
    before = sums(tenant)
    response = Client().post(url, {"reward": raw, "nonce": "n-1"})
    assert response.status_code == 400
    assert "That reward is not available." in response.content.decode()
    assert not Redemption.objects.for_tenant(tenant).exists()
    assert not LedgerEntry.objects.for_tenant(tenant).filter(kind="redeem").exists()
    assert sums(tenant) == before


# --- the API's path ids and paging ---------------------------------------------------------------


@pytest.mark.parametrize("raw", ["²", "١", "%C2%B2", "%D9%A1"])
def test_a_reward_id_that_is_not_ascii_digits_is_a_404_and_adds_no_codes(api, tenant, raw):
    gift = reward(tenant, program(tenant), cost=40)
    response = api.post(f"/api/v1/loyalty/rewards/{raw}/codes", {"codes": ["A-1", "A-2"]})
    assert response.status_code == 404
    assert response.json()["code"] == "loyalty.reward_not_found"
    assert not RewardCode.objects.for_tenant(tenant).exists()
    assert api.post(f"/api/v1/loyalty/rewards/{gift.pk}/codes", {"codes": ["A-1"]}).json()["added"] == 1


@pytest.mark.parametrize("name", ["page", "page_size"])
@pytest.mark.parametrize("raw", ["²", "١", "0", "1.5"])
def test_review_paging_that_is_not_ascii_digits_is_a_400(api, tenant, name, raw):
    paid_order(api)
    product = Product.objects.for_tenant(tenant).order_by("pk").first()
    response = api.get(f"/api/v1/products/{product.external_id}/reviews", {name: raw})
    maximum = 10**6 if name == "page" else 100
    assert response.status_code == 400
    assert response.json() == {"code": "reviews.bad_paging", "message": f"{name} must be a whole number from 1 to {maximum}",
                               "fields": {name: [f"must be from 1 to {maximum}"]}}


def test_journey_ids_and_cursors_that_are_not_ascii_digits(api, tenant):
    journey = Journey.objects.for_tenant(tenant).create(tenant=tenant, name="One", trigger="order_paid")
    paid_order(api)
    for raw in ("²", "١", str(journey.pk) + "²"):
        assert api.get(f"/api/v1/journeys/{raw}").json()["code"] == "journeys.not_found", raw
        after = api.get("/api/v1/journeys", {"after": raw})
        assert (after.status_code, after.json()["code"]) == (400, "journeys.bad_cursor"), raw
        explain = api.get("/api/v1/customers/c1/journeys", {"journey": raw})
        assert explain.status_code == 400 and explain.json()["fields"] == {"journey": ["must be a whole number from 1"]}
    assert api.get(f"/api/v1/journeys/{journey.pk}").status_code == 200


# --- the builder's and the preview's ?customer= ---------------------------------------------------


@pytest.mark.parametrize("raw", ["²", "١", "1²"])
def test_a_preview_customer_that_is_not_ascii_digits_is_a_400_with_a_message(api, tenant, raw):
    paid_order(api)
    library_install(tenant=tenant, keys=["review-request"])
    journey = Journey.objects.for_tenant(tenant).get(library_key="review-request")
    step = Step.objects.for_tenant(tenant).get(journey=journey)
    client = client_for(make_user("mara", tenant))
    builder = reverse("workspace:journey", kwargs={"tenant": "acme", "journey_id": journey.pk})
    page = client.get(builder, {"step": step.pk, "customer": raw})
    assert page.status_code == 400
    assert "Choose a customer from the list." in page.content.decode()
    preview = client.post(reverse("workspace:journey_step_preview", kwargs={
        "tenant": "acme", "journey_id": journey.pk, "step_id": step.pk}),
        {"subject": "Hi {{ first_name }}", "preheader": "", "body": "<p>Hi</p>", "signature": "", "customer": raw})
    assert (preview.status_code, json.loads(preview.content)) == (400, {"error": "Choose a customer from the list."})
    assert client.get(builder, {"step": step.pk}).status_code == 200


def test_no_isdigit_is_left_in_the_code():
    """The one parser is lifecycle.numbers; `str.isdigit()` is no test for a number."""
    from tests.layout import ROOT as root
    from tests.layout import project_packages

    assert {"lifecycle", "workspace", "demo", "config"} <= set(project_packages())
    found = [f"{path.relative_to(root)}:{n}" for app in project_packages()
             for path in (root / app).rglob("*.py") for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\.isdigit\(\)", line) and path.name != "numbers.py"]
    assert found == []
