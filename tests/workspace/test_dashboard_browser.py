"""The dashboards in a real browser: every chart drawn (a canvas with pixels on it), the lift beside its table."""

import pytest

from demo.simulation import Params, store_simulate
from lifecycle.models import Membership
from tests.browser import screenshot, sign_in

from .conftest import PASSWORD, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# How many distinct colours a drawn chart has at least: axes, grid, labels and the data itself.
# A blank canvas has one (transparent).
DRAWN = """() => Array.from(document.querySelectorAll("main canvas")).map(c => {
    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4 * 97) { colours.add(data.slice(i, i + 4).join(",")); }
    return {id: c.id, drawn: c.dataset.drawn === "yes", colours: colours.size, width: c.width, height: c.height};
})"""


def charts(page):
    page.wait_for_function("() => document.querySelectorAll('main canvas[data-drawn=yes]').length > 0")
    return {c["id"]: c for c in page.evaluate(DRAWN)}


def test_the_dashboards_draw_every_chart_for_a_simulated_store(browser, live_server, tenant):
    store_simulate(tenant=tenant, params=Params(customers=600, days=365, true_lift=0.1, seed=2))
    make_user("owen", tenant, Membership.Role.OWNER)
    page = sign_in(browser, live_server, "owen", PASSWORD)

    page.goto(f"{live_server.url}/app/{tenant.slug}/?range=365d")
    home = charts(page)
    assert set(home) == {"chart-lift", "chart-second-order", "chart-ltv"}
    for chart in home.values():
        assert chart["drawn"] and chart["width"] > 200 and chart["colours"] > 3, chart
    # The numbers are in the table beside the picture.
    assert page.locator("#lift-table tr.lift-row").count() == 2
    assert page.locator("#second-order-table tbody tr").count() == 7
    assert page.locator("#ltv-table tbody tr").count() >= 12
    screenshot(page, "dashboard-home")

    page.click("nav.dash-tabs >> text=Journeys and lift")
    assert page.url.endswith("/dashboard/journeys/?range=365d")
    journeys = charts(page)
    assert {"chart-lift"} < set(journeys) and len(journeys) == 3  # the lift and a funnel per journey
    assert all(c["drawn"] and c["colours"] > 3 for c in journeys.values()), journeys
    screenshot(page, "dashboard-journeys")

    for tab, expected in (("Feedback and support", {"chart-nps", "chart-ces", "chart-support", "chart-adoption"}),
                          ("Loyalty and referrals", {"chart-points", "chart-referrals"})):
        page.click(f"nav.dash-tabs >> text={tab}")
        drawn = charts(page)
        assert set(drawn) == expected
        assert all(c["drawn"] and c["colours"] > 3 for c in drawn.values()), drawn
        screenshot(page, f"dashboard-{tab.split()[0].lower()}")


def test_the_period_picker_changes_the_figures_and_explains_a_mistake(browser, live_server, tenant):
    store_simulate(tenant=tenant, params=Params(customers=150, days=200, true_lift=0.1, seed=2))
    make_user("owen", tenant, Membership.Role.OWNER)
    page = sign_in(browser, live_server, "owen", PASSWORD)
    page.goto(f"{live_server.url}/app/{tenant.slug}/")
    ninety = int(page.inner_text("#kpi-new-customers"))
    page.check("input[name=range][value='365d']")  # submits the form by itself
    page.wait_for_url("**/?range=365d*")
    assert int(page.inner_text("#kpi-new-customers")) == 150 > ninety

    page.fill("input[name=from]", "2026-02-30")
    page.evaluate("document.querySelector('input[name=from]').type = 'text'")  # a typed date, as old browsers send
    page.fill("input[name=from]", "2026-02-30")
    page.click("#period button.primary")
    assert "is not a date for “from”: use YYYY-MM-DD" in page.inner_text("#period")
    assert page.locator("main canvas").count() == 0
