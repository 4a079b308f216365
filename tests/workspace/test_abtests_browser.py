"""An A/B test in a real browser: the journeys dashboard draws each arm with its interval and names the
winner; the marketer opens the test and promotes the winner with one click."""

import pytest

from journeys.models import AbTest
from lifecycle.models import Event, Membership
from tests.browser import screenshot, sign_in
from tests.journeys.ab_data import ab_store

from .conftest import PASSWORD, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_names_the_winner_and_the_marketer_promotes_it(browser, live_server, tenant):
    journey, steps = ab_store(tenant)
    make_user("mara", tenant, Membership.Role.MARKETER)
    page = sign_in(browser, live_server, "mara", PASSWORD)

    page.goto(f"{live_server.url}/app/{tenant.slug}/dashboard/journeys/")
    section = page.locator(f"#dash-test-{steps[1].pk}")
    page.wait_for_function(f"() => document.querySelector('#chart-arms-{steps[1].pk}')?.dataset.drawn === 'yes'")
    assert section.locator(".ab-winner").inner_text() == "Winner: B"
    arms = section.locator("tr.ab-arm")
    assert arms.count() == 2
    assert arms.nth(0).locator(".arm-interval").inner_text() == "7.4% to 13.3%"
    assert section.locator("button.promote").count() == 0  # the dashboard shows; the test page acts
    screenshot(page, "abtest-dashboard")

    section.locator("h2 a").click()
    page.wait_for_url(f"**/journeys/{journey.pk}/tests/#test-{steps[1].pk}")
    assert AbTest.objects.for_tenant(tenant).count() == 0
    page.click(f"#promote-{steps[1].pk}-B")
    page.wait_for_load_state("networkidle")
    assert page.locator(".ab-promoted").inner_text() == "Promoted: B"
    assert "everyone who reaches step 1 from now on goes to step 3" in page.inner_text(".messages")
    assert page.locator(f"#promote-{steps[1].pk}-B").count() == 0  # promoted: a badge, no button
    test = AbTest.objects.for_tenant(tenant).get()
    assert (test.step_id, test.winner_id, test.promoted_by) == (steps[1].pk, steps[3].pk, "mara")
    assert Event.objects.for_tenant(tenant).filter(type="store.journey_test_promoted").count() == 1
    screenshot(page, "abtest-promoted")
