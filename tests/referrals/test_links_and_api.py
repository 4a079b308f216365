"""/r/ links (click, bots, HEAD, rate limit, 404, the advocate's page) and the referral API."""

import datetime as dt

import pytest
from django.urls import reverse

from lifecycle import clock
from lifecycle.links import make_token
from referrals.models import Click, Referral, Reward
from referrals.services import CLICKS_PER_IP_PER_HOUR, referral_code_add_vanity
from tests.journeys.helpers import process_events

from .helpers import T0, click, friend, make_advocate, make_program, post_order, run_sweep

pytestmark = pytest.mark.django_db


@pytest.fixture
def code(api, tenant):
    make_program(tenant, store_url="https://acme.example.com/shop?lang=de")
    with clock.frozen(T0):
        return make_advocate(api, tenant)


def test_a_click_is_recorded_and_redirects_to_the_store_with_the_code(tenant, code):
    with clock.frozen(T0):
        response = click(f"/r/acme/{code.code.lower()}", ip="203.0.113.9")
    assert response.status_code == 302
    assert response["Location"] == f"https://acme.example.com/shop?lang=de&ref={code.code}"
    assert response["Cache-Control"] == "no-store"
    [row] = Click.objects.for_tenant(tenant).values()
    assert (row["code_id"], row["at"], row["by_advocate"]) == (code.pk, T0, False)
    assert "203.0.113.9" not in str(row) and len(row["ip_hash"]) == len(row["device_hash"]) == 64
    assert not Referral.objects.for_tenant(tenant).exists() and not Reward.objects.for_tenant(tenant).exists()


def test_the_short_form_works_while_one_store_has_the_code(tenant, other_tenant, code):
    assert click(f"/r/{code.code}")["Location"].endswith(f"ref={code.code}")
    referral_code_add_vanity(tenant=tenant, customer=code.customer, code="BEANS")
    assert click("/r/beans").status_code == 302
    from lifecycle.models import Customer

    make_program(other_tenant)
    b = Customer.objects.for_tenant(other_tenant).create(tenant=other_tenant, email="b@example.com")
    referral_code_add_vanity(tenant=other_tenant, customer=b, code="BEANS")
    assert click("/r/beans").status_code == 404  # ambiguous: /r/<store>/<code> decides
    assert click("/r/globex/beans").status_code == 302


@pytest.mark.parametrize("agent", ["Mozilla/5.0 (compatible; bingbot/2.0)", "Slackbot-LinkExpanding 1.0", ""])
def test_bots_are_redirected_but_not_recorded(tenant, code, agent):
    assert click(f"/r/acme/{code.code}", user_agent=agent).status_code == 302
    assert not Click.objects.for_tenant(tenant).exists()


def test_head_requests_are_not_recorded(tenant, code):
    assert click(f"/r/acme/{code.code}", method="head").status_code == 302
    assert not Click.objects.for_tenant(tenant).exists()


def test_post_is_not_allowed(code):
    assert click(f"/r/acme/{code.code}", method="post").status_code == 405


def test_clicks_are_rate_limited_per_ip(tenant, code):
    with clock.frozen(T0):
        for _ in range(CLICKS_PER_IP_PER_HOUR + 5):
            assert click(f"/r/acme/{code.code}", ip="203.0.113.1").status_code == 302
        click(f"/r/acme/{code.code}", ip="203.0.113.2")
    assert Click.objects.for_tenant(tenant).count() == CLICKS_PER_IP_PER_HOUR + 1
    with clock.frozen(T0 + dt.timedelta(hours=1, seconds=1)):
        click(f"/r/acme/{code.code}", ip="203.0.113.1")
    assert Click.objects.for_tenant(tenant).count() == CLICKS_PER_IP_PER_HOUR + 2


def test_unknown_or_disabled_codes_get_a_friendly_404(tenant, code):
    for path in ("/r/acme/NOPE-1234", "/r/nostore/" + code.code, "/r/NOPE-1234"):
        response = click(path)
        assert response.status_code == 404
        assert b"This referral link doesn" in response.content
    code.disabled_at = T0
    code.save()
    assert click(f"/r/acme/{code.code}").status_code == 404
    assert not Click.objects.for_tenant(tenant).exists()


def test_the_signed_link_shows_the_advocate_their_share_page(tenant, code):
    token = make_token("referral", tenant_id=tenant.pk, customer_id=code.customer_id)
    # feedback's thank-you page reverses the route named "referral" with a token: it lands here.
    path = reverse("referral", args=[token])
    assert path == f"/r/{token}"
    response = click(path)
    assert response.status_code == 200
    body = response.content.decode()
    assert f"http://127.0.0.1:8000/r/acme/{code.code}" in body and "https://wa.me/?text=" in body
    assert list(Click.objects.for_tenant(tenant).values_list("by_advocate", flat=True)) == [True]
    assert click(path[:-3] + "xyz").status_code == 404  # tampered


def test_check_a_code_for_checkout(api, tenant, code):
    response = api.get(f"/api/v1/referrals/{code.code.lower()}")
    assert response.status_code == 200
    assert response.json() == {
        "code": code.code, "valid": True, "advocate_first_name": "Ada",
        "friend_offer": {"kind": "percent", "value": "10", "currency": "EUR", "text": "10% off your first order",
                         "new_customers_only": True, "min_order_total": "0.00"}}
    assert not Click.objects.for_tenant(tenant).exists()
    missing = api.get("/api/v1/referrals/NOPE-1234")
    assert (missing.status_code, missing.json()["code"]) == (404, "referrals.code_not_found")


def test_an_inactive_program_makes_codes_invalid(api, tenant, code):
    from referrals.models import Program

    Program.objects.for_tenant(tenant).update(active=False)
    body = api.get(f"/api/v1/referrals/{code.code}").json()
    assert (body["valid"], body["friend_offer"]) == (False, None)


def test_a_customers_referral_link_stats_and_rewards(api, tenant, store):
    make_program(tenant, store=store)
    with clock.frozen(T0):
        body = api.get("/api/v1/customers/adv-1/referral")
        assert body.status_code == 404  # no such customer yet
        code = make_advocate(api, tenant)
        click(f"/r/acme/{code.code}")
        post_order(api, external_id="F-1", customer=friend(), referral_code=code.code)
        post_order(api, external_id="F-2", customer=friend("fr-2", "alias+1@example.org"), status="pending")
        process_events()
    run_sweep(T0 + dt.timedelta(days=30))
    body = api.get("/api/v1/customers/adv-1/referral").json()
    assert body["code"] == code.code
    assert body["url"] == f"http://127.0.0.1:8000/r/acme/{code.code}"
    assert body["page_url"].startswith("http://127.0.0.1:8000/r/")
    assert body["stats"] == {"clicks": 1, "referrals": 1, "in_review": 0, "converted": 0, "rewarded": 1,
                             "rejected": 0, "revenue": "59.90"}
    assert [(r["state"], r["carrier"], r["order_external_id"], r["release_at"]) for r in body["referrals"]] == [
        ("rewarded", "api_field", "F-1", "2026-12-02T09:00:00Z")]
    assert [(r["side"], r["kind"], r["amount"], r["state"]) for r in body["rewards"]] == [
        ("advocate", "discount_code", "10.00", "issued")]


def test_a_customer_gets_a_code_on_first_request(api, tenant):
    make_program(tenant)
    with clock.frozen(T0):
        post_order(api, external_id="O-1", customer={"external_id": "c-9", "email": "zoe@example.com",
                                                     "first_name": "Zoë"})
    first = api.get("/api/v1/customers/c-9/referral").json()
    assert first["code"].startswith("ZO-") and len(first["code"]) == 7
    assert api.get("/api/v1/customers/c-9/referral").json()["code"] == first["code"]


def test_referral_metrics(api, tenant, store):
    make_program(tenant, store=store)
    with clock.frozen(T0):
        code = make_advocate(api, tenant)
        for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
            click(f"/r/acme/{code.code}", ip=ip)
        post_order(api, external_id="F-1", customer=friend(), referral_code=code.code)
        post_order(api, external_id="N-1", customer=friend("walk-in", "w@example.org"))
        process_events()
    run_sweep(T0 + dt.timedelta(days=30))
    body = api.get("/api/v1/referrals/metrics", {"since": "2026-11-01"}).json()
    assert body == {"invites_sent": 0, "clicks": 3, "conversions": 1, "in_review": 0, "rejected": 0,
                    "revenue": "59.90", "referred_customers_revenue": "59.90", "reward_cost": "15.00",
                    "reward_points": 0, "currency": "EUR", "new_customers": 3, "referred_share": 33.3,
                    "viral_coefficient": None}
    assert api.get("/api/v1/referrals/metrics", {"since": "yesterday"}).json()["code"] == "referrals.bad_date"


def test_erasure_renames_and_disables_the_customers_codes(api, tenant, code):
    referral_code_add_vanity(tenant=tenant, customer=code.customer, code="ADA-LOVES-BEANS")
    assert api.delete("/api/v1/customers/adv-1").status_code in (200, 204)
    with clock.frozen(T0):
        process_events()
    codes = list(code.__class__.objects.for_tenant(tenant).filter(customer=code.customer))
    assert len(codes) == 2
    assert all(c.code.startswith("ERASED-") and c.disabled_at for c in codes)
    assert click(f"/r/acme/{code.code}").status_code == 404


def test_without_a_program_the_signed_link_leads_to_the_storefront(api, tenant):
    from lifecycle.models import Customer
    from lifecycle.tenants import store_connect

    with clock.frozen(T0):
        post_order(api, external_id="O-1", customer={"external_id": "c-1", "email": "c@example.com"})
    customer = Customer.objects.for_tenant(tenant).get(external_id="c-1")
    path = reverse("referral", args=[make_token("referral", tenant_id=tenant.pk, customer_id=customer.pk)])
    assert click(path).status_code == 404  # nothing to send them to
    store_connect(tenant=tenant, platform="woocommerce", address="https://shop.example.com", secret="s3cret-123")
    response = click(path)
    assert (response.status_code, response["Location"]) == (302, "https://shop.example.com")
    assert not Click.objects.for_tenant(tenant).exists()
