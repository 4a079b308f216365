"""Signed Shopify and WooCommerce bodies with values the API would refuse (issue 14, items 3, 6, 7).

A platform resends the *same* payload when we answer non-2xx (Shopify 8 times over 4 hours;
WooCommerce disables the webhook after 5 failures), so a value that can never become valid must
not cost the order: a time outside the window is dropped (as if the platform had left it out) and
a line with a quantity below 1 is skipped, each noted on the delivery, and the answer is 200. A
body no parser can read safely (too deep, a 5,000-digit number, a lone surrogate) is a 400 kept as
a failed delivery with its raw body, and nothing else is written. Never a 500.
"""

import datetime as dt

import pytest

from lifecycle import clock
from lifecycle.models import Order, OrderLine, WebhookDelivery
from lifecycle.tenants import store_connect
from tests.lifecycle.webhook_support import (
    NOTHING,
    SHOPIFY_SECRET,
    WOO_SECRET,
    WOO_SITE,
    counts,
    encode,
    load,
    php_json,
    shopify_post,
    woo_post,
)

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SHOPIFY_ORDER = "5893421097012345678"
WINDOW = "outside 1970-01-01 .. 2026-11-27"


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def shop(tenant):
    return store_connect(tenant=tenant, platform="shopify", address="acme-coffee.myshopify.com", secret=SHOPIFY_SECRET)


@pytest.fixture
def woo(tenant):
    return store_connect(tenant=tenant, platform="woocommerce", address=WOO_SITE, secret=WOO_SECRET)


def delivery(tenant) -> WebhookDelivery:
    return WebhookDelivery.objects.for_tenant(tenant).get()


def assert_failed_and_nothing_else(tenant, response, body: bytes, detail_start: str):
    assert response.status_code == 400
    assert response.json()["code"] == "webhooks.invalid_payload"
    kept = delivery(tenant)
    assert kept.status == WebhookDelivery.Status.FAILED
    assert kept.detail.startswith(detail_start), kept.detail
    assert bytes(kept.body) == body  # kept raw, for a replay
    assert counts(tenant) == NOTHING | {"deliveries": 1}


# --- Shopify: times out of range are dropped with a note, the order kept -------------------------


@pytest.mark.parametrize("bad", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"])
def test_shopify_processed_at_out_of_range_falls_back_to_created_at_and_is_noted(shop, tenant, bad):
    payload = load("shopify/order_paid.json")
    payload["processed_at"] = bad

    response = shopify_post(encode(payload), topic="orders/paid")

    assert response.status_code == 200 and response.json()["status"] == "processed"
    order = Order.objects.for_tenant(tenant).get(external_id=SHOPIFY_ORDER)
    assert order.placed_at == dt.datetime(2026, 11, 20, 9, 15, 2, tzinfo=UTC)  # created_at
    assert delivery(tenant).detail == (f"order {SHOPIFY_ORDER} created; processed_at {bad!r} ignored: {WINDOW}")


def test_shopify_times_all_out_of_range_still_record_the_order(shop, tenant):
    payload = load("shopify/order_paid.json")
    payload["processed_at"] = payload["created_at"] = "9999-12-31T23:59:59Z"
    # An updated_at of 9999 kept would make every later update look stale: dropped too.
    payload["updated_at"] = "9999-12-31T23:59:59Z"
    payload["customer"]["email_marketing_consent"]["consent_updated_at"] = "0001-01-01T00:00:00Z"

    response = shopify_post(encode(payload), topic="orders/paid")

    assert response.json()["status"] == "processed"
    order = Order.objects.for_tenant(tenant).get(external_id=SHOPIFY_ORDER)
    assert (order.placed_at, order.paid_at, order.source_updated_at) == (NOW, NOW, None)
    assert order.customer.marketing_consent is True and order.customer.consent_updated_at == NOW
    detail = delivery(tenant).detail
    for field in ("processed_at", "created_at", "updated_at", "customer.email_marketing_consent.consent_updated_at"):
        assert f"{field} " in detail and WINDOW in detail, (field, detail)
    assert OrderLine.objects.for_tenant(tenant).count() == 2

    later = load("shopify/order_paid.json")
    later["total_price"] = "70.00"
    assert shopify_post(encode(later), topic="orders/updated", event_id="evt-2").json()["status"] == "processed"
    assert str(Order.objects.for_tenant(tenant).get(external_id=SHOPIFY_ORDER).total) == "70.0000"


def test_shopify_cancelled_at_out_of_range_still_cancels_as_of_the_update(shop, tenant):
    payload = load("shopify/order_paid.json")
    payload["cancelled_at"], payload["cancel_reason"] = "9999-12-31T23:59:59Z", "customer"

    assert shopify_post(encode(payload), topic="orders/cancelled").json()["status"] == "processed"
    order = Order.objects.for_tenant(tenant).get(external_id=SHOPIFY_ORDER)
    assert order.cancelled_at == dt.datetime(2026, 11, 20, 9, 15, 9, tzinfo=UTC)  # updated_at
    assert order.status == "cancelled"
    assert "cancelled_at '9999-12-31T23:59:59Z' ignored" in delivery(tenant).detail


# --- Shopify: lines that cannot be lines are skipped, never silently --------------------------------


@pytest.mark.parametrize("count", [-5, 0])
def test_shopify_line_with_quantity_below_one_is_skipped_and_noted(shop, tenant, count):
    payload = load("shopify/order_paid.json")
    payload["line_items"][1]["quantity"] = count

    response = shopify_post(encode(payload), topic="orders/paid")

    assert response.status_code == 200 and response.json()["status"] == "processed"
    order = Order.objects.for_tenant(tenant).get(external_id=SHOPIFY_ORDER)
    assert list(OrderLine.objects.for_tenant(tenant).filter(order=order).values_list("external_id", "quantity")) == [
        ("14012345678901", 2)]
    assert delivery(tenant).detail == (f"order {SHOPIFY_ORDER} created; "
                                       f"line_items.1 (id 14012345678902) skipped: quantity {count}")


def test_shopify_duplicate_line_ids_are_a_failed_delivery(shop, tenant):
    payload = load("shopify/order_paid.json")
    payload["line_items"][1]["id"] = payload["line_items"][0]["id"]
    body = encode(payload)

    assert_failed_and_nothing_else(tenant, shopify_post(body, topic="orders/paid"), body,
                                   "invalid payload: lines has two lines with external_id '14012345678901'")


# --- Shopify: bodies no parser may read are refused with a 400, never a 500 ---------------------------


def test_shopify_5000_digit_integer_is_a_400_kept_as_failed(shop, tenant):
    body = encode(load("shopify/order_paid.json")).replace(b'"quantity": 2', b'"quantity": ' + b"7" * 5000)

    response = shopify_post(body, topic="orders/paid")

    assert_failed_and_nothing_else(tenant, response, body, "the body has a number of 5000 characters; numbers may "
                                   "have at most 40")


def test_shopify_100000_nested_brackets_are_a_400_kept_as_failed(shop, tenant):
    body = b"[" * 100_000

    assert_failed_and_nothing_else(tenant, shopify_post(body, topic="orders/paid"), body,
                                   "the body's JSON is nested more than 32 levels deep")


def test_shopify_lone_surrogate_is_a_400_kept_as_failed(shop, tenant):
    payload = load("shopify/order_paid.json")
    payload["note"] = "gift \ud800"
    body = encode(payload)
    assert b'"note": "gift \\ud800"' in body

    assert_failed_and_nothing_else(tenant, shopify_post(body, topic="orders/paid"), body,
                                   "note has a lone UTF-16 surrogate")


# --- WooCommerce: the same rules ----------------------------------------------------------------------


def test_woocommerce_date_created_out_of_range_is_noted_and_the_order_kept(woo, tenant):
    payload = load("woocommerce/order_created.json")
    payload["date_created_gmt"] = "9999-12-31T23:59:59"
    payload["date_paid_gmt"] = "0001-01-01T00:00:00"

    response = woo_post(woo.public_id, php_json(payload))

    assert response.status_code == 200 and response.json()["status"] == "processed"
    order = Order.objects.for_tenant(tenant).get(external_id="727")
    assert (order.placed_at, order.paid_at) == (NOW, NOW)
    detail = delivery(tenant).detail
    assert detail == ("order 727 created; date_created_gmt '9999-12-31T23:59:59' ignored: " + WINDOW
                      + "; date_paid_gmt '0001-01-01T00:00:00' ignored: " + WINDOW)


def test_woocommerce_line_with_negative_quantity_is_skipped_and_noted(woo, tenant):
    payload = load("woocommerce/order_created.json")
    payload["line_items"][1]["quantity"] = -5

    assert woo_post(woo.public_id, php_json(payload)).json()["status"] == "processed"
    assert list(OrderLine.objects.for_tenant(tenant).values_list("external_id", flat=True)) == ["315"]
    assert delivery(tenant).detail == "order 727 created; line_items.1 (id 316) skipped: quantity -5"


def test_woocommerce_5000_digit_integer_is_a_400_kept_as_failed(woo, tenant):
    body = php_json(load("woocommerce/order_created.json")).replace(b'"customer_id":', b'"customer_id":' + b"1" * 5000
                                                                      + b',"x":')

    assert_failed_and_nothing_else(tenant, woo_post(woo.public_id, body), body,
                                   "the body has a number of 50")


def test_woocommerce_100000_nested_brackets_are_a_400_kept_as_failed(woo, tenant):
    body = b'{"id": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    assert_failed_and_nothing_else(tenant, woo_post(woo.public_id, body), body,
                                   "the body's JSON is nested more than 32 levels deep")
