"""The store's queues and programmes in a real browser: a marketer finds the referral review queue from
the nav, rejects one held referral with its button, and the loyalty settings page shows its tiers."""

from decimal import Decimal

import pytest

from lifecycle.models import Membership, Order
from referrals.models import Referral
from tests.browser import screenshot, sign_in
from tests.factories import OrderFactory

from .conftest import PASSWORD, make_user
from .program_objects import held_referral, programmes

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_marketer_rejects_a_held_referral_and_reads_the_loyalty_settings(browser, live_server, tenant, a_customer):
    rows = programmes(tenant, a_customer, Order.objects.for_tenant(tenant).get(external_id="A-1"))
    other = OrderFactory(tenant=tenant, external_id="F-2", number="#F2", total=Decimal("40.00"))
    kept = held_referral(tenant, advocate=a_customer, friend=other.customer, order=other)
    make_user("mara", tenant, Membership.Role.MARKETER)

    page = sign_in(browser, live_server, "mara", PASSWORD)
    page.goto(f"{live_server.url}/app/acme/")
    page.click("nav.sidebar >> text=Referral review")
    assert page.url == f"{live_server.url}/app/acme/referrals/review/"
    assert "same email address after removing +tags and Gmail dots" in page.inner_text("#referral-queue")
    screenshot(page, "workspace-referral-queue")
    page.fill(f"#referral-{rows['referral'].pk} input[name=reason]", "the advocate's second account")
    page.click(f"#referral-{rows['referral'].pk} button[value=reject]")
    page.wait_for_load_state("networkidle")
    assert "rejected, nobody is rewarded for it" in page.inner_text(".messages")
    states = dict(Referral.objects.for_tenant(tenant).values_list("pk", "state"))
    assert states == {rows["referral"].pk: "rejected", kept.pk: "review"}

    page.click("nav.sidebar >> text=Settings")
    page.click("nav.tabs >> text=Loyalty")
    assert page.url == f"{live_server.url}/app/acme/settings/loyalty/"
    assert "Platinum-A" in page.inner_text("#tier-list")
    screenshot(page, "workspace-loyalty-settings")

    page.click("nav.tabs >> text=Referral programme")
    assert page.is_visible("#referral-program")
    screenshot(page, "workspace-referral-programme")
    page.click("nav.sidebar >> text=Reviews")
    assert "Lovely beans" in page.inner_text(f"#review-{rows['review'].pk}")
    screenshot(page, "workspace-review-queue")
