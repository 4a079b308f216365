"""A journey's email category in the builder: shown, changed even while the journey runs (it decides only
whether later emails may go), with its line in the audit log; an unknown one is refused. And on a customer's
page, the categories they turned off on their preference page."""

import html

import pytest
from django.urls import reverse

from journeys.models import Journey
from lifecycle.models import Event
from tests.journeys.helpers import make_journey
from tests.workspace.test_journey_builder import settings_post

pytestmark = pytest.mark.django_db


def test_the_builder_shows_and_changes_the_category_of_a_live_journey_with_an_audit_line(as_marketer, tenant,
                                                                                       marketer):
    journey = make_journey(tenant, name="Restock", steps=[("P1D", "Running low?")])
    assert (journey.status, journey.category) == ("active", "tips")
    page = reverse("workspace:journey", kwargs={"tenant": "acme", "journey_id": journey.pk})
    assert "Email category: Tips and how-to" in as_marketer.get(page).content.decode()

    response = as_marketer.post(reverse("workspace:journey_settings", kwargs={"tenant": "acme",
                                                                              "journey_id": journey.pk}),
                                settings_post(journey, category="offers", trigger="order_delivered"))

    assert response.status_code == 302
    journey.refresh_from_db()
    assert (journey.category, journey.trigger) == ("offers", "order_paid")  # live: the trigger stays
    assert "Email category: Offers" in html.unescape(as_marketer.get(page).content.decode())
    [line] = Event.objects.for_tenant(tenant).filter(type="store.journey_changed")
    assert line.data["changes"] == {"category": ["tips", "offers"]}
    assert line.data["by"] == marketer.username


def test_an_unknown_category_from_the_workspace_is_a_400_and_changes_nothing(as_marketer, tenant):
    journey = make_journey(tenant, name="Restock", status=Journey.Status.DRAFT)
    response = as_marketer.post(reverse("workspace:journey_settings", kwargs={"tenant": "acme",
                                                                              "journey_id": journey.pk}),
                                settings_post(journey, category="newsletters"))
    assert response.status_code == 400
    assert "Select a valid choice" in html.unescape(response.content.decode())
    assert Journey.objects.for_tenant(tenant).get(pk=journey.pk).category == "tips"


def test_the_customer_page_shows_what_they_turned_off_and_the_change_on_the_timeline(as_viewer, tenant, a_customer):
    from lifecycle.preferences import customer_preferences_set

    page = reverse("workspace:customer", kwargs={"tenant": "acme", "customer_id": a_customer.pk})
    assert 'id="categories-off"' not in as_viewer.get(page).content.decode()

    customer_preferences_set(customer=a_customer, on={"tips", "loyalty"})

    body = html.unescape(as_viewer.get(page).content.decode())
    assert "Turned off on their preference page: Reviews and surveys, Offers." in body
    assert "Changed their email preferences" in body
