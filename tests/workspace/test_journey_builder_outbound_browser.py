"""In a real browser: a marketer adds a webhook step, a discount code from the store's pool and a check-in signed
by a colleague to a new journey, seeing only the fields each kind needs, then activates it."""

import pytest

from journeys.models import Journey, Step
from journeys.webhooks import webhook_secret_rotate
from lifecycle.models import Membership
from loyalty.models import Reward
from tests.browser import screenshot, sign_in
from tests.loyalty.helpers import program, reward

from .conftest import PASSWORD, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def public_url(settings, live_server):
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server.url


def add_step(page, kind: str, days: int) -> None:
    page.select_option("#add-step select[name=add-kind]", kind)
    page.fill("#add-step input[name=add-wait_amount]", str(days))
    page.select_option("#add-step select[name=add-wait_unit]", "days")
    page.click("#add-step button")
    page.wait_for_selector("#step-form")


def visible(page, name: str) -> bool:
    return page.locator(f"#step-form [name={name}]").is_visible()


def test_build_a_journey_with_a_webhook_a_discount_code_and_a_signed_check_in(browser, live_server, public_url,
                                                                              tenant):
    make_user("mara", tenant, Membership.Role.MARKETER, first_name="Mara", last_name="Lind")
    reward(tenant, program(tenant), name="Thank-you 10%", code_source=Reward.CodeSource.POOL)
    webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    page = sign_in(browser, live_server, "mara", PASSWORD)
    page.goto(f"{live_server.url}/app/acme/journeys/")
    page.fill("#new-journey input[name=name]", "App thank-you")
    page.select_option("#new-journey select[name=trigger]", "order_paid")
    page.click("#new-journey button.primary")
    page.wait_for_selector("#step-form")
    page.fill("#id_subject", "Thanks for your order")
    page.click("#save-step")
    page.wait_for_selector(".messages li.success")

    add_step(page, "webhook", 1)
    page.select_option("#id_kind", "webhook")
    assert visible(page, "hook_url") and visible(page, "hook_data")
    assert not visible(page, "code_pool") and not visible(page, "signer") and not visible(page, "points")
    page.fill("#id_hook_url", "app.acme.test/push")  # no scheme: refused beside the field
    page.click("#save-step")
    page.wait_for_selector("label.invalid")
    assert "must be a full http(s) address" in page.inner_text("label.invalid")
    page.fill("#id_hook_url", "https://app.acme.test/push")
    page.fill("#id_hook_data", '{"push_template": "thanks"}')
    page.click("#save-step")
    page.wait_for_selector(".messages li.success")

    add_step(page, "discount_code", 1)
    page.select_option("#id_kind", "discount_code")
    assert visible(page, "code_source") and visible(page, "code_pool") and not visible(page, "hook_data")
    page.select_option("#id_code_pool", "Thank-you 10%")
    page.click("#save-step")
    page.wait_for_selector(".messages li.success")

    add_step(page, "check_in", 2)
    page.select_option("#id_kind", "check_in")
    assert visible(page, "signer") and not visible(page, "hook_url")
    page.select_option("#id_signer", "mara@example.com")
    page.click("#save-step")
    page.wait_for_selector(".messages li.success")
    page.fill("#id_subject", "How is it going, {{ first_name }}?")
    page.fill("#id_body", "<p>Your code: {{ discount_code }}. — {{ signer.name }}</p>")
    page.click("#save-step")
    page.wait_for_selector(".messages li.success")
    screenshot(page, "journey-builder-webhook-discount-check-in")

    page.click("#activate")
    page.wait_for_selector("#journey-status.active")
    journey = Journey.objects.for_tenant(tenant).get(name="App thank-you")
    assert list(Step.objects.for_tenant(tenant).filter(journey=journey).order_by("position")
                .values_list("kind", "config")) == [
        ("email", {}),
        ("webhook", {"url": "https://app.acme.test/push", "data": {"push_template": "thanks"}}),
        ("discount_code", {"source": "pool", "pool": "Thank-you 10%"}),
        ("check_in", {"signer": "mara@example.com"})]
