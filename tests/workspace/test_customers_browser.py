"""A support agent in a real browser: sign in, find the customer by email, open them, read the timeline."""

import pytest

from lifecycle.models import Customer
from tests.browser import screenshot, sign_in
from tests.factories import order_payload

from .conftest import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_find_a_customer_by_email_and_read_their_timeline(browser, live_server, api, tenant, marketer):
    for n, total in ((1, "59.90"), (2, "24.00")):
        assert api.post("/api/v1/orders", order_payload(
            external_id=f"W-{n}", number=f"#W{n}", total=total, placed_at=f"2026-11-2{n}T10:00:00Z",
            customer={"external_id": "grace-1", "email": "grace@example.com", "first_name": "Grace",
                      "last_name": "Hopper", "marketing_consent": True})).status_code == 201
    assert api.post("/api/v1/events", {"type": "support.contacted", "customer": {"external_id": "grace-1"},
                                       "data": {"channel": "phone"}}).status_code == 201
    api.post("/api/v1/orders", order_payload(external_id="X-1", customer={"external_id": "x", "email": "gra@other.example"}))
    grace = Customer.objects.for_tenant(tenant).get(external_id="grace-1")

    page = sign_in(browser, live_server, "mara", PASSWORD)
    page.goto(f"{live_server.url}/app/acme/")
    page.click("nav.sidebar >> text=Customers")
    page.fill("input[name=q]", "GRACE@")
    page.click("form.filters button.primary")
    page.wait_for_load_state("networkidle")
    rows = page.locator("#customer-list tbody tr")
    assert rows.count() == 1
    assert "Showing 1 of 1 match" in page.inner_text("#list-count")
    page.click("#customer-list >> text=grace@example.com")
    page.wait_for_load_state("networkidle")
    assert page.url == f"{live_server.url}/app/acme/customers/{grace.pk}/"

    assert page.inner_text("#customer-head h1").startswith("Grace Hopper")
    assert "Spent\n83.90 EUR" in page.inner_text("#lifetime-value")
    assert "1 support contact in the last 30 days." in page.inner_text("#health")
    titles = page.locator(".timeline .tl-title").all_inner_texts()
    assert titles[0].startswith("Contacted support")
    assert any(t.startswith("Order #W2: 24.00 EUR") for t in titles)
    assert any(t.startswith("Order #W1: 59.90 EUR") for t in titles)
    assert page.locator("#unsubscribe summary").is_visible()
    assert page.locator("#erase").count() == 0  # a marketer: no erase
    screenshot(page, "workspace-customer-page")

    page.click("#timeline >> text=Order #W1: 59.90 EUR")
    page.wait_for_load_state("networkidle")
    assert "House beans 1 kg" in page.inner_text("#order-lines")
    assert page.inner_text("#order-customer") == "grace@example.com"
