"""Issue 17's whole path in a real browser, without docs: a marketer builds a journey that branches on the
product bought and on whether the customer clicked the first email, and tests the second email's subject
against a new one. Each customer follows exactly one path; the customer page says why at each branch; the
journeys dashboard shows each version with its interval and names the winner once the stopping rule (ten
customers in each arm) is met, and says "not yet" before.

The application's clock is frozen for the whole test (lifecycle.clock is module-wide, so the live server
sees it too): the journey is built on a Monday morning, the orders arrive that noon, and the dashboard is
read three weeks later, when every arm's click window has closed.
"""

import datetime as dt

import pytest

from journeys.models import Delivery, EmailTemplate, Journey, Step
from lifecycle import clock
from lifecycle.models import Customer, Membership
from tests.browser import screenshot, sign_in
from tests.journeys.helpers import process_events
from tests.journeys.test_engine import paid_order, send_due

from .conftest import PASSWORD, make_user
from .test_journey_branch_browser import BEANS, FILTERS, build_branching_journey
from .test_journey_builder_browser import public_url  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BUILT = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)  # a Monday morning
NOON = BUILT + dt.timedelta(hours=3)
READ = NOON + dt.timedelta(days=21)
PER_ARM = 10  # the stopping rule: this many customers in each version


def test_a_branching_journey_with_a_subject_test_from_the_builder_to_the_winner(browser, live_server, public_url,  # noqa: F811
                                                                                 tenant, api):
    make_user("mara", tenant, Membership.Role.MARKETER)
    with clock.frozen(BUILT):
        page = sign_in(browser, live_server, "mara", PASSWORD)
        build_branching_journey(page, live_server, "Beans, clicks and a subject test")
        journey = Journey.objects.for_tenant(tenant).get(name="Beans, clicks and a subject test")
        steps = {s.position: s for s in Step.objects.for_tenant(tenant).filter(journey=journey)}
        guide = steps[4]

        # The second email's subject test: a version B of step 4, its goal a click, ten customers an arm.
        page.goto(f"{live_server.url}/app/acme/journeys/{journey.pk}/tests/")
        page.click(f"#versions-{guide.pk} details > summary")
        page.fill(f"#add-version-{guide.pk} [name=v{guide.pk}-subject]", "Brew it like a barista")
        page.click(f"#add-version-{guide.pk} button.primary")
        page.wait_for_selector(f"#versions-{guide.pk} li.version[data-version=B]")
        page.click(f"#test-{guide.pk} details.ab-settings > summary")
        page.select_option(f"#id_t{guide.pk}-goal", "click")
        page.check(f"#settings-{guide.pk} input[name=t{guide.pk}-rule][value=sample]")
        page.fill(f"#id_t{guide.pk}-sample_size", str(PER_ARM))
        page.click(f"#settings-{guide.pk} button.primary")
        page.wait_for_selector(".messages li.success")
        page.goto(f"{live_server.url}/app/acme/journeys/{journey.pk}/")
        page.click("#activate")
        page.wait_for_selector("#journey-status.active")
    template = EmailTemplate.objects.for_tenant(tenant).get(pk=guide.template_id)
    assert [v["subject"] for v in template.versions] == ["Brew it like a barista"]

    # Customers who bought beans and will click the first email, until each version has ten of them; two
    # who bought beans and will not click; two who bought filters only.
    clickers: dict[str, list[str]] = {"A": [], "B": []}
    n = 0
    with clock.frozen(NOON):
        while min(len(v) for v in clickers.values()) < PER_ARM:
            n += 1
            paid_order(api, external_id=f"o-click-{n}", customer={"external_id": f"click-{n}", "time_zone": "UTC"},
                       lines=[BEANS])
            customer = Customer.objects.for_tenant(tenant).get(external_id=f"click-{n}")
            clickers[template.version_drawn(guide.pk, customer.pk)].append(customer.external_id)
        for name, lines in (("quiet-1", [BEANS]), ("quiet-2", [BEANS]), ("filters-1", [FILTERS]),
                            ("filters-2", [FILTERS])):
            paid_order(api, external_id=f"o-{name}", customer={"external_id": name, "time_zone": "UTC"}, lines=lines)
        process_events()
    while send_due(NOON):
        pass
    everyone_clicking = [*clickers["A"], *clickers["B"]]
    Delivery.objects.for_tenant(tenant).filter(customer__external_id__in=everyone_clicking, step__position=1).update(
        clicked_at=NOON + dt.timedelta(minutes=5))
    for day in (1, 2, 3):
        while send_due(NOON + dt.timedelta(days=day)):
            pass

    # Exactly one path each.
    taken: dict[str, list[int]] = {}
    for d in Delivery.objects.for_tenant(tenant).filter(journey=journey).select_related("customer", "step"):
        taken.setdefault(d.customer.external_id, []).append(d.step.position)
    assert {k: sorted(v) for k, v in taken.items()} == {
        **{name: [1, 2, 3, 4] for name in everyone_clicking},
        "quiet-1": [1, 2, 3, 5], "quiet-2": [1, 2, 3, 5], "filters-1": [1, 2, 5], "filters-2": [1, 2, 5]}

    # Each customer of step 4 got their version's subject; version B's are clicked more.
    sent = {d.customer.external_id: d for d in Delivery.objects.for_tenant(tenant).filter(
        journey=journey, step=guide, state=Delivery.State.SENT).select_related("customer")}
    assert set(sent) == set(everyone_clicking)
    b_clicks = clickers["B"][1:]  # all of B's customers but one clicked, one of A's: B wins
    a_clicks = clickers["A"][:1]
    for name in (*b_clicks, *a_clicks):
        Delivery.objects.for_tenant(tenant).filter(pk=sent[name].pk).update(
            clicked_at=sent[name].sent_at + dt.timedelta(hours=1))

    with clock.frozen(READ):
        # The explain view on the customer page: why each branch went where it did.
        one_b = Customer.objects.for_tenant(tenant).get(external_id=clickers["B"][0])
        page.goto(f"{live_server.url}/app/acme/customers/{one_b.pk}/")
        page.click(f"#why-{journey.pk} > summary")
        why = {int(li.get_attribute("data-position")): li.inner_text()
               for li in page.locator(f"#why-{journey.pk} li").all()}
        assert sorted(why) == [1, 2, 3, 4]
        assert why[2].endswith("bought SKU BEANS-1KG in this order: yes → step 3")
        assert why[3].endswith(": yes → step 4")
        assert why[4] == "Step 4 (email): sent"
        filters = Customer.objects.for_tenant(tenant).get(external_id="filters-1")
        page.goto(f"{live_server.url}/app/acme/customers/{filters.pk}/")
        page.click(f"#why-{journey.pk} > summary")
        assert [li.inner_text().rsplit(" — ", 1)[-1] for li in page.locator(f"#why-{journey.pk} li").all()][1] == (
            "bought SKU BEANS-1KG in this order: no → step 5")

        # The dashboard: both versions with their intervals, B named the winner.
        page.goto(f"{live_server.url}/app/acme/dashboard/journeys/")
        section = page.locator(f"#dash-test-{guide.pk}")
        page.wait_for_function(f"() => document.querySelector('#chart-arms-{guide.pk}')?.dataset.drawn === 'yes'")
        arms = section.locator("tr.ab-arm")
        assert arms.count() == 2
        assert all(arms.nth(i).locator(".arm-interval").inner_text().endswith("%") for i in range(2))
        assert section.locator(".ab-winner").inner_text() == "Winner: B"
        screenshot(page, "journey-ab-branch-winner")


def test_before_the_stopping_rule_the_dashboard_says_how_many_more(browser, live_server, tenant, api):
    """The same subject test with too few customers: no winner yet, and how many more each arm needs."""
    from journeys.abtests import template_version_add
    from tests.journeys.helpers import make_journey

    journey = make_journey(tenant, steps=[("PT0S", "Your brew guide")])
    step = Step.objects.for_tenant(tenant).get(journey=journey)
    template = EmailTemplate.objects.for_tenant(tenant).get(pk=step.template_id)
    with clock.frozen(BUILT):
        template_version_add(tenant=tenant, journey_id=journey.pk, step_id=step.pk,
                             content={"subject": "Brew it like a barista"}, by="mara")
    template.refresh_from_db()
    with clock.frozen(NOON):
        for n in range(3):
            paid_order(api, external_id=f"o-{n}", customer={"external_id": f"c-{n}", "time_zone": "UTC"})
        process_events()
    while send_due(NOON):
        pass
    make_user("mara", tenant, Membership.Role.MARKETER)
    with clock.frozen(READ):
        page = sign_in(browser, live_server, "mara", PASSWORD)
        page.goto(f"{live_server.url}/app/acme/dashboard/journeys/")
        section = page.locator(f"#dash-test-{step.pk}")
        assert section.locator(".ab-winner").count() == 0
        drawn = [template.version_drawn(step.pk, c.pk) for c in Customer.objects.for_tenant(tenant)]
        smallest = min(drawn.count("A"), drawn.count("B"))
        # No test settings saved: the default rule, significance after at least 100 customers an arm.
        assert (f"Not yet: 197 more customers needed (100 in each arm, the smallest has {smallest})."
                in section.inner_text())
