"""Platform payload → neutral input, as pure functions: no database, no HTTP."""

import datetime as dt
from decimal import Decimal

import pytest

from lifecycle.platforms import shopify, woocommerce
from lifecycle.platforms.common import PayloadError, parse_json_object, signature_matches, when
from tests.lifecycle.webhook_support import load, raw, sign

UTC = dt.UTC


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# --- Shopify orders ---------------------------------------------------------------


def test_shopify_paid_order_maps_every_field():
    data = shopify.order_in(load("shopify/order_paid.json"), topic="orders/paid")

    assert data.external_id == "5893421097012345678"  # int64, exact, as a string
    assert data.number == "#1042"
    assert data.currency == "EUR"
    assert data.status == "paid"
    assert (data.total, data.subtotal, data.discount_total) == (Decimal("59.80"), Decimal("54.90"), Decimal("5.00"))
    assert data.placed_at == at(2026, 11, 20, 9, 15, 1)
    assert data.paid_at == at(2026, 11, 20, 9, 15, 9)  # orders/paid: the payload's updated_at
    assert data.updated_at == at(2026, 11, 20, 9, 15, 9)
    assert data.fulfilled_at is None and data.cancelled_at is None and data.cancel_reason == ""
    assert data.discount_codes == ["WELCOME5"]
    assert data.landing_site == "/products/house-beans?utm_source=newsletter&utm_medium=email&ref=FRIEND42"
    assert data.referring_site == "https://www.google.com/"
    assert data.referral_code == "FRIEND42"
    assert [(line.external_id, line.product_external_id, line.sku, line.title, line.quantity, line.unit_price)
            for line in data.lines] == [
        ("14012345678901", "8801234567890", "BEANS-500", "House beans - 500 g", 2, Decimal("22.50")),
        ("14012345678902", "8801234567891", "", "Paper filters", 1, Decimal("14.90")),
    ]
    customer = data.customer
    assert customer.external_id == "7212345678901234567"
    assert customer.email == "ada.lovelace@example.com"
    assert (customer.first_name, customer.last_name, customer.locale) == ("Ada", "Lovelace", "de")
    assert customer.marketing_consent is True
    assert customer.consent_updated_at == at(2026, 11, 20, 9, 14, 58)


def test_shopify_paid_at_is_left_to_the_service_outside_orders_paid():
    assert shopify.order_in(load("shopify/order_paid.json"), topic="orders/create").paid_at is None
    assert shopify.order_in(load("shopify/order_paid.json"), topic="orders/updated").paid_at is None


@pytest.mark.parametrize(("financial_status", "status"), [
    ("pending", "pending"), ("authorized", "pending"), ("partially_paid", "pending"), ("voided", "pending"),
    ("paid", "paid"), ("partially_refunded", "paid"), ("refunded", "paid"),
])
def test_shopify_status_follows_money_not_the_topic(financial_status, status):
    payload = load("shopify/order_paid.json") | {"financial_status": financial_status}

    assert shopify.order_in(payload, topic="orders/create").status == status


def test_shopify_fulfilled_order_takes_the_last_successful_fulfillment_time():
    payload = load("shopify/order_paid.json") | {"fulfillment_status": "fulfilled", "fulfillments": [
        {"id": 1, "status": "success", "created_at": "2026-11-21T09:00:00+01:00"},
        {"id": 2, "status": "cancelled", "created_at": "2026-11-22T09:00:00+01:00"},
        {"id": 3, "status": "success", "created_at": "2026-11-21T12:00:00+01:00"},
    ]}

    data = shopify.order_in(payload)

    assert data.status == "fulfilled"
    assert data.fulfilled_at == at(2026, 11, 21, 11)


def test_shopify_partially_fulfilled_is_not_fulfilled():
    payload = load("shopify/order_paid.json") | {"fulfillment_status": "partial"}

    assert (shopify.order_in(payload).status, shopify.order_in(payload).fulfilled_at) == ("paid", None)


def test_shopify_cash_on_delivery_fulfilled_before_paid_is_not_called_paid():
    payload = load("shopify/order_paid.json") | {"financial_status": "pending", "fulfillment_status": "fulfilled"}

    data = shopify.order_in(payload)

    assert data.status == "pending"
    assert data.fulfilled_at == at(2026, 11, 20, 9, 15, 9)  # no fulfillments listed: updated_at


def test_shopify_cancellation_keeps_whether_it_was_paid():
    unpaid = load("shopify/order_paid.json") | {"financial_status": "voided", "cancelled_at": "2026-11-20T12:00:00+01:00",
                                                "cancel_reason": "customer"}
    paid = unpaid | {"financial_status": "refunded"}

    assert (shopify.order_in(unpaid).status, shopify.order_in(unpaid).cancelled_at) == ("cancelled", at(2026, 11, 20, 11))
    assert shopify.order_in(unpaid).cancel_reason == "customer"
    assert (shopify.order_in(paid).status, shopify.order_in(paid).cancelled_at) == ("paid", at(2026, 11, 20, 11))


def test_shopify_guest_order_uses_order_email_and_billing_names():
    data = shopify.order_in(load("shopify/order_guest.json"))

    assert "customer" not in load("shopify/order_guest.json")
    assert data.customer.external_id is None
    assert data.customer.email == "grace.hopper@example.com"  # trimmed, lower-cased
    assert (data.customer.first_name, data.customer.last_name) == ("Grace", "Hopper")
    assert data.customer.locale == "en-GB"
    assert data.customer.marketing_consent is None  # a guest never told us
    assert data.placed_at == at(2026, 11, 21, 13, 0, 10)  # -05:00 → UTC


def test_shopify_guest_falls_back_to_contact_email_when_email_is_invalid():
    payload = load("shopify/order_guest.json") | {"email": "grace at example dot com"}

    assert shopify.order_in(payload).customer.email == "grace.hopper@example.com"


def test_shopify_invalid_email_is_dropped_not_fatal_when_the_customer_has_an_id():
    payload = load("shopify/order_paid.json")
    payload["customer"]["email"] = "ada@"
    payload["email"] = payload["contact_email"] = "not an address"

    data = shopify.order_in(payload)

    assert data.customer.email is None
    assert data.customer.external_id == "7212345678901234567"


def test_shopify_order_without_any_identity_is_refused_readably():
    payload = load("shopify/order_guest.json") | {"email": None, "contact_email": None}

    with pytest.raises(PayloadError, match="no customer id and no valid email"):
        shopify.order_in(payload)


def test_shopify_locale_falls_back_to_accept_language():
    payload = load("shopify/order_paid.json") | {"customer_locale": None}

    assert shopify.order_in(payload).customer.locale == "de-DE"


def test_shopify_legacy_accepts_marketing_is_the_fallback():
    data = shopify.order_in(load("shopify/order_legacy_accepts_marketing.json"))

    assert data.customer.marketing_consent is True
    assert data.customer.consent_updated_at == at(2021, 3, 1, 17)
    assert data.currency == "USD"
    assert data.referral_code == "BOB-REF"  # a note attribute beats landing_site_ref
    assert data.total == Decimal("608.94")


@pytest.mark.parametrize(("customer", "expected"), [
    ({"email_marketing_consent": {"state": "subscribed"}}, True),
    ({"email_marketing_consent": {"state": "not_subscribed"}}, False),
    ({"email_marketing_consent": {"state": "unsubscribed"}}, False),
    ({"email_marketing_consent": {"state": "pending"}}, False),
    ({"email_marketing_consent": {"state": "redacted"}}, None),
    # The current field wins over the deprecated boolean when both are sent.
    ({"email_marketing_consent": {"state": "unsubscribed"}, "accepts_marketing": True}, False),
    ({"email_marketing_consent": None, "accepts_marketing": True}, True),
    ({"accepts_marketing": False}, False),
    ({}, None),
])
def test_shopify_consent(customer, expected):
    assert shopify.consent(customer)[0] is expected


def test_shopify_line_removed_by_an_edit_is_dropped():
    payload = load("shopify/order_paid.json")
    payload["line_items"][1]["quantity"] = 0

    assert [line.sku for line in shopify.order_in(payload).lines] == ["BEANS-500"]


def test_shopify_missing_currency_is_a_validation_error():
    payload = load("shopify/order_paid.json")
    del payload["currency"]

    with pytest.raises(ValueError, match="currency"):
        shopify.order_in(payload)


def test_shopify_time_without_offset_is_refused():
    with pytest.raises(PayloadError, match="no UTC offset"):
        when("2026-11-20T10:15:01", "processed_at")


def test_shopify_customer_resource():
    data = shopify.customer_in(load("shopify/order_paid.json")["customer"])

    assert (data.external_id, data.email, data.first_name) == ("7212345678901234567", "ada.lovelace@example.com", "Ada")
    assert data.marketing_consent is True


# --- Shopify refunds and fulfillment events ----------------------------------------


def test_shopify_refund_money_is_the_successful_refund_transactions():
    found = shopify.refund_in(load("shopify/refund_partial.json"))

    assert found.order_external_id == "5893421097012345678"
    assert found.currency == "EUR"
    assert found.test is False
    assert found.refund.external_id == "929361462"
    # 18.75 + 4.90 shipping; the failed 18.75 attempt and the line subtotals do not count.
    assert found.refund.amount == Decimal("23.65")
    assert found.refund.reason == "One bag arrived torn"
    assert found.refund.refunded_at == at(2026, 11, 24, 8, 30)


def test_shopify_refund_that_moved_no_money_maps_to_none():
    payload = load("shopify/refund_partial.json")
    for transaction in payload["transactions"]:
        transaction["status"] = "failure"

    assert shopify.refund_in(payload).refund is None


def test_shopify_refund_through_a_test_gateway_is_marked():
    payload = load("shopify/refund_partial.json")
    for transaction in payload["transactions"]:
        transaction["test"] = True

    assert shopify.refund_in(payload).test is True


def test_shopify_refunds_embedded_in_an_order():
    order = load("shopify/order_paid.json") | {"refunds": [load("shopify/refund_partial.json")]}

    assert [(r.external_id, r.amount) for r in shopify.order_refunds(order)] == [("929361462", Decimal("23.65"))]


def test_shopify_fulfillment_event_top_level_and_wrapped():
    payload = load("shopify/fulfillment_event_delivered.json")

    for shape in (payload, {"fulfillment_event": payload}):
        event = shopify.fulfillment_event(shape)
        assert (event.order_external_id, event.status) == ("5893421097012345678", "delivered")
        assert event.happened_at == at(2026, 11, 23, 19, 5)


# --- WooCommerce ------------------------------------------------------------------


def test_woocommerce_order_maps_every_field():
    data = woocommerce.order_in(parse_json_object(raw("woocommerce/order_created.json")))

    assert (data.external_id, data.number, data.currency, data.status) == ("727", "727", "EUR", "paid")
    assert data.total == Decimal("84.01")
    assert data.subtotal == Decimal("70.70")  # Σ line subtotals: WooCommerce has no order subtotal
    assert data.discount_total == Decimal("5.00")
    assert data.placed_at == at(2026, 11, 20, 10, 15, 2)  # *_gmt without Z is UTC
    assert data.paid_at == at(2026, 11, 20, 10, 15, 9)
    assert data.updated_at == at(2026, 11, 20, 10, 15, 10)
    assert data.discount_codes == ["welcome5"]
    assert data.landing_site == "https://shop.example.com/product/cafe-creme/?utm_source=newsletter&utm_medium=email"
    assert data.referring_site == "https://www.google.com/"
    assert [(line.external_id, line.product_external_id, line.sku, line.title, line.quantity, line.unit_price)
            for line in data.lines] == [
        ("315", "31", "CREME-1KG", "Café crème blend – 1 kg", 3, Decimal("16.6667")),  # 50.00 / 3
        ("316", "36", "PAP-100", "Paper filters (100)", 3, Decimal("6.9000")),  # not the float 6.8999999999999995
    ]
    assert (data.customer.external_id, data.customer.email) == ("12", "zoe.durand@example.com")
    assert (data.customer.first_name, data.customer.last_name) == ("Zoé", "Durand")
    assert data.customer.marketing_consent is None  # core WooCommerce has no consent


@pytest.mark.parametrize(("woo_status", "status", "paid", "fulfilled", "cancelled"), [
    ("pending", "pending", False, False, False),
    ("on-hold", "pending", False, False, False),
    ("failed", "pending", False, False, False),
    ("processing", "paid", True, False, False),
    ("completed", "fulfilled", True, True, False),
    ("refunded", "paid", True, False, False),
    ("cancelled", "cancelled", False, False, True),
    ("trash", "pending", False, False, False),
    ("my-custom-shipped", "pending", False, False, False),
])
def test_woocommerce_statuses(woo_status, status, paid, fulfilled, cancelled):
    payload = load("woocommerce/order_created.json") | {"status": woo_status,
                                                         "date_completed_gmt": "2026-11-22T08:00:00"}

    data = woocommerce.order_in(payload)

    assert data.status == status
    assert (data.paid_at is not None, data.fulfilled_at is not None, data.cancelled_at is not None) == (
        paid, fulfilled, cancelled)
    if fulfilled:
        assert data.fulfilled_at == at(2026, 11, 22, 8)


def test_woocommerce_guest_has_no_external_id():
    data = woocommerce.order_in(load("woocommerce/order_guest.json"))

    assert data.customer.external_id is None  # customer_id 0
    assert data.customer.email == "renee.martin@example.com"
    assert data.customer.first_name == "Renée"


def test_woocommerce_guest_without_a_valid_email_is_refused_readably():
    payload = load("woocommerce/order_guest.json")
    payload["billing"]["email"] = "renee@"

    with pytest.raises(PayloadError, match="guest order"):
        woocommerce.order_in(payload)


def test_woocommerce_refunds_are_negative_totals_with_either_reason_key():
    refunds = woocommerce.refunds_in(load("woocommerce/order_refunded.json"))

    assert [(r.external_id, r.amount, r.reason) for r in refunds] == [
        ("742", Decimal("20.00"), "Changed mind"),
        ("741", Decimal("10.00"), "Tin dented"),
    ]


def test_woocommerce_zero_refund_is_skipped():
    payload = load("woocommerce/order_refunded.json") | {"refunds": [{"id": 9, "reason": "", "total": "-0.00"}]}

    assert woocommerce.refunds_in(payload) == []


@pytest.mark.parametrize(("site_url", "source", "same"), [
    ("https://shop.example.com", "https://shop.example.com/", True),
    ("https://shop.example.com/", "https://shop.example.com", True),
    ("http://Shop.Example.com", "https://shop.example.com/", True),
    ("https://www.shop.example.com", "https://shop.example.com/", True),
    ("https://example.com/shop", "https://example.com/shop/", True),
    ("https://shop.example.com", "https://staging.shop.example.com/", False),
    ("https://example.com/shop", "https://example.com/", False),
])
def test_woocommerce_source_matching(site_url, source, same):
    assert woocommerce.source_matches(site_url, source) is same


# --- shared -----------------------------------------------------------------------


def test_signature_matches_any_current_secret_over_exact_bytes():
    body = raw("woocommerce/order_created.json")
    signature = sign("old-secret", body)

    assert signature_matches(body, signature, [b"new-secret", b"old-secret"])
    assert not signature_matches(body, signature, [b"new-secret"])
    assert not signature_matches(body + b" ", signature, [b"old-secret"])
    assert not signature_matches(body, signature, [])
    assert not signature_matches(body, "not base64 at all", [b"old-secret"])


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe", b""])
def test_parse_json_object_refuses_readably(body):
    with pytest.raises(PayloadError, match="JSON"):
        parse_json_object(body)


def test_parse_json_object_reads_numbers_as_decimal():
    assert parse_json_object(b'{"price": 6.8999999999999995}') == {"price": Decimal("6.8999999999999995")}


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("referral_code", "ADA-7K3P", "ADA-7K3P"),
    ("_referral_code", " ada-7k3p ", "ada-7k3p"),
    ("ref", 4242, "4242"),
    ("is_vat_exempt", "no", ""),  # not a referral key
    ("referral_code", "", ""),
])
def test_woocommerce_referral_code_comes_from_meta_data(key, value, expected):
    payload = parse_json_object(raw("woocommerce/order_created.json"))
    payload["meta_data"].append({"id": 5199, "key": key, "value": value})

    assert woocommerce.order_in(payload).referral_code == expected


def test_woocommerce_order_without_referral_meta_has_no_referral_code():
    assert woocommerce.order_in(parse_json_object(raw("woocommerce/order_created.json"))).referral_code == ""
