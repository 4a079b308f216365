"""The A/B test page and the journeys dashboard: each arm with its interval, the winner named, settings
and one-click promotion for owners and marketers only; another store's journey is a 404."""

import datetime as dt
import html
import re

import pytest
from django.urls import reverse

from journeys.models import AbTest, Step
from lifecycle import clock
from lifecycle.models import Event
from tests.journeys.ab_data import NOW, ab_store

from .conftest import client_for, make_user

pytestmark = pytest.mark.django_db

SETTINGS = {"goal": "order", "window_days": "7", "rule": "significance", "sample_size": "1000", "min_sample": "100",
            "confidence": "95"}


def url(tenant, name: str, **kwargs) -> str:
    return reverse(f"workspace:{name}", kwargs={"tenant": tenant.slug, **kwargs})


def form(split: Step, **values) -> dict:
    return {f"t{split.pk}-{key}": value for key, value in {**SETTINGS, **values}.items()}


def text(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


@pytest.fixture
def ab(tenant):
    return ab_store(tenant)


def test_the_page_shows_each_arm_with_its_interval_and_names_the_winner(as_viewer, tenant, ab):
    journey, steps = ab
    with clock.frozen(NOW):
        response = as_viewer.get(url(tenant, "journey_tests", journey_id=journey.pk))
    assert response.status_code == 200
    page = text(response)
    assert "Winner: B — B wins: its rate is above every other arm's at 95% confidence." in page
    assert "40 · 10.0% 7.4% to 13.3%" in page and "64 · 16.0% 12.7% to 19.9%" in page
    assert "+6.0 pts +1.3 pts to +10.7 pts" in page  # B − A, Newcombe
    assert "5 still inside the window" in page
    assert "Promote" not in page and 'name="arm"' not in response.content.decode()  # a viewer reads only
    charts = response.context["charts"][f"chart-arms-{steps[1].pk}"]
    assert charts["estimates"] == [10.0, 16.0] and charts["intervals"] == [[7.43, 13.33], [12.73, 19.91]]


def test_a_marketer_promotes_with_one_click_and_the_audit_log_says_so(as_marketer, tenant, ab):
    journey, steps = ab
    path = url(tenant, "journey_test_promote", journey_id=journey.pk, step_id=steps[1].pk)
    with clock.frozen(NOW):
        response = as_marketer.post(path, {"arm": steps[3].pk})
    assert response.status_code == 302
    test = AbTest.objects.for_tenant(tenant).get()
    assert (test.step_id, test.winner_id, test.promoted_by, test.promoted_at) == (steps[1].pk, steps[3].pk, "mara", NOW)
    event = Event.objects.for_tenant(tenant).get(type__startswith="store.")
    assert (event.type, event.data["by"], event.data["arm"]) == ("store.journey_test_promoted", "mara", "B")
    with clock.frozen(NOW):
        page = text(as_marketer.get(response["Location"]))
    assert "Promoted: B (step 3), by mara" in page
    audit = text(as_marketer.get(url(tenant, "settings-audit")))
    assert "store.journey_test_promoted" in audit and "arm: B" in audit


def test_a_viewer_cannot_promote_or_change_the_test(as_viewer, tenant, ab):
    journey, steps = ab
    promote = as_viewer.post(url(tenant, "journey_test_promote", journey_id=journey.pk, step_id=steps[1].pk),
                             {"arm": steps[3].pk})
    settings = as_viewer.post(url(tenant, "journey_test_settings", journey_id=journey.pk, step_id=steps[1].pk),
                              form(steps[1], auto_promote="on"))
    assert (promote.status_code, settings.status_code) == (403, 403)
    assert not AbTest.objects.for_tenant(tenant).exists()
    assert not Event.objects.for_tenant(tenant).filter(type__startswith="store.").exists()


def test_an_owner_sets_the_goal_and_rule_and_bad_input_is_a_400_that_changes_nothing(tenant, ab):
    journey, steps = ab
    owner = client_for(make_user("olga", tenant, "owner"))
    path = url(tenant, "journey_test_settings", journey_id=journey.pk, step_id=steps[1].pk)
    bad = owner.post(path, form(steps[1], window_days="0", sample_size="lots", rule="whenever"))
    assert bad.status_code == 400
    page = text(bad)
    assert "The test's settings were not saved" in page and "Enter a whole number." in page
    assert "Select a valid choice. whenever is not one of the available choices." in page
    assert not AbTest.objects.for_tenant(tenant).exists()
    wrong_arm = owner.post(url(tenant, "journey_test_promote", journey_id=journey.pk, step_id=steps[1].pk),
                           {"arm": steps[4].pk})
    assert wrong_arm.status_code == 400 and "That is not one of this test's arms" in text(wrong_arm)
    assert not AbTest.objects.for_tenant(tenant).exists()

    response = owner.post(path, form(steps[1], rule="sample", sample_size="500", auto_promote="on"))
    assert response.status_code == 302
    test = AbTest.objects.for_tenant(tenant).get()
    assert (test.rule, test.sample_size, test.window, test.auto_promote) == ("sample", 500, dt.timedelta(days=7), True)
    with clock.frozen(NOW):
        page = text(owner.get(response["Location"]))
    assert "Not yet: 200 more customers needed (500 in each arm, the smallest has 400)." in page
    assert "Winner:" not in page


def test_another_stores_journey_is_a_404_and_changes_nothing(as_outsider, tenant, other_tenant, ab):
    journey, steps = ab
    for name, kwargs in (("journey_tests", {}), ("journey_test_settings", {"step_id": steps[1].pk}),
                         ("journey_test_promote", {"step_id": steps[1].pk})):
        for slug in (tenant, other_tenant):
            path = url(slug, name, journey_id=journey.pk, **kwargs)
            assert as_outsider.get(path).status_code == 404
            assert as_outsider.post(path, {"arm": steps[3].pk, **form(steps[1])}).status_code == 404
    assert not AbTest.all_tenants.exists()


def test_a_split_of_another_journey_of_the_same_store_is_a_404_and_an_email_without_versions_a_400(as_marketer, tenant, ab):
    journey, steps = ab
    other, other_steps = ab_store(tenant, name="Another test")
    path = url(tenant, "journey_test_promote", journey_id=journey.pk, step_id=other_steps[1].pk)
    assert as_marketer.post(path, {"arm": other_steps[2].pk}).status_code == 404
    # An email step without versions has no arm to promote.
    path = url(tenant, "journey_test_promote", journey_id=journey.pk, step_id=steps[2].pk)
    refused = as_marketer.post(path, {"arm": steps[3].pk})
    assert refused.status_code == 400 and "That is not one of this test's arms" in text(refused)
    assert not AbTest.objects.for_tenant(tenant).exists()


def test_the_journeys_dashboard_shows_the_test_and_the_cuped_lift_table(as_viewer, tenant, ab):
    with clock.frozen(NOW):
        response = as_viewer.get(url(tenant, "dashboard_funnels") + "?range=90d")
    assert response.status_code == 200
    page = text(response)
    assert "A/B test: Review request test, step 1" in page
    assert "Winner: B" in page
    journey, steps = ab
    assert f"chart-arms-{steps[1].pk}" in response.context["charts"]


def test_a_marketer_adds_a_version_of_an_email_and_bad_content_is_a_400(as_marketer, as_viewer, tenant, ab):
    journey, steps = ab
    path = url(tenant, "journey_step_versions", journey_id=journey.pk, step_id=steps[4].pk)
    assert as_viewer.post(path, {f"v{steps[4].pk}-subject": "Hello B"}).status_code == 403
    bad = as_marketer.post(path, {f"v{steps[4].pk}-subject": "Hi {{ nosuch }}"})
    assert bad.status_code == 400 and "The new version was not added" in text(bad)
    empty = as_marketer.post(path, {f"v{steps[4].pk}-subject": ""})
    assert empty.status_code == 400 and "Write at least a subject or a body" in text(empty)
    assert Step.objects.for_tenant(tenant).get(pk=steps[4].pk).template.versions == []
    assert not Event.objects.for_tenant(tenant).filter(type__startswith="store.").exists()

    added = as_marketer.post(path, {f"v{steps[4].pk}-subject": "Your review, in one click",
                                    f"v{steps[4].pk}-body": '<p><a href="https://example.com">Review now</a></p>'})
    assert added.status_code == 302
    template = Step.objects.for_tenant(tenant).get(pk=steps[4].pk).template
    assert template.versions == [{"subject": "Your review, in one click",
                                  "body": '<p><a href="https://example.com">Review now</a></p>'}]
    assert Event.objects.for_tenant(tenant).get(type="store.journey_test_changed").data["version_added"] == "B"
    page = text(as_marketer.get(url(tenant, "journey_tests", journey_id=journey.pk)))
    assert "Versions of the email at step 4" in page and "Version B: Your review, in one click" in page
    removed = as_marketer.post(path, {"remove": "B"})
    assert removed.status_code == 302
    assert Step.objects.for_tenant(tenant).get(pk=steps[4].pk).template.versions == []
