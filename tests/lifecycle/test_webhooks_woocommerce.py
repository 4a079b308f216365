"""POST /webhooks/woocommerce/<public_id> as WooCommerce sends it: PHP-escaped JSON, signed raw."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.test import Client

from lifecycle import clock
from lifecycle.models import Customer, Order, OrderLine, Refund, WebhookDelivery
from lifecycle.tenants import store_connect
from tests.lifecycle.webhook_support import (
    NOTHING,
    OTHER_WOO_SECRET,
    WOO_SECRET,
    WOO_SITE,
    counts,
    event_types,
    load,
    php_json,
    raw,
    sign,
    woo_post,
)

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def conn(tenant):
    # Connected without the trailing slash that X-WC-Webhook-Source (home_url('/')) carries.
    return store_connect(tenant=tenant, platform="woocommerce", address=WOO_SITE, secret=WOO_SECRET)


@pytest.fixture
def other_conn(other_tenant):
    return store_connect(tenant=other_tenant, platform="woocommerce", address="https://tea.example.org",
                         secret=OTHER_WOO_SECRET)


def order(tenant, external_id="727") -> Order:
    return Order.objects.for_tenant(tenant).get(external_id=external_id)


# --- set-up ping --------------------------------------------------------------------


def test_ping_gets_exactly_200_and_stores_nothing(conn, tenant):
    response = Client().post(f"/webhooks/woocommerce/{conn.public_id}", data=b"webhook_id=17",
                             content_type="application/x-www-form-urlencoded",
                             headers={"User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)"})

    assert response.status_code == 200
    assert counts(tenant) == NOTHING


def test_ping_to_an_unknown_connection_is_404(conn, tenant):
    response = Client().post("/webhooks/woocommerce/no-such-connection", data=b"webhook_id=17",
                             content_type="application/x-www-form-urlencoded")

    assert response.status_code == 404


# --- orders -------------------------------------------------------------------------


def test_order_created_with_php_escaped_body(conn, tenant):
    body = raw("woocommerce/order_created.json")
    assert b"https:\\/\\/shop.example.com" in body and b"Zo\\u00e9" in body  # as wp_json_encode writes it

    response = woo_post(conn.public_id, body, topic="order.created", delivery_id="5c1e9f0b7a3d")

    assert response.status_code == 200, response.content
    assert response.json() == {"status": "processed", "detail": "order 727 created"}
    placed = order(tenant)
    assert placed.source == Order.Source.WOOCOMMERCE
    assert (placed.number, placed.currency, placed.status) == ("727", "EUR", Order.Status.PAID)
    assert (placed.total, placed.subtotal, placed.discount_total) == (Decimal("84.01"), Decimal("70.70"), Decimal("5.00"))
    assert placed.placed_at == at(2026, 11, 20, 10, 15, 2)
    assert placed.paid_at == at(2026, 11, 20, 10, 15, 9)
    assert placed.discount_codes == ["welcome5"]
    assert placed.landing_site == "https://shop.example.com/product/cafe-creme/?utm_source=newsletter&utm_medium=email"
    assert list(OrderLine.objects.for_tenant(tenant).filter(order=placed).values_list("title", "quantity", "unit_price")) == [
        ("Café crème blend – 1 kg", 3, Decimal("16.6667")),
        ("Paper filters (100)", 3, Decimal("6.9000")),
    ]
    customer = placed.customer
    assert (customer.external_id, customer.email) == ("12", "zoe.durand@example.com")
    assert (customer.first_name, customer.last_name) == ("Zoé", "Durand")
    assert customer.marketing_consent is None and customer.consent_source == ""
    assert event_types(tenant) == ["customer.created", "order.placed", "order.paid"]
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert (delivery.topic, delivery.status, delivery.delivery_id) == ("order.created", "processed", "5c1e9f0b7a3d")
    assert bytes(delivery.body) == body
    assert delivery.received_at == NOW


def test_signature_is_over_the_raw_bytes_not_a_reserialization(conn, tenant):
    body = raw("woocommerce/order_created.json")
    reserialized = json.dumps(json.loads(body)).encode()  # what a parse-then-verify bug would hash
    assert reserialized != body

    response = woo_post(conn.public_id, body, signature=sign(WOO_SECRET, reserialized))

    assert response.status_code == 401
    assert counts(tenant) == NOTHING


def test_replayed_body_is_a_duplicate(conn, tenant):
    body = raw("woocommerce/order_created.json")

    responses = [woo_post(conn.public_id, body, delivery_id=f"d{i}") for i in range(3)]

    assert [r.json()["status"] for r in responses] == ["processed", "duplicate", "duplicate"]
    assert counts(tenant) == {"orders": 1, "customers": 1, "events": 3, "refunds": 0, "deliveries": 1}
    assert WebhookDelivery.objects.for_tenant(tenant).get().dedupe_key.startswith("order.created:sha256:")


def test_order_updated_to_completed_is_fulfilled(conn, tenant):
    woo_post(conn.public_id, raw("woocommerce/order_created.json"), topic="order.created")
    completed = load("woocommerce/order_created.json") | {
        "status": "completed", "date_completed_gmt": "2026-11-22T07:45:00", "date_completed": "2026-11-22T08:45:00",
        "date_modified_gmt": "2026-11-22T07:45:00"}

    response = woo_post(conn.public_id, php_json(completed), topic="order.updated")

    assert response.json()["status"] == "processed"
    assert order(tenant).status == Order.Status.FULFILLED
    assert order(tenant).fulfilled_at == at(2026, 11, 22, 7, 45)
    assert event_types(tenant) == ["customer.created", "order.placed", "order.paid", "order.fulfilled"]


def test_order_created_already_completed_is_paid_and_fulfilled(conn, tenant):
    # Delivered from a background queue, the payload is the state when sent.
    completed = load("woocommerce/order_created.json") | {"status": "completed",
                                                          "date_completed_gmt": "2026-11-20T10:20:00"}

    woo_post(conn.public_id, php_json(completed), topic="order.created")

    assert order(tenant).status == Order.Status.FULFILLED
    assert event_types(tenant) == ["customer.created", "order.placed", "order.paid", "order.fulfilled"]


def test_pending_payment_is_not_paid(conn, tenant):
    pending = load("woocommerce/order_created.json") | {"status": "on-hold", "date_paid_gmt": None}

    woo_post(conn.public_id, php_json(pending), topic="order.created")

    assert order(tenant).status == Order.Status.PENDING
    assert "order.paid" not in event_types(tenant)


def test_older_state_sent_after_a_newer_one_does_not_move_the_order_back(conn, tenant):
    completed = load("woocommerce/order_created.json") | {"status": "completed", "total": "84.01",
                                                          "date_completed_gmt": "2026-11-22T07:45:00",
                                                          "date_modified_gmt": "2026-11-22T07:45:00"}
    woo_post(conn.public_id, php_json(completed), topic="order.updated")
    older = load("woocommerce/order_created.json") | {"total": "90.00"}

    woo_post(conn.public_id, php_json(older), topic="order.updated")

    assert order(tenant).status == Order.Status.FULFILLED
    assert order(tenant).total == Decimal("84.01")


def test_cancelled(conn, tenant):
    cancelled = load("woocommerce/order_created.json") | {"status": "cancelled", "date_paid_gmt": None,
                                                          "date_modified_gmt": "2026-11-20T11:15:02"}

    woo_post(conn.public_id, php_json(cancelled), topic="order.updated")

    assert order(tenant).status == Order.Status.CANCELLED
    assert order(tenant).cancelled_at == at(2026, 11, 20, 11, 15, 2)
    assert "order.paid" not in event_types(tenant)


# --- refunds ------------------------------------------------------------------------


def test_refunded_order_records_each_refund_once(conn, tenant):
    body = raw("woocommerce/order_refunded.json")

    first = woo_post(conn.public_id, body, topic="order.updated")
    # The same state sent again by another delivery (a re-save in the admin): same bytes.
    again = woo_post(conn.public_id, body, topic="order.updated", delivery_id="another")

    assert first.json() == {"status": "processed",
                            "detail": "order 731 created; refund 742 recorded; refund 741 recorded"}
    assert again.json()["status"] == "duplicate"
    refunded = order(tenant, "731")
    assert (refunded.refunded_total, refunded.status) == (Decimal("30.00"), Order.Status.REFUNDED)
    assert sorted(Refund.objects.for_tenant(tenant).values_list("external_id", "amount", "reason")) == [
        ("741", Decimal("10.00"), "Tin dented"), ("742", Decimal("20.00"), "Changed mind")]
    assert event_types(tenant, type="order.refunded") == ["order.refunded", "order.refunded"]
    assert Customer.objects.for_tenant(tenant).get().total_spent == Decimal("0")


def test_partial_refund_then_another(conn, tenant):
    partial = load("woocommerce/order_refunded.json") | {"status": "processing"}
    partial["refunds"] = partial["refunds"][1:]
    woo_post(conn.public_id, php_json(partial), topic="order.updated")

    assert (order(tenant, "731").refunded_total, order(tenant, "731").status) == (Decimal("10.00"), Order.Status.PAID)

    woo_post(conn.public_id, raw("woocommerce/order_refunded.json"), topic="order.updated")

    assert (order(tenant, "731").refunded_total, order(tenant, "731").status) == (Decimal("30.00"), Order.Status.REFUNDED)
    assert Refund.objects.for_tenant(tenant).count() == 2


# --- customers ----------------------------------------------------------------------


def test_guest_order_matches_the_customer_by_billing_email(conn, tenant):
    woo_post(conn.public_id, raw("woocommerce/order_guest.json"))
    second = load("woocommerce/order_guest.json") | {"id": 736, "number": "736"}

    woo_post(conn.public_id, php_json(second))

    guest = Customer.objects.for_tenant(tenant).get()
    assert (guest.external_id, guest.email, guest.first_name) == (None, "renee.martin@example.com", "Renée")
    assert guest.order_count == 2
    assert guest.marketing_consent is None


# --- refusals -----------------------------------------------------------------------


def test_bad_signature_is_401_and_nothing_is_stored(conn, tenant):
    response = woo_post(conn.public_id, raw("woocommerce/order_created.json"), secret="not-the-secret")

    assert response.status_code == 401
    assert response.json() == {"code": "webhooks.bad_signature",
                               "message": "The X-WC-Webhook-Signature signature does not match this store's webhook secret.",
                               "fields": {}}
    assert counts(tenant) == NOTHING


def test_missing_signature_is_401(conn, tenant):
    response = woo_post(conn.public_id, raw("woocommerce/order_created.json"), omit=("X-WC-Webhook-Signature",))

    assert response.status_code == 401
    assert response.json()["code"] == "webhooks.bad_signature"
    assert counts(tenant) == NOTHING


def test_one_byte_changed_is_401(conn, tenant):
    body = raw("woocommerce/order_created.json")
    tampered = body.replace(b'"total":"84.01"', b'"total":"84.02"')
    assert tampered != body

    response = woo_post(conn.public_id, tampered, signature=sign(WOO_SECRET, body))

    assert response.status_code == 401
    assert counts(tenant) == NOTHING


def test_unknown_connection_is_404_json_and_nothing_stored(conn, tenant):
    response = woo_post("AbCdEf0123456789", raw("woocommerce/order_created.json"))

    assert response.status_code == 404
    assert response.json()["code"] == "webhooks.unknown_connection"
    assert counts(tenant) == NOTHING


def test_tenant_a_url_with_tenant_b_signature_is_401(conn, other_conn, tenant, other_tenant):
    body = raw("woocommerce/order_created.json")

    response = woo_post(conn.public_id, body, secret=OTHER_WOO_SECRET, source="https://tea.example.org/")

    assert response.status_code == 401
    assert counts(tenant) == counts(other_tenant) == NOTHING


def test_malformed_json_with_a_valid_signature_is_400_and_kept_as_failed(conn, tenant):
    body = raw("woocommerce/order_created.json")[:-1]

    response = woo_post(conn.public_id, body)

    assert response.status_code == 400
    assert response.json()["code"] == "webhooks.invalid_payload"
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert "not valid JSON" in delivery.detail
    assert bytes(delivery.body) == body
    assert counts(tenant) == NOTHING | {"deliveries": 1}


def test_guest_with_an_invalid_email_is_kept_as_failed_with_a_readable_reason(conn, tenant):
    guest = load("woocommerce/order_guest.json")
    guest["billing"]["email"] = "renee.martin@"

    response = woo_post(conn.public_id, php_json(guest))

    assert response.status_code == 400
    assert WebhookDelivery.objects.for_tenant(tenant).get().detail == (
        "invalid payload: no customer: a guest order (customer_id 0) without a valid billing.email")
    assert counts(tenant) == NOTHING | {"deliveries": 1}


def test_other_topics_are_stored_as_ignored(conn, tenant):
    response = woo_post(conn.public_id, php_json({"id": 727}), topic="order.deleted")

    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    assert counts(tenant) == NOTHING | {"deliveries": 1}


def test_missing_topic_on_a_signed_request_is_400(conn, tenant):
    response = woo_post(conn.public_id, raw("woocommerce/order_created.json"), omit=("X-WC-Webhook-Topic",))

    assert response.status_code == 400
    assert response.json()["code"] == "webhooks.missing_header"
    assert counts(tenant) == NOTHING


# --- X-WC-Webhook-Source ------------------------------------------------------------


@pytest.mark.parametrize("source", ["https://shop.example.com/", "https://shop.example.com", "http://shop.example.com/",
                                    None])
def test_source_that_names_the_connected_site_is_processed(conn, tenant, source):
    response = woo_post(conn.public_id, raw("woocommerce/order_created.json"), source=source)

    assert response.json()["status"] == "processed"


def test_source_of_another_site_is_kept_but_not_ingested(conn, tenant):
    # A staging copy of the WordPress database: same webhook, same secret, another site.
    response = woo_post(conn.public_id, raw("woocommerce/order_created.json"), source="https://staging.shop.example.com/")

    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    assert "staging.shop.example.com" in WebhookDelivery.objects.for_tenant(tenant).get().detail
    assert counts(tenant) == NOTHING | {"deliveries": 1}


# --- routing -------------------------------------------------------------------------


@pytest.mark.parametrize("trailing_slash", [False, True])
def test_no_redirect_with_or_without_trailing_slash(conn, tenant, trailing_slash):
    response = woo_post(conn.public_id, raw("woocommerce/order_created.json"), trailing_slash=trailing_slash)

    assert response.status_code == 200
    assert not 300 <= response.status_code < 400


def test_a_shopify_connection_id_is_not_a_woocommerce_url(tenant):
    shop = store_connect(tenant=tenant, platform="shopify", address="acme-coffee.myshopify.com", secret=WOO_SECRET)

    response = woo_post(shop.public_id, raw("woocommerce/order_created.json"))

    assert response.status_code == 404
    assert counts(tenant) == NOTHING
