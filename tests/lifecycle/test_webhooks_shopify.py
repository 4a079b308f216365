"""POST /webhooks/shopify as Shopify sends it: signed raw bodies, retries, out-of-order topics."""

import datetime as dt
import json
from decimal import Decimal

import pytest

from lifecycle import clock
from lifecycle.models import Customer, Event, Order, OrderLine, Refund, WebhookDelivery
from lifecycle.platforms import ingest
from lifecycle.tenants import store_connect, store_rotate_secret
from tests.factories import CustomerFactory
from tests.lifecycle.webhook_support import (
    NOTHING,
    OTHER_SHOPIFY_SECRET,
    OTHER_SHOPIFY_SHOP,
    SHOPIFY_SECRET,
    counts,
    encode,
    event_types,
    load,
    raw,
    shopify_post,
    sign,
)

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ORDER_ID = "5893421097012345678"


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def conn(tenant):
    # Connected as the merchant typed it: the stored domain is lower-cased.
    return store_connect(tenant=tenant, platform="shopify", address="https://Acme-Coffee.myshopify.com/",
                         secret=SHOPIFY_SECRET)


@pytest.fixture
def other_conn(other_tenant):
    return store_connect(tenant=other_tenant, platform="shopify", address=OTHER_SHOPIFY_SHOP,
                         secret=OTHER_SHOPIFY_SECRET)


def order(tenant) -> Order:
    return Order.objects.for_tenant(tenant).get(external_id=ORDER_ID)


def paid_order_body(**changes) -> bytes:
    return encode(load("shopify/order_paid.json") | changes)


# --- done means --------------------------------------------------------------------


def test_signed_orders_paid_creates_order_and_customer(conn, tenant):
    body = raw("shopify/order_paid.json")

    response = shopify_post(body, topic="orders/paid", event_id="evt-paid-1", webhook_id="b1f0c6e2-wh")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "processed"
    placed = order(tenant)
    assert placed.source == Order.Source.SHOPIFY
    assert placed.number == "#1042"
    assert placed.status == Order.Status.PAID
    assert placed.currency == "EUR"
    assert (placed.total, placed.subtotal, placed.discount_total) == (Decimal("59.80"), Decimal("54.90"), Decimal("5.00"))
    assert isinstance(placed.total, Decimal)
    assert placed.refunded_total == Decimal("0")
    assert placed.placed_at == at(2026, 11, 20, 9, 15, 1)
    assert placed.paid_at == at(2026, 11, 20, 9, 15, 9)
    assert placed.source_updated_at == at(2026, 11, 20, 9, 15, 9)
    assert placed.discount_codes == ["WELCOME5"]
    assert placed.referral_code == "FRIEND42"
    assert list(OrderLine.objects.for_tenant(tenant).filter(order=placed).values_list(
        "external_id", "product_external_id", "sku", "title", "quantity", "unit_price")) == [
        ("14012345678901", "8801234567890", "BEANS-500", "House beans - 500 g", 2, Decimal("22.50")),
        ("14012345678902", "8801234567891", "", "Paper filters", 1, Decimal("14.90")),
    ]
    customer = placed.customer
    assert customer.external_id == "7212345678901234567"
    assert customer.email == "ada.lovelace@example.com"
    assert (customer.first_name, customer.last_name, customer.locale) == ("Ada", "Lovelace", "de")
    assert customer.marketing_consent is True
    assert customer.consent_source == Customer.ConsentSource.SHOPIFY
    assert customer.consent_updated_at == at(2026, 11, 20, 9, 14, 58)
    assert (customer.order_count, customer.total_spent) == (1, Decimal("59.80"))
    assert event_types(tenant) == ["customer.created", "order.placed", "order.paid"]
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert delivery.connection == conn
    assert delivery.status == WebhookDelivery.Status.PROCESSED
    assert delivery.topic == "orders/paid"
    assert delivery.dedupe_key == "orders/paid:event:evt-paid-1"
    assert delivery.delivery_id == "b1f0c6e2-wh"
    assert bytes(delivery.body) == body
    assert delivery.received_at == NOW


def test_replayed_five_times_is_still_one_order_one_paid_event_one_delivery(conn, tenant):
    body = raw("shopify/order_paid.json")
    first = shopify_post(body, topic="orders/paid", event_id="evt-paid-1")

    replays = [shopify_post(body, topic="orders/paid", event_id="evt-paid-1") for _ in range(5)]

    assert first.json()["status"] == "processed"
    assert [(r.status_code, r.json()["status"]) for r in replays] == [(200, "duplicate")] * 5
    assert counts(tenant) == {"orders": 1, "customers": 1, "events": 3, "refunds": 0, "deliveries": 1}
    assert event_types(tenant, type="order.paid") == ["order.paid"]


def test_same_order_under_another_event_id_changes_nothing(conn, tenant):
    body = raw("shopify/order_paid.json")
    shopify_post(body, topic="orders/paid", event_id="evt-paid-1")

    response = shopify_post(body, topic="orders/updated", event_id="evt-updated-1")

    assert response.json() == {"status": "processed", "detail": f"order {ORDER_ID} unchanged"}
    assert counts(tenant) == {"orders": 1, "customers": 1, "events": 3, "refunds": 0, "deliveries": 2}


def test_wrong_secret_is_401_and_nothing_is_stored(conn, tenant):
    response = shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", secret="not-the-shop-secret")

    assert response.status_code == 401
    assert response.json() == {"code": "webhooks.bad_signature",
                               "message": "The X-Shopify-Hmac-Sha256 signature does not match this shop's webhook secret.",
                               "fields": {}}
    assert counts(tenant) == NOTHING


# --- signatures --------------------------------------------------------------------


def test_one_byte_changed_after_signing_is_401(conn, tenant):
    body = raw("shopify/order_paid.json")
    signature = sign(SHOPIFY_SECRET, body)
    tampered = body.replace(b'"total_price": "59.80"', b'"total_price": "59.81"')
    assert len(tampered) == len(body) and tampered != body

    response = shopify_post(tampered, topic="orders/paid", signature=signature)

    assert response.status_code == 401
    assert response.json()["code"] == "webhooks.bad_signature"
    assert counts(tenant) == NOTHING


def test_previous_secret_verifies_during_rotation_and_not_after(conn, tenant):
    store_rotate_secret(connection_=conn, secret="shpss_acme_rotated_secret", grace=dt.timedelta(hours=1))
    old = paid_order_body()

    during = shopify_post(old, topic="orders/paid", event_id="evt-1")
    with_new = shopify_post(old, topic="orders/updated", event_id="evt-2", secret="shpss_acme_rotated_secret")
    clock.advance(dt.timedelta(hours=1, seconds=1))
    after = shopify_post(old, topic="orders/updated", event_id="evt-3")
    new_after = shopify_post(old, topic="orders/updated", event_id="evt-4", secret="shpss_acme_rotated_secret")

    assert (during.status_code, with_new.status_code, after.status_code, new_after.status_code) == (200, 200, 401, 200)
    assert after.json()["code"] == "webhooks.bad_signature"
    assert sorted(WebhookDelivery.objects.for_tenant(tenant).values_list("dedupe_key", flat=True)) == [
        "orders/paid:event:evt-1", "orders/updated:event:evt-2", "orders/updated:event:evt-4"]


@pytest.mark.parametrize(("missing", "status", "code"), [
    ("X-Shopify-Hmac-Sha256", 401, "webhooks.bad_signature"),
    ("X-Shopify-Topic", 400, "webhooks.missing_header"),
    ("X-Shopify-Shop-Domain", 400, "webhooks.missing_header"),
])
def test_missing_required_header_is_refused_and_nothing_stored(conn, tenant, missing, status, code):
    response = shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", omit=(missing,))

    assert response.status_code == status
    assert response.json()["code"] == code
    assert missing in response.json()["message"]
    assert counts(tenant) == NOTHING


def test_unknown_shop_is_401_with_the_bad_signature_answer(conn, tenant):
    body = raw("shopify/order_paid.json")

    unknown = shopify_post(body, topic="orders/paid", shop="nobody.myshopify.com")
    wrong_secret = shopify_post(body, topic="orders/paid", secret="wrong-secret")

    assert unknown.status_code == wrong_secret.status_code == 401
    assert unknown.json() == wrong_secret.json()  # which shops are connected cannot be probed
    assert counts(tenant) == NOTHING


def test_shop_domain_header_is_matched_case_insensitively(conn, tenant):
    response = shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", shop="ACME-Coffee.MyShopify.com")

    assert response.status_code == 200
    assert counts(tenant)["orders"] == 1


def test_tenant_a_secret_claiming_tenant_b_shop_is_401_for_both(conn, other_conn, tenant, other_tenant):
    body = raw("shopify/order_paid.json")

    response = shopify_post(body, topic="orders/paid", secret=SHOPIFY_SECRET, shop=OTHER_SHOPIFY_SHOP)

    assert response.status_code == 401
    assert counts(tenant) == counts(other_tenant) == NOTHING
    # B's own delivery lands in B only.
    assert shopify_post(body, topic="orders/paid", secret=OTHER_SHOPIFY_SECRET, shop=OTHER_SHOPIFY_SHOP).status_code == 200
    assert counts(tenant) == NOTHING
    assert counts(other_tenant)["orders"] == 1


# --- dedupe keys -------------------------------------------------------------------


def test_dedupe_falls_back_to_webhook_id_then_body_hash(conn, tenant):
    body = raw("shopify/order_paid.json")

    by_webhook = [shopify_post(body, topic="orders/updated", event_id=None, webhook_id="wh-7") for _ in range(2)]
    by_body = [shopify_post(body, topic="orders/create", event_id=None, webhook_id=None) for _ in range(2)]

    assert [r.json()["status"] for r in by_webhook + by_body] == ["processed", "duplicate", "processed", "duplicate"]
    keys = sorted(WebhookDelivery.objects.for_tenant(tenant).values_list("dedupe_key", flat=True))
    assert keys[0].startswith("orders/create:sha256:") and len(keys[0]) == len("orders/create:sha256:") + 64
    assert keys[1] == "orders/updated:webhook:wh-7"


def test_one_event_id_on_two_topics_is_two_deliveries(conn, tenant):
    body = raw("shopify/order_paid.json")

    created = shopify_post(body, topic="orders/create", event_id="evt-shared")
    paid = shopify_post(body, topic="orders/paid", event_id="evt-shared")

    assert (created.json()["status"], paid.json()["status"]) == ("processed", "processed")
    assert counts(tenant)["deliveries"] == 2


# --- paid, not created ---------------------------------------------------------------


def test_unpaid_orders_create_is_pending_until_orders_paid(conn, tenant):
    unpaid = paid_order_body(financial_status="pending", payment_gateway_names=["Bank Deposit"])

    shopify_post(unpaid, topic="orders/create", event_id="evt-1")

    assert order(tenant).status == Order.Status.PENDING
    assert order(tenant).paid_at is None
    assert event_types(tenant) == ["customer.created", "order.placed"]
    assert Customer.objects.for_tenant(tenant).get().order_count == 0

    paid = paid_order_body(financial_status="paid", updated_at="2026-11-22T08:30:00+01:00")
    shopify_post(paid, topic="orders/paid", event_id="evt-2")

    assert order(tenant).status == Order.Status.PAID
    assert order(tenant).paid_at == at(2026, 11, 22, 7, 30)  # when it was paid, not placed
    assert event_types(tenant, type="order.paid") == ["order.paid"]
    assert Event.objects.for_tenant(tenant).get(type="order.paid").occurred_at == at(2026, 11, 22, 7, 30)
    assert Customer.objects.for_tenant(tenant).get().order_count == 1


def test_authorized_only_is_not_paid(conn, tenant):
    shopify_post(paid_order_body(financial_status="authorized"), topic="orders/create")

    assert order(tenant).status == Order.Status.PENDING
    assert "order.paid" not in event_types(tenant)


# --- out of order ------------------------------------------------------------------


def fulfilled_body() -> bytes:
    return paid_order_body(
        fulfillment_status="fulfilled", updated_at="2026-11-21T12:00:05+01:00",
        fulfillments=[{"id": 4212345678901, "order_id": int(ORDER_ID), "status": "success",
                       "created_at": "2026-11-21T12:00:00+01:00", "tracking_company": "DHL",
                       "tracking_number": "JJD000390007788", "shipment_status": None}],
    )


def test_fulfilled_before_create_and_paid_stays_fulfilled(conn, tenant):
    shopify_post(fulfilled_body(), topic="orders/fulfilled", event_id="evt-3")
    shopify_post(paid_order_body(updated_at="2026-11-20T10:15:02+01:00"), topic="orders/create", event_id="evt-1")
    shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", event_id="evt-2")

    placed = order(tenant)
    assert placed.status == Order.Status.FULFILLED
    assert placed.fulfilled_at == at(2026, 11, 21, 11)
    assert placed.paid_at == at(2026, 11, 20, 9, 15, 1)  # first heard of as paid in the fulfilled payload
    assert placed.source_updated_at == at(2026, 11, 21, 11, 0, 5)
    assert event_types(tenant) == ["customer.created", "order.placed", "order.paid", "order.fulfilled"]


def test_stale_orders_updated_neither_moves_back_nor_overwrites(conn, tenant):
    shopify_post(fulfilled_body(), topic="orders/fulfilled", event_id="evt-3")
    stale = load("shopify/order_paid.json") | {
        "updated_at": "2026-11-20T10:20:00+01:00", "name": "#1042-draft", "total_price": "99.00",
        "discount_codes": [], "fulfillment_status": None,
    }
    stale["line_items"] = stale["line_items"][:1]
    # The customer's consent as it was before they subscribed.
    stale["customer"]["email_marketing_consent"] = {"state": "not_subscribed", "opt_in_level": None,
                                                    "consent_updated_at": "2026-11-20T10:00:00+01:00"}

    response = shopify_post(encode(stale), topic="orders/updated", event_id="evt-old")

    assert response.status_code == 200
    placed = order(tenant)
    assert placed.status == Order.Status.FULFILLED
    assert (placed.number, placed.total, placed.discount_codes) == ("#1042", Decimal("59.80"), ["WELCOME5"])
    assert placed.source_updated_at == at(2026, 11, 21, 11, 0, 5)
    assert OrderLine.objects.for_tenant(tenant).filter(order=placed).count() == 2
    assert placed.customer.marketing_consent is True
    assert event_types(tenant) == ["customer.created", "order.placed", "order.paid", "order.fulfilled"]


def test_newer_consent_from_customers_update_wins_and_an_older_replay_does_not_undo_it(conn, tenant):
    shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", event_id="evt-1")
    customer = load("shopify/order_paid.json")["customer"] | {"updated_at": "2026-11-23T09:00:00+01:00"}
    customer["email_marketing_consent"] = {"state": "unsubscribed", "opt_in_level": "single_opt_in",
                                           "consent_updated_at": "2026-11-23T09:00:00+01:00"}

    shopify_post(encode(customer), topic="customers/update", event_id="evt-2")
    shopify_post(raw("shopify/order_paid.json"), topic="orders/updated", event_id="evt-3")  # a late retry

    stored = Customer.objects.for_tenant(tenant).get()
    assert stored.marketing_consent is False
    assert stored.consent_updated_at == at(2026, 11, 23, 8)


def test_orders_cancelled_after_payment(conn, tenant):
    shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", event_id="evt-1")
    cancelled = paid_order_body(cancelled_at="2026-11-20T14:00:00+01:00", cancel_reason="customer",
                                updated_at="2026-11-20T14:00:02+01:00")

    responses = [shopify_post(cancelled, topic="orders/cancelled", event_id=f"evt-c{i}") for i in range(2)]

    assert [r.status_code for r in responses] == [200, 200]
    placed = order(tenant)
    assert (placed.status, placed.cancelled_at, placed.cancel_reason) == (
        Order.Status.CANCELLED, at(2026, 11, 20, 13), "customer")
    assert event_types(tenant, type="order.cancelled") == ["order.cancelled"]
    assert Customer.objects.for_tenant(tenant).get().order_count == 0  # cancelled orders do not count


def test_disabled_connection_is_refused(conn, tenant):
    type(conn).all_tenants.filter(pk=conn.pk).update(disabled_at=NOW)

    response = shopify_post(raw("shopify/order_paid.json"), topic="orders/paid")

    assert response.status_code == 401
    assert counts(tenant) == NOTHING


# --- refunds -------------------------------------------------------------------------


def full_refund_body() -> bytes:
    refund = load("shopify/refund_partial.json") | {"id": 929361463, "note": "Whole order returned",
                                                    "processed_at": "2026-11-26T10:00:00+01:00"}
    refund["transactions"] = [refund["transactions"][1] | {"id": 389404480, "amount": "36.15"}]
    return encode(refund)


def test_partial_then_full_refund(conn, tenant):
    shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", event_id="evt-1")

    partial = shopify_post(raw("shopify/refund_partial.json"), topic="refunds/create", event_id="evt-r1")

    assert partial.json() == {"status": "processed", "detail": f"refund 929361462 on order {ORDER_ID} recorded"}
    assert (order(tenant).refunded_total, order(tenant).status) == (Decimal("23.65"), Order.Status.PAID)
    refund = Refund.objects.for_tenant(tenant).get()
    assert (refund.external_id, refund.amount, refund.currency) == ("929361462", Decimal("23.65"), "EUR")
    assert (refund.reason, refund.refunded_at) == ("One bag arrived torn", at(2026, 11, 24, 8, 30))
    assert Customer.objects.for_tenant(tenant).get().total_spent == Decimal("36.15")

    shopify_post(full_refund_body(), topic="refunds/create", event_id="evt-r2")

    assert (order(tenant).refunded_total, order(tenant).status) == (Decimal("59.80"), Order.Status.REFUNDED)
    assert [e.data["full"] for e in Event.objects.for_tenant(tenant).filter(type="order.refunded").order_by("pk")] == [
        False, True]
    assert Customer.objects.for_tenant(tenant).get().total_spent == Decimal("0")


def test_replayed_refund_is_counted_once(conn, tenant):
    shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", event_id="evt-1")
    body = raw("shopify/refund_partial.json")

    same_event = [shopify_post(body, topic="refunds/create", event_id="evt-r1") for _ in range(3)]
    another_subscription = shopify_post(body, topic="refunds/create", event_id="evt-r1-copy")
    # The next orders/updated lists the same refund: still the same refund id.
    with_refund = load("shopify/order_paid.json") | {"financial_status": "partially_refunded",
                                                     "refunds": [load("shopify/refund_partial.json")],
                                                     "updated_at": "2026-11-24T09:30:05+01:00"}
    shopify_post(encode(with_refund), topic="orders/updated", event_id="evt-u1")

    assert [r.json()["status"] for r in same_event] == ["processed", "duplicate", "duplicate"]
    assert another_subscription.json()["detail"] == f"refund 929361462 on order {ORDER_ID} already recorded"
    assert Refund.objects.for_tenant(tenant).count() == 1
    assert order(tenant).refunded_total == Decimal("23.65")
    assert event_types(tenant, type="order.refunded") == ["order.refunded"]


def test_refund_before_the_order_makes_a_placeholder_that_the_order_fills_in(conn, tenant):
    shopify_post(raw("shopify/refund_partial.json"), topic="refunds/create", event_id="evt-r1")

    placeholder = order(tenant)
    assert (placeholder.placed_at, placeholder.customer, placeholder.currency) == (None, None, "EUR")
    assert placeholder.refunded_total == Decimal("23.65")
    assert Customer.objects.for_tenant(tenant).count() == 0

    shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", event_id="evt-1")

    filled = order(tenant)
    assert filled.status == Order.Status.PAID
    assert (filled.total, filled.refunded_total) == (Decimal("59.80"), Decimal("23.65"))
    assert filled.placed_at == at(2026, 11, 20, 9, 15, 1)
    assert filled.customer.email == "ada.lovelace@example.com"
    assert filled.lines.count() == 2
    assert filled.customer.total_spent == Decimal("36.15")
    assert event_types(tenant) == ["order.refunded", "customer.created", "order.placed", "order.paid"]
    # The refund recorded before we knew whose order it was is now on the customer's timeline.
    assert set(Event.objects.for_tenant(tenant).values_list("customer_id", flat=True)) == {filled.customer_id}


def test_refund_that_moved_no_money_is_ignored(conn, tenant):
    refund = load("shopify/refund_partial.json")
    refund["transactions"] = [t | {"status": "failure"} for t in refund["transactions"]]

    response = shopify_post(encode(refund), topic="refunds/create")

    assert response.json()["status"] == "ignored"
    assert counts(tenant) == NOTHING | {"deliveries": 1}


# --- fulfillment events -------------------------------------------------------------


def test_delivered_fulfillment_event_sets_delivered_at_once(conn, tenant):
    shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", event_id="evt-1")
    body = raw("shopify/fulfillment_event_delivered.json")

    first = shopify_post(body, topic="fulfillment_events/create", event_id="evt-f1")
    again = shopify_post(body, topic="fulfillment_events/create", event_id="evt-f1-copy")

    assert first.json() == {"status": "processed", "detail": f"order {ORDER_ID} delivered"}
    assert again.json() == {"status": "processed", "detail": f"order {ORDER_ID} already delivered"}
    assert order(tenant).delivered_at == at(2026, 11, 23, 19, 5)
    assert order(tenant).status == Order.Status.DELIVERED
    assert event_types(tenant, type="order.delivered") == ["order.delivered"]


def test_other_fulfillment_event_statuses_are_ignored(conn, tenant):
    shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", event_id="evt-1")
    in_transit = load("shopify/fulfillment_event_delivered.json") | {"status": "in_transit"}

    response = shopify_post(encode(in_transit), topic="fulfillment_events/create", event_id="evt-f1")

    assert response.json()["status"] == "ignored"
    assert order(tenant).delivered_at is None
    assert "order.delivered" not in event_types(tenant)


def test_delivery_before_the_order_is_kept_on_a_placeholder(conn, tenant):
    shopify_post(raw("shopify/fulfillment_event_delivered.json"), topic="fulfillment_events/create", event_id="evt-f1")
    shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", event_id="evt-1")

    filled = order(tenant)
    assert filled.status == Order.Status.DELIVERED
    assert filled.delivered_at == at(2026, 11, 23, 19, 5)
    assert filled.total == Decimal("59.80")
    assert event_types(tenant) == ["order.delivered", "customer.created", "order.placed", "order.paid"]


# --- customers -----------------------------------------------------------------------


def test_guest_checkout_is_matched_to_the_customer_by_email(conn, tenant):
    existing = CustomerFactory(tenant=tenant, external_id=None, email="grace.hopper@example.com", first_name="G.")

    response = shopify_post(raw("shopify/order_guest.json"), topic="orders/paid")

    assert response.status_code == 200
    guest_order = Order.objects.for_tenant(tenant).get(external_id="5893421097099990001")
    assert guest_order.customer_id == existing.pk
    assert Customer.objects.for_tenant(tenant).count() == 1
    existing.refresh_from_db()
    assert (existing.first_name, existing.last_name, existing.locale) == ("Grace", "Hopper", "en-GB")
    assert existing.marketing_consent is None  # a guest order says nothing about consent
    assert existing.order_count == 1


def test_guest_checkout_without_a_known_email_creates_a_guest_customer(conn, tenant):
    shopify_post(raw("shopify/order_guest.json"), topic="orders/paid")

    guest = Customer.objects.for_tenant(tenant).get()
    assert (guest.external_id, guest.email, guest.first_name) == (None, "grace.hopper@example.com", "Grace")


def test_legacy_accepts_marketing_order(conn, tenant):
    shopify_post(raw("shopify/order_legacy_accepts_marketing.json"), topic="orders/create")

    customer = Customer.objects.for_tenant(tenant).get(external_id="207119551")
    assert customer.marketing_consent is True
    assert customer.consent_updated_at == at(2021, 3, 1, 17)
    assert Order.objects.for_tenant(tenant).get(external_id="450789469").currency == "USD"


def test_customers_create(conn, tenant):
    customer = load("shopify/order_paid.json")["customer"]

    response = shopify_post(encode(customer), topic="customers/create")

    assert response.status_code == 200
    stored = Customer.objects.for_tenant(tenant).get()
    assert (stored.external_id, stored.email, stored.marketing_consent) == (
        "7212345678901234567", "ada.lovelace@example.com", True)
    assert event_types(tenant) == ["customer.created"]


# --- what is stored, what is not ---------------------------------------------------


def test_test_orders_are_stored_but_not_ingested(conn, tenant):
    response = shopify_post(paid_order_body(test=True), topic="orders/paid")

    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert counts(tenant) == NOTHING | {"deliveries": 1}
    assert "test order" in WebhookDelivery.objects.for_tenant(tenant).get().detail


def test_other_topics_are_stored_as_ignored(conn, tenant):
    response = shopify_post(b'{"id": 632910392, "title": "Spring sale"}', topic="collections/update")

    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert (delivery.topic, delivery.status) == ("collections/update", WebhookDelivery.Status.IGNORED)
    assert counts(tenant) == NOTHING | {"deliveries": 1}


def test_malformed_json_with_a_valid_signature_is_kept_as_failed(conn, tenant):
    body = raw("shopify/order_paid.json")[:-40]

    response = shopify_post(body, topic="orders/paid")

    assert response.status_code == 400
    assert response.json()["code"] == "webhooks.invalid_payload"
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.detail.startswith("the body is not valid JSON")
    assert bytes(delivery.body) == body
    assert counts(tenant) == NOTHING | {"deliveries": 1}


def test_payload_missing_its_currency_is_kept_as_failed_and_writes_nothing_else(conn, tenant):
    payload = load("shopify/order_paid.json")
    del payload["currency"]

    response = shopify_post(encode(payload), topic="orders/paid")

    assert response.status_code == 400
    assert response.json()["message"].startswith("invalid payload: currency")
    assert WebhookDelivery.objects.for_tenant(tenant).get().status == WebhookDelivery.Status.FAILED
    assert counts(tenant) == NOTHING | {"deliveries": 1}  # the customer upsert was rolled back too


def test_a_failed_delivery_is_tried_again_on_retry(conn, tenant):
    payload = load("shopify/order_paid.json")
    del payload["currency"]
    shopify_post(encode(payload), topic="orders/paid", event_id="evt-1")

    # Same event id, a payload we can now read (e.g. after a fix): processed, same row.
    response = shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", event_id="evt-1")

    assert response.json()["status"] == "processed"
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert (delivery.status, delivery.detail) == (WebhookDelivery.Status.PROCESSED, f"order {ORDER_ID} created")
    assert counts(tenant)["orders"] == 1


def test_invalid_email_is_dropped_and_the_order_kept(conn, tenant):
    payload = load("shopify/order_paid.json")
    payload["customer"]["email"] = "ada@@example"
    payload["email"] = payload["contact_email"] = "ada@@example"

    response = shopify_post(encode(payload), topic="orders/paid")

    assert response.json()["status"] == "processed"
    customer = order(tenant).customer
    assert (customer.external_id, customer.email) == ("7212345678901234567", "")


def test_a_crash_mid_way_stores_neither_the_delivery_nor_its_effects(conn, tenant, monkeypatch):
    def crash(**kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(ingest, "refund_record", crash)
    with_refund = paid_order_body(refunds=[load("shopify/refund_partial.json")])

    with pytest.raises(RuntimeError):
        shopify_post(with_refund, topic="orders/paid", event_id="evt-1")

    assert counts(tenant) == NOTHING
    monkeypatch.undo()
    retry = shopify_post(with_refund, topic="orders/paid", event_id="evt-1")
    assert retry.json()["status"] == "processed"
    assert order(tenant).refunded_total == Decimal("23.65")


@pytest.mark.parametrize("path", ["/webhooks/shopify", "/webhooks/shopify/"])
def test_no_redirect_with_or_without_trailing_slash(conn, tenant, path):
    response = shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", path=path)

    assert response.status_code == 200
    assert not 300 <= response.status_code < 400


def test_get_is_not_allowed(conn, client):
    assert client.get("/webhooks/shopify").status_code == 405


def test_response_is_json(conn):
    response = shopify_post(raw("shopify/order_paid.json"), topic="orders/paid")

    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["status"] == "processed"
