"""NPS, CSAT %, CES average and response rate; a customer's latest scores in journey conditions."""

import datetime as dt

import pytest

from feedback.models import Survey, SurveyRequest
from feedback.selectors import customer_latest_scores
from feedback.services import answer_submit
from journeys.enrollment import condition_holds
from journeys.models import Delivery, Journey, Step
from lifecycle import clock
from lifecycle.models import Customer, Product

from .helpers import NOON, feedback_journey, nps_survey, send_feedback_email

pytestmark = pytest.mark.django_db


def ask(tenant, survey, customer, *, at, journey_id=None, product=None) -> SurveyRequest:
    return SurveyRequest.objects.for_tenant(tenant).create(
        tenant=tenant, survey=survey, customer=customer, asked_at=at, asked_because="test",
        journey_id=journey_id, product=product)


def answer(req, score, at):
    with clock.frozen(at):
        answer_submit(survey_request=req, score=score, mode="confirm")


@pytest.fixture
def people(tenant):
    return [Customer.objects.for_tenant(tenant).create(tenant=tenant, email=f"p{n}@example.com") for n in range(6)]


def test_metrics_overall_per_journey_per_product_and_by_week(api, tenant, people):
    nps = nps_survey(tenant)
    csat = Survey.objects.for_tenant(tenant).create(tenant=tenant, key="csat", name="CSAT", kind="csat")
    ces = Survey.objects.for_tenant(tenant).create(tenant=tenant, key="ces", name="CES", kind="ces")
    review = Survey.objects.for_tenant(tenant).create(tenant=tenant, key="review", name="Reviews", kind="review")
    beans = Product.objects.for_tenant(tenant).create(tenant=tenant, external_id="p-beans", title="Beans")
    monday = dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC)
    # NPS: 10, 9 promoters, 7 passive, 3 detractor; one asked and never answered. → (2 − 1) / 4 = 25.
    for person, score, journey in zip(people[:4], [10, 9, 7, 3], [1, 1, 2, 2], strict=True):
        answer(ask(tenant, nps, person, at=monday, journey_id=journey), score, monday + dt.timedelta(hours=1))
    ask(tenant, nps, people[4], at=monday, journey_id=2)
    # CSAT 5, 4, 2 → 66.7 %; CES 2 and 5 → 3.5, the week after.
    week2 = monday + dt.timedelta(days=7)
    for person, score in zip(people[:3], [5, 4, 2], strict=True):
        answer(ask(tenant, csat, person, at=week2), score, week2)
    for person, score in zip(people[:2], [2, 5], strict=True):
        answer(ask(tenant, ces, person, at=week2), score, week2)
    for person, score in zip(people[:2], [5, 2], strict=True):
        answer(ask(tenant, review, person, at=week2, product=beans), score, week2)

    body = api.get("/api/v1/feedback/metrics").json()
    overall = body["overall"]
    assert (overall["nps"], overall["promoters"], overall["passives"], overall["detractors"]) == (25.0, 2, 1, 1)
    assert (overall["csat_percent"], overall["ces_average"], overall["review_average"]) == (66.7, 3.5, 3.5)
    assert (overall["requests"], overall["responses"], overall["response_rate"]) == (12, 11, 91.7)
    journeys = {row["journey_id"]: row for row in body["by_journey"]}
    assert (journeys[1]["nps"], journeys[1]["response_rate"]) == (100.0, 100.0)
    assert (journeys[2]["nps"], journeys[2]["requests"], journeys[2]["responses"]) == (-50.0, 3, 2)
    [product] = body["by_product"]
    assert (product["product_external_id"], product["review_average"], product["requests"]) == ("p-beans", 3.5, 2)
    weeks = {row["week"]: row for row in body["by_week"]}
    assert sorted(weeks) == ["2026-11-23", "2026-11-30"]
    assert weeks["2026-11-23"]["nps"] == 25.0 and weeks["2026-11-30"]["ces_average"] == 3.5

    only_nps = api.get("/api/v1/feedback/metrics", {"survey": "nps", "since": "2026-11-23"}).json()["overall"]
    assert (only_nps["requests"], only_nps["csat_responses"]) == (5, 0)
    assert api.get("/api/v1/feedback/metrics", {"since": "yesterday"}).status_code == 400
    assert api.get("/api/v1/feedback/metrics", {"until": "2026-11-01"}).json()["overall"]["requests"] == 0


def test_a_customers_latest_scores_drive_journey_conditions(api, tenant):
    nps_survey(tenant)
    feedback_journey(tenant, "nps")
    send_feedback_email(api, tenant)
    [req] = SurveyRequest.objects.for_tenant(tenant)
    answer(req, 4, NOON + dt.timedelta(days=2))
    assert customer_latest_scores(tenant=tenant, customer_id=req.customer_id) == {
        "nps": 4, "csat": None, "ces": None, "review": None}

    delivery = Delivery.objects.for_tenant(tenant).select_related("customer", "enrollment").get()
    assert condition_holds({"field": "latest_nps", "op": "<=", "value": 6}, delivery)
    assert not condition_holds({"field": "latest_nps", "op": ">=", "value": 9}, delivery)
    assert not condition_holds({"field": "latest_csat", "op": "<=", "value": 2}, delivery)  # never answered
    assert Journey.objects.for_tenant(tenant).get().steps.get().kind == Step.Kind.FEEDBACK_REQUEST
