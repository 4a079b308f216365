"""The journey builder in a real browser, as a marketer meets it: install the review request from
the library, edit its email with the preview beside it, send a test, activate; and build a
three-step journey from nothing."""

import re

import pytest
from django.core import mail

from journeys.models import Delivery, Journey, Step
from lifecycle.models import Membership
from tests.browser import ARTIFACTS, PHONE, screenshot, sign_in

from .conftest import PASSWORD, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def editor_screenshot(page, name: str) -> None:
    """The editor and its preview as the screen shows them (a full-page capture leaves iframes blank)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#editor").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.fixture
def public_url(settings, live_server):
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server.url


def test_install_review_request_edit_with_live_preview_send_a_test_and_activate(browser, live_server, public_url,
                                                                                tenant, a_customer):
    make_user("mara", tenant, Membership.Role.MARKETER)
    page = sign_in(browser, live_server, "mara", PASSWORD)
    page.click("nav.sidebar >> text=Journeys")
    page.click("#open-library")
    screenshot(page, "journeys-library")
    page.click("#lib-review-request button:has-text('Install')")
    page.wait_for_selector("#preview-frame")
    journey = Journey.objects.for_tenant(tenant).get(library_key="review-request")
    assert journey.status == "draft"
    assert "Installed “Review request” as a draft" in page.inner_text(".messages")
    # The preview is rendered for the store's real customer, with their order.
    assert page.inner_text("#preview-to") == "ada@a-store.example.com"
    assert "Ada" in page.frame_locator("#preview-frame").locator("body").inner_text()

    page.fill("#id_subject", "{{ first_name }}, a minute for a review?")
    page.wait_for_function("document.getElementById('preview-subject').textContent === 'Ada, a minute for a review?'")
    assert "Preview updated for Ada" in page.inner_text("#preview-status")
    editor_screenshot(page, "journey-builder-preview-desktop-width")
    page.click("[data-width=phone]")
    editor_screenshot(page, "journey-builder-preview-phone-width")

    # A template mistake is shown inline, with its line, and the last good preview stays.
    page.fill("#id_body", "<p>Hi {{ first_name }}</p>\n<p>{% if order %}Thanks</p>")
    page.wait_for_selector("#preview-problems li")
    assert "line 2" in page.inner_text("#preview-problems")
    assert page.inner_text("#preview-subject") == "Ada, a minute for a review?"
    editor_screenshot(page, "journey-builder-template-error")
    page.fill("#id_body", "<p>Hi {{ first_name }}, how is {{ order.item_titles }} working out?</p>")
    page.wait_for_function("document.getElementById('preview-problems').children.length === 0")

    page.click("#send-test")
    page.wait_for_selector("#test-result.sent")
    assert page.inner_text("#test-result").startswith("Test sent to mara@example.com")
    assert [m.subject for m in mail.outbox] == ["[Test] Ada, a minute for a review?"]
    assert mail.outbox[0].to == ["mara@example.com"]
    assert Delivery.objects.for_tenant(tenant).count() == 0

    # Activate with the edits unsaved: the page offers to save them first.
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.click("#activate")
    page.wait_for_selector(".messages li.success")
    assert dialogs and dialogs[0].startswith("This step has unsaved changes")
    assert page.inner_text(".messages") == "Saved step 1."
    step = Step.objects.for_tenant(tenant).select_related("template").get(journey=journey)
    assert step.template.subject == "{{ first_name }}, a minute for a review?"
    journey.refresh_from_db()
    assert journey.status == "draft"
    page.click("#activate")
    page.wait_for_selector("#journey-status.active")
    journey.refresh_from_db()
    assert journey.status == "active"
    screenshot(page, "journey-builder-activated")


def test_build_a_three_step_journey_from_nothing(browser, live_server, public_url, tenant):
    make_user("mara", tenant, Membership.Role.MARKETER)
    page = sign_in(browser, live_server, "mara", PASSWORD)
    page.goto(f"{live_server.url}/app/acme/journeys/")
    page.fill("#new-journey input[name=name]", "After delivery")
    page.select_option("#new-journey select[name=trigger]", "order_delivered")
    page.click("#new-journey button.primary")
    page.wait_for_selector("#step-form")
    # No customers yet: the preview uses the sample customer.
    assert page.inner_text("#preview-to") == "ada@example.com"

    page.fill("#id_name", "Setup tips")
    page.fill("#id_subject", "Getting started with your order")
    page.click("#save-step")
    page.wait_for_selector(".messages li.success")
    for amount, name, subject in ((6, "Check-in", "How is it going?"), (7, "Review request", "Tell us honestly")):
        page.select_option("#add-step select[name=add-kind]", "email")
        page.fill("#add-step input[name=add-wait_amount]", str(amount))
        page.select_option("#add-step select[name=add-wait_unit]", "days")
        page.click("#add-step button")
        page.wait_for_selector("#step-form")
        page.fill("#id_name", name)
        page.fill("#id_subject", subject)
        page.click("#save-step")
        page.wait_for_selector(".messages li.success")
    timeline = [re.sub(r"\s+", " ", t).strip() for t in page.locator("#timeline li").all_text_contents()]
    assert timeline == ["Day 0 delivered", "Day 1 Setup tips", "Day 7 Check-in", "Day 14 Review request"]
    screenshot(page, "journey-builder-three-steps")

    page.click("#activate")
    page.wait_for_selector("#journey-status.active")
    journey = Journey.objects.for_tenant(tenant).get(name="After delivery")
    assert journey.status == "active"
    assert list(Step.objects.for_tenant(tenant).filter(journey=journey).order_by("position")
                .values_list("name", "template__subject")) == [
        ("Setup tips", "Getting started with your order"), ("Check-in", "How is it going?"),
        ("Review request", "Tell us honestly")]


def test_a_viewer_sees_the_builder_without_edit_controls_on_a_phone(browser, live_server, public_url, tenant):
    from journeys.io import library_install

    library_install(tenant=tenant, keys=["review-request"])
    make_user("victor", tenant, Membership.Role.VIEWER)
    page = sign_in(browser, live_server, "victor", PASSWORD, context=PHONE)
    page.goto(f"{live_server.url}/app/acme/journeys/")
    page.click("#journeys >> text=Review request")
    page.wait_for_selector("#preview-frame")
    assert page.locator("#step-form").count() == 0
    assert page.locator("#activate").count() == 0
    assert page.locator("#send-test").count() == 0
    assert "How are you finding" in page.inner_text("#step-readonly")
    assert "Hi Ada," in page.frame_locator("#preview-frame").locator("body").inner_text()
    screenshot(page, "journey-builder-viewer-phone")
