"""An order that carries a code — explicit field, note attribute, discount code, landing-site ref —
is linked to its referral once paid; replays and other stores change nothing."""

import datetime as dt
import json

import pytest

from lifecycle import clock
from lifecycle.models import Event
from lifecycle.tenants import store_connect
from referrals.models import Referral, ReferralCode
from referrals.services import referral_attribute, referral_code_add_vanity
from tests.journeys.helpers import process_events
from tests.lifecycle.webhook_support import (
    SHOPIFY_SECRET,
    WOO_SECRET,
    WOO_SITE,
    encode,
    load,
    php_json,
    shopify_post,
    woo_post,
)

from .helpers import T0, friend, make_advocate, make_program, post_order, referral_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def code(api, tenant):
    make_program(tenant)
    with clock.frozen(T0):
        return make_advocate(api, tenant)


def carriers(code: str) -> dict[str, dict]:
    return {
        "api_field": {"referral_code": code},
        "discount_code": {"discount_codes": ["SPRING10", code.lower()]},
        "landing_site": {"landing_site": f"/products/beans?utm_source=whatsapp&ref={code.lower()}"},
    }


@pytest.mark.parametrize("carrier", ["api_field", "discount_code", "landing_site"])
def test_api_order_is_attributed_by_each_carrier(api, tenant, code, carrier):
    with clock.frozen(T0):
        post_order(api, external_id="F-1", customer=friend(), **carriers(code.code)[carrier])
        process_events()
    referral = referral_for(tenant, "F-1")
    assert (referral.carrier, referral.state, referral.code_id, referral.advocate.external_id,
            referral.friend.external_id) == (carrier, "converted", code.pk, "adv-1", "fr-1")
    assert str(referral.order_total) == "59.9000" and referral.currency == "EUR"


def shopify_order(code: str, *, how: str) -> dict:
    payload = load("shopify/order_paid.json")
    payload.update({"id": 7001, "note_attributes": [], "landing_site_ref": None, "discount_codes": [],
                    "landing_site": "/products/house-beans", "customer": {**payload["customer"], "id": 9001,
                                                                          "email": "bea@example.org"}})
    if how == "note_attribute":
        payload["note_attributes"] = [{"name": "referral_code", "value": code}]
    elif how == "discount_code":
        payload["discount_codes"] = [{"code": code, "amount": "5.00", "type": "percentage"}]
    else:
        payload["landing_site"] = f"/?ref={code}&utm_medium=social"
    return payload


@pytest.mark.parametrize("how", ["note_attribute", "discount_code", "landing_site"])
def test_shopify_webhook_order_is_attributed(tenant, code, how):
    store_connect(tenant=tenant, platform="shopify", address="acme-coffee.myshopify.com", secret=SHOPIFY_SECRET)
    with clock.frozen(T0):
        response = shopify_post(encode(shopify_order(code.code, how=how)), topic="orders/paid")
        assert response.status_code == 200, response.content
        process_events()
    referral = referral_for(tenant, "7001")
    assert (referral.carrier, referral.state, referral.advocate.external_id) == (how, "converted", "adv-1")


def woo_order(code: str, *, how: str) -> dict:
    payload = json.loads(load_raw("woocommerce/order_created.json"))
    payload.update({"id": 8001, "customer_id": 77, "coupon_lines": []})
    payload["billing"]["email"] = "zoe@example.org"
    if how == "note_attribute":
        payload["meta_data"].append({"id": 6001, "key": "referral_code", "value": code})
    elif how == "discount_code":
        payload["coupon_lines"] = [{"id": 1, "code": code.lower(), "discount": "5.00"}]
    else:
        for entry in payload["meta_data"]:
            if entry["key"] == "_wc_order_attribution_session_entry":
                entry["value"] = f"https://shop.example.com/?ref={code}"
    return payload


def load_raw(name: str) -> str:
    from tests.lifecycle.webhook_support import raw

    return raw(name).decode()


@pytest.mark.parametrize("how", ["note_attribute", "discount_code", "landing_site"])
def test_woocommerce_webhook_order_is_attributed(tenant, code, how):
    conn = store_connect(tenant=tenant, platform="woocommerce", address=WOO_SITE, secret=WOO_SECRET)
    with clock.frozen(T0):
        response = woo_post(conn.public_id, php_json(woo_order(code.code, how=how)))
        assert response.status_code == 200, response.content
        process_events()
    referral = referral_for(tenant, "8001")
    assert (referral.carrier, referral.state, referral.friend.external_id) == (how, "converted", "77")


def test_an_unknown_code_is_passed_over_for_a_known_one(api, tenant, code):
    with clock.frozen(T0):
        post_order(api, external_id="F-1", customer=friend(), referral_code="NOPE-0000", discount_codes=[code.code])
        process_events()
    assert referral_for(tenant, "F-1").carrier == "discount_code"


def test_orders_without_a_known_code_or_program_are_not_referrals(api, tenant, other_tenant, code):
    with clock.frozen(T0):
        post_order(api, external_id="F-1", customer=friend(), referral_code="NOPE-0000")
        post_order(api, external_id="F-2", customer=friend("fr-2", "c@example.org"), landing_site="/?ref=")
        process_events()
    assert not Referral.objects.for_tenant(tenant).exists()


def test_an_unpaid_order_is_attributed_when_it_is_paid(api, tenant, code):
    with clock.frozen(T0):
        post_order(api, external_id="F-1", customer=friend(), status="pending", referral_code=code.code)
        process_events()
        assert not Referral.objects.for_tenant(tenant).exists()
        post_order(api, external_id="F-1", customer=friend(), status="paid", referral_code=code.code)
        process_events()
    assert referral_for(tenant, "F-1").state == "converted"


def test_replays_give_one_referral_and_one_converted_event(api, tenant, code):
    with clock.frozen(T0):
        for _ in range(3):
            post_order(api, external_id="F-1", customer=friend(), referral_code=code.code)
        process_events()
        Event.objects.for_tenant(tenant).update(processed_at=None)
        process_events()
        order = referral_for(tenant, "F-1").order
        assert referral_attribute(tenant=tenant, order=order).order_id == order.pk
    assert Referral.objects.for_tenant(tenant).count() == 1
    assert Event.objects.for_tenant(tenant).filter(type="referral.converted").count() == 1


def test_a_friend_converts_once(api, tenant, code):
    with clock.frozen(T0):
        post_order(api, external_id="F-1", customer=friend(), referral_code=code.code)
        process_events()
    with clock.frozen(T0 + dt.timedelta(days=1)):
        post_order(api, external_id="F-2", customer=friend(), referral_code=code.code)
        process_events()
    second = referral_for(tenant, "F-2")
    assert (second.state, second.reason) == ("rejected", "friend is not a new customer")
    assert second.flags == [{"rule": "friend_not_new", "reason": "the friend had 1 paid order(s) before this one"}]


def test_codes_belong_to_their_store(api, other_api, tenant, other_tenant, code):
    make_program(other_tenant, currency="USD")
    with clock.frozen(T0):
        # B's customer uses A's code at B: B has no such code, nothing is attributed anywhere.
        post_order(other_api, external_id="B-1", customer=friend(), currency="USD", referral_code=code.code)
        process_events()
    assert not Referral.all_tenants.exists()
    # The same vanity code may exist at both stores; each resolves to its own advocate.
    with clock.frozen(T0):
        b_advocate = make_advocate(other_api, other_tenant, external_id="b-adv")
    referral_code_add_vanity(tenant=tenant, customer=code.customer, code="COFFEE")
    referral_code_add_vanity(tenant=other_tenant, customer=b_advocate.customer, code="coffee")
    with clock.frozen(T0):
        post_order(other_api, external_id="B-2", customer=friend("b-fr"), currency="USD", referral_code="COFFEE")
        process_events()
    [referral] = Referral.all_tenants.all()
    assert (referral.tenant_id, referral.advocate.external_id) == (other_tenant.pk, "b-adv")
    assert ReferralCode.objects.for_tenant(tenant).filter(code="COFFEE").count() == 1
