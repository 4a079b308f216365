"""Every journey's email category (what a customer's preferences turn off): chosen from what the journey does
when nobody says, carried by its JSON (old files without one still import), and changeable at any time, even
while the journey runs (tests/workspace/test_journey_category.py: in the builder)."""

import copy

import pytest

from journeys.categories import category_default
from journeys.definition import JourneyIn
from journeys.io import journey_export, journey_import, library_install, library_load
from journeys.models import Enrollment, Journey

from .test_io import enrolled, journey_json

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("kinds", "texts", "category"), [
    (["email", "feedback_request"], ["Day 7 check-in"], "reviews"),
    (["referral_invite"], [], "loyalty"),
    (["award_points", "email"], [], "loyalty"),
    (["email"], ["<p>You have {{ points_balance }} points</p>"], "loyalty"),
    (["email"], ["Win-back", "It's been a while"], "offers"),
    (["email"], ["Running low on {{ order.item_titles }}?"], "offers"),
    (["email"], ["10% off your next order"], "offers"),
    (["email", "condition"], ["First use tips", "Getting the most out of your first week"], "tips"),
])
def test_the_default_comes_from_what_the_journey_does(kinds, texts, category):
    assert category_default(kinds=kinds, texts=texts) == category


def test_every_library_journey_names_its_category():
    expected = {"day-7-check-in": "reviews", "review-request": "reviews", "first-use-tips": "tips",
                "loyalty-invite": "loyalty", "referral-invite": "loyalty", "win-back": "offers",
                "replenishment-reminder": "offers"}
    for key, category in expected.items():
        assert library_load(key).category == category, key


def test_the_library_installs_with_its_categories(tenant):
    library_install(tenant=tenant, keys=["win-back", "review-request"])
    assert dict(Journey.objects.for_tenant(tenant).values_list("library_key", "category")) == {
        "win-back": "offers", "review-request": "reviews"}


def test_export_carries_the_category_and_import_restores_it(tenant, other_tenant):
    journey, _ = journey_import(tenant=tenant, data=JourneyIn.model_validate(journey_json(category="offers")))
    exported = journey_export(journey)
    assert exported["category"] == "offers"

    copied, created = journey_import(tenant=other_tenant, data=JourneyIn.model_validate(exported))
    assert created and copied.category == "offers"
    assert journey_export(copied) == exported


def test_a_file_from_before_categories_imports_with_the_default_and_an_update_keeps_the_chosen_one(tenant):
    old = journey_json()  # no "category": a check-in with a condition and plain emails
    assert "category" not in old
    journey, created = journey_import(tenant=tenant, data=JourneyIn.model_validate(old))
    assert created and journey.category == "tips"

    Journey.objects.for_tenant(tenant).filter(pk=journey.pk).update(category="offers")  # a marketer's choice
    journey, created = journey_import(tenant=tenant, data=JourneyIn.model_validate(old))
    assert not created and Journey.objects.for_tenant(tenant).get(pk=journey.pk).category == "offers"

    survey_file = copy.deepcopy(old)
    survey_file["name"] = "Ask"
    survey_file["steps"][0].update(kind="feedback_request", config={"survey": "nps"})
    assert journey_import(tenant=tenant, data=JourneyIn.model_validate(survey_file))[0].category == "reviews"


def test_an_unknown_category_is_refused_with_its_field(api, tenant):
    response = api.post("/api/v1/journeys", journey_json(category="newsletters"))
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["category"]
    assert not Journey.objects.for_tenant(tenant).exists()


def test_the_category_may_change_while_customers_are_in_the_journey(api, tenant):
    delivery = enrolled(api, tenant)
    response = api.post("/api/v1/journeys", journey_json(status="active", category="offers"))
    assert response.status_code == 200, response.content
    assert Journey.objects.for_tenant(tenant).get(pk=delivery.journey_id).category == "offers"
    assert Enrollment.objects.for_tenant(tenant).get().state == "active"
