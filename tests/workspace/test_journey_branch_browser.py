"""Building a branch in the builder, in a real browser, without docs: a journey that branches on the
product bought and then on whether the customer clicked the first email; the Paths section shows
each split's arms side by side with the customers that reached each step, and each customer takes
exactly one path."""

import datetime as dt

import pytest

from journeys.models import Delivery, Journey, Step
from lifecycle import clock
from lifecycle.models import Membership
from tests.browser import screenshot, sign_in
from tests.journeys.helpers import process_events
from tests.journeys.test_engine import NOON, paid_order, send_due

from .conftest import PASSWORD, make_user
from .test_journey_builder_browser import public_url  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BEANS = {"product_external_id": "p-beans", "sku": "BEANS-1KG", "title": "House beans", "quantity": 1,
         "unit_price": "24.95"}
FILTERS = {"product_external_id": "p-filter", "sku": "FILTER-100", "title": "Filters", "quantity": 1,
           "unit_price": "15.00"}


def add_step(page, kind: str, days: int) -> None:
    page.select_option("#add-step select[name=add-kind]", kind)
    page.fill("#add-step input[name=add-wait_amount]", str(days))
    page.select_option("#add-step select[name=add-wait_unit]", "days")
    page.click("#add-step button")
    page.wait_for_selector("#step-form")


def save(page) -> None:
    page.click("#save-step")
    page.wait_for_selector(".messages li.success")


def open_step(page, position: int) -> None:
    page.click(f"#step-{position} td a")
    page.wait_for_selector("#step-form")


def build_branching_journey(page, live_server, name: str) -> None:
    """In the builder: 1 an email; 2 bought beans in this order? yes 3, no 5; 3 clicked step 1? yes 4,
    no 5; 4 an email that ends the journey; 5 an email."""
    page.goto(f"{live_server.url}/app/acme/journeys/")
    page.fill("#new-journey input[name=name]", name)
    page.select_option("#new-journey select[name=trigger]", "order_paid")
    page.click("#new-journey button.primary")
    page.wait_for_selector("#step-form")
    page.fill("#id_subject", "Thanks for your order")
    save(page)
    add_step(page, "condition", 0)   # 2: bought beans in this order?
    add_step(page, "condition", 1)   # 3: clicked the first email?
    for subject in ("Your brew guide", "Tips for your order"):  # 4, 5
        add_step(page, "email", 1)
        page.fill("#id_subject", subject)
        save(page)

    open_step(page, 2)
    page.select_option("#id_cond_field", "bought")
    page.select_option("#id_cond_what_kind", "sku")
    page.fill("#id_cond_what", "BEANS-1KG")
    page.select_option("#id_cond_when", "this_order")
    page.fill("#id_cond_value", "yes")
    page.select_option("#id_cond_then", "3")
    page.select_option("#id_cond_else", "5")
    save(page)
    open_step(page, 3)
    page.select_option("#id_cond_field", "clicked_step")
    page.select_option("#id_cond_step", "1")
    page.select_option("#id_cond_then", "4")
    page.select_option("#id_cond_else", "5")
    save(page)
    open_step(page, 4)
    page.select_option("#id_next", "end")
    save(page)


def test_build_a_journey_that_branches_on_the_product_and_on_a_click(browser, live_server, public_url, tenant,  # noqa: F811
                                                                      api):
    make_user("mara", tenant, Membership.Role.MARKETER)
    page = sign_in(browser, live_server, "mara", PASSWORD)
    build_branching_journey(page, live_server, "Beans or not")

    # Side by side: step 2's arms, and inside its Yes arm step 3's.
    assert page.locator("#arms-2 > .arm").count() == 2
    assert [t.strip() for t in page.locator("#arms-2 > .arm > .arm-label").all_text_contents()] == ["Yes", "No"]
    assert page.locator("#arms-2 > .arm").nth(0).locator("#path-step-3").count() == 1
    assert page.locator("#arms-3 > .arm").nth(0).locator("#path-step-4").count() == 1
    assert page.locator("#arms-3 > .arm").nth(0).locator(".arm-end").inner_text() == "End"
    assert page.locator("#arms-2 > .arm").nth(1).locator(".path-step").count() == 0  # No: straight to step 5
    assert page.locator("#paths > #path-step-5").count() == 1  # where the arms meet again
    page.click("#activate")
    page.wait_for_selector("#journey-status.active")
    journey = Journey.objects.for_tenant(tenant).get(name="Beans or not")
    steps = {s.position: s for s in Step.objects.for_tenant(tenant).filter(journey=journey)}
    assert steps[2].config == {"field": "bought", "op": "==", "value": True, "sku": "BEANS-1KG",
                               "when": "this_order", "then": 3, "else": 5}
    assert steps[3].config == {"field": "clicked_step", "op": "==", "value": True, "step": 1, "then": 4, "else": 5}
    assert (steps[4].ends, steps[5].ends, steps[5].next_position) == (True, False, None)

    with clock.frozen(NOON):
        for name, lines in (("clicker", [BEANS]), ("no-click", [BEANS]), ("filters", [FILTERS])):
            paid_order(api, external_id=f"o-{name}", customer={"external_id": name, "time_zone": "UTC"},
                       lines=lines)
        process_events()
    while send_due(NOON):
        pass
    Delivery.objects.for_tenant(tenant).filter(customer__external_id="clicker", step__position=1).update(
        clicked_at=NOON + dt.timedelta(minutes=5))
    for day in (1, 2, 3):
        while send_due(NOON + dt.timedelta(days=day)):
            pass
    taken = {}
    for d in Delivery.objects.for_tenant(tenant).filter(journey=journey).select_related("customer", "step"):
        taken.setdefault(d.customer.external_id, []).append(d.step.position)
    assert {k: sorted(v) for k, v in taken.items()} == {
        "clicker": [1, 2, 3, 4], "no-click": [1, 2, 3, 5], "filters": [1, 2, 5]}

    page.reload()
    reached = {p: page.inner_text(f"#path-step-{p} .reached") for p in range(1, 6)}
    assert reached == {1: "3 reached", 2: "3 reached", 3: "2 reached", 4: "1 reached", 5: "2 reached"}
    screenshot(page, "journey-builder-branch-columns")
    page.goto(f"{live_server.url}/app/acme/customers/")
    assert Delivery.objects.for_tenant(tenant).get(customer__external_id="filters", step__position=2).reason == (
        "bought SKU BEANS-1KG in this order: no → step 5")
