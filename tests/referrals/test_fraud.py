"""Every fraud rule records its reason; suspicious referrals wait for review, certain ones are rejected."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from lifecycle import clock
from lifecycle.links import make_token
from referrals import fraud
from referrals.models import Click, Referral, Reward

from .helpers import (
    T0,
    click,
    friend,
    make_advocate,
    make_program,
    post_order,
    referral_for,
    rewards,
    run_sweep,
)

pytestmark = pytest.mark.django_db
DAY = dt.timedelta(days=1)


@pytest.mark.parametrize(("email", "normal"), [
    ("Ada.Love+promo@GoogleMail.com", "adalove@gmail.com"),
    ("a.d.a@gmail.com", "ada@gmail.com"),
    ("Ada.Love+x+y@example.com", "ada.love@example.com"),  # dots matter outside Gmail
    ("no-at-sign", "no-at-sign"),
])
def test_emails_are_normalized(email, normal):
    assert fraud.normalize_email(email) == normal


@pytest.mark.parametrize(("agent", "bot"), [
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
    ("WhatsApp/2.23.20.0 A", True),
    ("curl/8.4.0", True),
    ("", True),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36", False),
])
def test_bots_are_recognized(agent, bot):
    assert fraud.is_bot(agent) is bot


def test_ip_and_device_are_keyed_hashes():
    assert fraud.ip_hash("203.0.113.9") == fraud.ip_hash("203.0.113.9") != fraud.ip_hash("203.0.113.10")
    assert "203.0.113.9" not in fraud.ip_hash("203.0.113.9") and len(fraud.ip_hash("x")) == 64


def setup(api, tenant, store=None, **program):
    make_program(tenant, store=store, **program)
    with clock.frozen(T0):
        return make_advocate(api, tenant, email="ada.love@gmail.com")


def test_own_code_under_a_plus_alias_is_flagged_not_rewarded(api, tenant, store):
    code = setup(api, tenant, store)
    with clock.frozen(T0):
        post_order(api, external_id="F-1", referral_code=code.code,
                   customer={"external_id": "alias", "email": "Ada.Love+deal@googlemail.com", "first_name": "A"})
        from tests.journeys.helpers import process_events

        process_events()
    referral = referral_for(tenant, "F-1")
    assert referral.state == "review"
    assert referral.flags == [{"rule": "self_referral_email",
                               "reason": "same email address after removing +tags and Gmail dots"}]
    assert referral.reason == "waiting for review: self_referral_email"
    assert referral.review_deadline == T0 + 72 * dt.timedelta(hours=1)

    run_sweep(T0 + 30 * DAY)  # past the deadline (auto: reject) and the release date
    referral.refresh_from_db()
    assert (referral.state, referral.decided_by, referral.reason) == (
        "rejected", "auto", "review deadline passed: rejected automatically")
    assert rewards(tenant) == [] and store.requests == []


def order_as(api, code, *, external_id="F-1", customer=None, **fields):
    from tests.journeys.helpers import process_events

    post_order(api, external_id=external_id, customer=customer or friend(), referral_code=code.code, **fields)
    process_events()


def test_the_advocate_ordering_with_their_own_code_is_rejected(api, tenant):
    code = setup(api, tenant)
    with clock.frozen(T0 + DAY):
        order_as(api, code, customer={"external_id": "adv-1", "email": "ada.love@gmail.com"})
    referral = referral_for(tenant, "F-1")
    assert (referral.state, referral.reason) == ("rejected", "self-referral: same customer")
    assert referral.flags == [{"rule": "self_referral_customer", "reason": "the friend is the advocate (same customer)"}]


def test_a_friend_who_ordered_before_is_not_new(api, tenant):
    code = setup(api, tenant)
    with clock.frozen(T0):
        post_order(api, external_id="F-0", customer=friend())
    with clock.frozen(T0 + DAY):
        order_as(api, code)
    referral = referral_for(tenant, "F-1")
    assert (referral.state, referral.flags[0]["rule"]) == ("rejected", "friend_not_new")


def test_returning_friends_count_when_the_program_allows_them(api, tenant):
    code = setup(api, tenant, new_customers_only=False)
    with clock.frozen(T0):
        post_order(api, external_id="F-0", customer=friend())
    with clock.frozen(T0 + DAY):
        order_as(api, code)
    assert referral_for(tenant, "F-1").state == "converted"


def test_an_order_below_the_minimum_does_not_qualify(api, tenant):
    code = setup(api, tenant, min_order_total="100")
    with clock.frozen(T0):
        order_as(api, code)
    referral = referral_for(tenant, "F-1")
    assert (referral.state, referral.reason) == ("rejected", "order total 59.90 is below the minimum 100.00")


def test_an_order_in_another_currency_does_not_qualify(api, tenant):
    code = setup(api, tenant)
    with clock.frozen(T0):
        order_as(api, code, currency="USD")
    assert referral_for(tenant, "F-1").reason == "order in USD, the program pays in EUR"


def advocate_page(code, **kwargs):
    token = make_token("referral", tenant_id=code.tenant_id, customer_id=code.customer_id)
    return click(f"/r/{token}", **kwargs)


def test_a_friend_clicking_from_the_advocates_device_waits_for_review(api, tenant):
    code = setup(api, tenant)
    with clock.frozen(T0):
        assert advocate_page(code, ip="203.0.113.5").status_code == 200
        click(f"/r/acme/{code.code}", ip="203.0.113.5")
        order_as(api, code)
    assert list(Click.objects.for_tenant(tenant).order_by("pk").values_list("by_advocate", flat=True)) == [True, False]
    assert referral_for(tenant, "F-1").flags == [
        {"rule": "self_referral_device", "reason": "the friend's click came from the advocate's own device"}]


def test_a_friend_clicking_from_the_advocates_ip_on_another_device_waits_for_review(api, tenant):
    code = setup(api, tenant)
    with clock.frozen(T0):
        advocate_page(code, ip="203.0.113.5")
        click(f"/r/acme/{code.code}", ip="203.0.113.5", user_agent="Mozilla/5.0 (Windows NT 10.0) Firefox/120.0")
        order_as(api, code)
    assert [f["rule"] for f in referral_for(tenant, "F-1").flags] == ["self_referral_ip"]


def test_a_friend_on_another_network_is_clean(api, tenant):
    code = setup(api, tenant)
    with clock.frozen(T0):
        advocate_page(code, ip="203.0.113.5")
        click(f"/r/acme/{code.code}", ip="198.51.100.99")
        order_as(api, code)
    assert referral_for(tenant, "F-1").flags == []


def test_click_velocity_per_ip_is_flagged(api, tenant):
    code = setup(api, tenant, max_clicks_per_ip_per_day=3)
    with clock.frozen(T0):
        for _ in range(4):
            click(f"/r/acme/{code.code}")
        order_as(api, code)
    assert referral_for(tenant, "F-1").flags == [
        {"rule": "velocity_clicks_ip", "reason": "4 clicks on this code from one IP address within a day"}]


def test_conversion_velocity_per_advocate_is_flagged(api, tenant):
    code = setup(api, tenant, max_conversions_per_advocate_per_day=2)
    with clock.frozen(T0):
        for n in (1, 2, 3):
            order_as(api, code, external_id=f"F-{n}", customer=friend(f"fr-{n}", f"f{n}@example.org"))
    states = [(r.state, [f["rule"] for f in r.flags]) for r in Referral.objects.for_tenant(tenant).order_by("pk")]
    assert states == [("converted", []), ("converted", []), ("review", ["velocity_conversions_advocate"])]


def operator_client():
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def test_admin_approves_from_the_review_queue_and_the_reward_follows_the_delay(api, tenant, store):
    code = setup(api, tenant, store, friend_reward_amount="0")
    with clock.frozen(T0):
        order_as(api, code, customer={"external_id": "alias", "email": "adalove+1@gmail.com"})
    referral = referral_for(tenant, "F-1")
    client = operator_client()
    assert client.get("/admin/referrals/referral/?state__exact=review").status_code == 200
    assert client.get(f"/admin/referrals/referral/{referral.pk}/change/").status_code == 200
    for page in ("program/add/", "program/", "referralcode/", "reward/", "click/", "invite/"):
        assert client.get(f"/admin/referrals/{page}").status_code == 200, page
    with clock.frozen(T0 + DAY):
        response = client.post("/admin/referrals/referral/", {"action": "approve_selected",
                                                              "_selected_action": [referral.pk]})
    assert response.status_code == 302
    referral.refresh_from_db()
    assert (referral.state, referral.decided_by, referral.decided_at) == ("converted", "ops", T0 + DAY)
    assert referral.flags[0]["rule"] == "self_referral_email"  # the evidence stays
    assert run_sweep(T0 + 30 * DAY) == 1
    assert [(r.side, r.state) for r in Reward.objects.for_tenant(tenant)] == [("advocate", "issued")]


def test_admin_rejects_and_a_decided_referral_is_not_decided_again(api, tenant):
    code = setup(api, tenant)
    with clock.frozen(T0):
        order_as(api, code, customer={"external_id": "alias", "email": "adalove+1@gmail.com"})
    referral = referral_for(tenant, "F-1")
    client = operator_client()
    client.post("/admin/referrals/referral/", {"action": "reject_selected", "_selected_action": [referral.pk]})
    client.post("/admin/referrals/referral/", {"action": "approve_selected", "_selected_action": [referral.pk]})
    referral.refresh_from_db()
    assert (referral.state, referral.reason, referral.decided_by) == ("rejected", "rejected on review", "ops")


def test_auto_decision_may_approve(api, tenant):
    code = setup(api, tenant, review_auto_decision="approve", review_deadline_hours=24)
    with clock.frozen(T0):
        order_as(api, code, customer={"external_id": "alias", "email": "adalove+1@gmail.com"})
    run_sweep(T0 + DAY - dt.timedelta(seconds=1))
    assert referral_for(tenant, "F-1").state == "review"
    run_sweep(T0 + DAY)
    referral = referral_for(tenant, "F-1")
    assert (referral.state, referral.decided_by) == ("converted", "auto")
