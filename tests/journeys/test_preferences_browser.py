"""The preference centre in a real browser (Debian's chromium through Playwright) on a phone-sized screen:
the customer opens the footer link of an email really sent (anymail's test backend, the outbox the other
browser tests read), changes what they get, and the next emails follow it."""

import datetime as dt
import re

import pytest
from django.core import mail

from journeys.models import Delivery
from lifecycle import clock
from lifecycle.models import Customer, Event
from lifecycle.preferences import Category
from tests.browser import PHONE, screenshot
from tests.factories import order_payload

from .helpers import at, make_journey, process_events
from .test_engine import send_due

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
NOON = at("2026-11-23T09:00:00+00:00")  # 10:00 in Berlin: outside quiet hours


@pytest.fixture
def first_email(api, tenant, live_server, settings):
    """Tips on days 1 and 4, an offer on day 2; the day-1 tip is sent: its footer link, pointing at the live server."""
    settings.PUBLIC_BASE_URL = live_server.url
    make_journey(tenant, name="Tips", category=Category.TIPS, steps=[("P1D", "Tip one"), ("P3D", "Tip two")])
    make_journey(tenant, name="Restock", category=Category.OFFERS, steps=[("P2D", "Offer one")])
    with clock.frozen(NOON):
        assert api.post("/api/v1/orders", order_payload(customer={
            "external_id": "c1", "email": "ada@example.com", "first_name": "Ada", "marketing_consent": True,
            "locale": "en"})).status_code == 201
        process_events()
    assert send_due(NOON + dt.timedelta(days=1)) == ["sent"]
    [message] = mail.outbox
    [link] = re.findall(r'<a [^>]*href="([^"]+/preferences)"[^>]*>Choose which emails you get</a>',
                        message.alternatives[0][0])
    assert link.startswith(live_server.url + "/u/")
    return link


def phone_page(browser, link: str):
    page = browser.new_context(**PHONE).new_page()
    page.goto(link)
    assert page.inner_text("h1") == "Your emails from Acme Coffee"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling
    return page


def test_turning_offers_off_on_a_phone_skips_the_next_offer_and_the_next_tip_still_goes(browser, first_email,
                                                                                        tenant):
    page = phone_page(browser, first_email)
    assert all(page.is_checked(f"#category-{c}") for c in Category.values)
    # A thumb's worth: each choice is a full-width row at least 44 px high.
    box = page.locator("label[for=category-offers]").bounding_box()
    assert box["height"] >= 44 and box["width"] >= 300

    page.click("label[for=category-offers]")
    page.click("#save")
    page.wait_for_selector("#notice")
    assert page.inner_text("#notice") == "Saved. Your next email follows these choices."
    assert not page.is_checked("#category-offers") and page.is_checked("#category-tips")
    screenshot(page, "preferences-offers-off-phone")
    assert Customer.objects.for_tenant(tenant).get().email_preferences == {"offers": False}

    assert send_due(NOON + dt.timedelta(days=2)) == ["skipped"]
    offer = Delivery.objects.for_tenant(tenant).get(journey__name="Restock")
    assert (offer.state, offer.reason) == ("skipped", "preferences: offers turned off")
    assert send_due(NOON + dt.timedelta(days=4)) == ["sent"]
    assert [m.subject for m in mail.outbox] == ["Tip one", "Tip two"]


def test_unsubscribing_from_everything_then_subscribing_again_on_a_phone(browser, first_email, tenant):
    page = phone_page(browser, first_email)
    page.click("#unsubscribe-all")
    page.wait_for_selector("#subscribe")
    assert page.inner_text("#notice") == "You're unsubscribed: you get no marketing email from Acme Coffee."
    customer = Customer.objects.for_tenant(tenant).get()
    assert (customer.marketing_consent, customer.unsubscribed_at is not None) == (False, True)

    page.click("label[for=category-offers]")  # back, but without offers
    page.click("#subscribe")
    page.wait_for_selector("#unsubscribe-all")
    assert page.inner_text("#notice") == "Welcome back! You're subscribed again, with these choices."
    customer.refresh_from_db()
    assert (customer.marketing_consent, customer.unsubscribed_at, customer.consent_source,
            customer.email_preferences) == (True, None, "preferences", {"offers": False})
    assert Event.objects.for_tenant(tenant).get(type="customer.preferences_changed").data["subscribed"] is True

    assert send_due(NOON + dt.timedelta(days=2)) == ["skipped"]
    assert send_due(NOON + dt.timedelta(days=4)) == ["sent"]
    assert [m.subject for m in mail.outbox] == ["Tip one", "Tip two"]
