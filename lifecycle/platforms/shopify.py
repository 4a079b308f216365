"""Shopify webhook payloads → OrderIn / CustomerIn / RefundIn. Pure functions.

Shapes are the REST Admin resources Shopify posts at top level (see
shared/reference/storefront-formats.md §1 and §6): prices are decimal strings, ids are
64-bit integers (kept as strings), times carry the shop's UTC offset, and a guest
checkout has no `customer` object at all.
"""

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from lifecycle.inputs import CustomerIn, OrderIn, ProductIn, RefundIn

from ..money import is_currency
from .common import (
    PayloadError,
    email_or_none,
    external_id,
    items,
    money,
    note,
    obj,
    quantity,
    text,
    unwrap,
    url_or_empty,
    when,
)

ORDER_TOPICS = frozenset({"orders/create", "orders/paid", "orders/updated", "orders/fulfilled", "orders/cancelled"})
CUSTOMER_TOPICS = frozenset({"customers/create", "customers/update"})
REFUND_TOPIC = "refunds/create"
FULFILLMENT_EVENT_TOPIC = "fulfillment_events/create"
# The product's page (https://<shop>/products/<handle>) and image for the review request.
PRODUCT_TOPICS = frozenset({"products/create", "products/update"})

# Money has changed hands. `partially_paid` has not finished paying and `authorized` has
# not been captured: post-purchase journeys wait for these three.
PAID_FINANCIAL_STATUSES = frozenset({"paid", "partially_refunded", "refunded"})
# email_marketing_consent.state → consent. `pending` is a double opt-in not yet
# confirmed, so not consent. `redacted` (and any state Shopify adds later) is unknown.
CONSENT_BY_STATE = {"subscribed": True, "not_subscribed": False, "unsubscribed": False, "pending": False}
# note_attributes (cart attributes) where referral apps commonly put the code.
REFERRAL_ATTRIBUTES = ("referral_code", "ref")


def is_test(payload: dict[str, Any]) -> bool:
    """Shopify's "Send test notification" and orders paid with a test gateway."""
    return payload.get("test") is True


def consent(customer: dict[str, Any]) -> tuple[bool | None, dt.datetime | None]:
    """(marketing_consent, as of when) from a Customer object.

    The 2022-04 `email_marketing_consent` wins; the deprecated `accepts_marketing`
    boolean is read only when that object is absent (older API versions, old captures).
    """
    current = customer.get("email_marketing_consent")
    if isinstance(current, dict) and current.get("state"):
        return (CONSENT_BY_STATE.get(current["state"]),
                when(current.get("consent_updated_at"), "customer.email_marketing_consent.consent_updated_at"))
    legacy = customer.get("accepts_marketing")
    if isinstance(legacy, bool):
        return legacy, when(customer.get("accepts_marketing_updated_at"), "customer.accepts_marketing_updated_at")
    return None, None


def _accept_language_tag(client_details: dict[str, Any]) -> str:
    header = client_details.get("accept_language")
    if not isinstance(header, str):
        return ""
    return header.split(",")[0].split(";")[0].strip()


def _customer(customer: dict[str, Any], *, emails: tuple[Any, ...], names: dict[str, Any], locale: str) -> CustomerIn:
    customer_id = external_id(customer.get("id"))
    email = email_or_none(*emails)
    if customer_id is None and email is None:
        raise PayloadError("no customer: the payload has no customer id and no valid email address")
    marketing_consent, consent_updated_at = consent(customer)
    return CustomerIn(
        external_id=customer_id,
        email=email,
        first_name=text(customer.get("first_name") or names.get("first_name"), 150),
        last_name=text(customer.get("last_name") or names.get("last_name"), 150),
        locale=text(locale, 35),
        marketing_consent=marketing_consent,
        consent_updated_at=consent_updated_at,
    )


def customer_from_order(payload: dict[str, Any]) -> CustomerIn:
    """The order's customer. A guest has no customer object: the order's own email and
    the billing address name identify them (matched by email)."""
    customer = obj(payload.get("customer"))
    return _customer(
        customer,
        emails=(customer.get("email"), payload.get("email"), payload.get("contact_email")),
        names=obj(payload.get("billing_address")) or obj(payload.get("shipping_address")),
        locale=text(payload.get("customer_locale"), 35) or _accept_language_tag(obj(payload.get("client_details"))),
    )


def customer_in(payload: dict[str, Any]) -> CustomerIn:
    """customers/create and customers/update: the Customer resource at top level."""
    customer = unwrap(payload, "customer")
    return _customer(customer, emails=(customer.get("email"),), names=obj(customer.get("default_address")), locale="")


def _fulfilled_at(payload: dict[str, Any]) -> dt.datetime | None:
    if payload.get("fulfillment_status") != "fulfilled":
        return None
    # All items are out when the last successful fulfillment was made.
    times = [when(f.get("created_at"), "fulfillments.created_at") for f in items(payload.get("fulfillments"))
             if f.get("status") == "success"]
    times = [t for t in times if t is not None]
    return max(times) if times else when(payload.get("updated_at"), "updated_at")


def _referral_code(payload: dict[str, Any]) -> str:
    for attribute in items(payload.get("note_attributes")):
        if attribute.get("name") in REFERRAL_ATTRIBUTES and attribute.get("value"):
            return text(attribute["value"], 64)
    return text(payload.get("landing_site_ref"), 64)


def _line(item: dict[str, Any], index: int) -> dict[str, Any] | None:
    count = quantity(item.get("quantity"), f"line_items.{index}.quantity")
    if count < 1:
        # 0: removed by an order edit (the line stays listed). Below 0: nothing Shopify sends.
        # Either way the order is recorded without the line and the delivery's detail says so:
        # refusing the whole order over one line would lose it, since every retry carries the
        # same payload; the raw body stays on the delivery.
        note(f"line_items.{index} (id {item.get('id')}) skipped: quantity {count}")
        return None
    title = item.get("name") or " - ".join(part for part in (item.get("title"), item.get("variant_title")) if part)
    return {
        "external_id": external_id(item.get("id")) or "",
        "product_external_id": external_id(item.get("product_id")) or "",
        "sku": text(item.get("sku"), 255),
        "title": text(title, 500),
        "quantity": count,
        # The unit price before discounts, as a decimal string; validated as money by OrderIn.
        "unit_price": item.get("price"),
    }


def _status(paid: bool, fulfilled_at: dt.datetime | None, cancelled_at: dt.datetime | None) -> str:
    # "fulfilled" and "paid" imply paid_at in the service; an unpaid order gets its
    # fulfilment or cancellation through the explicit timestamps alone.
    if paid:
        return "fulfilled" if fulfilled_at else "paid"
    return "cancelled" if cancelled_at else "pending"


def order_in(payload: dict[str, Any], *, topic: str = "") -> OrderIn:
    """An Order resource (every orders/* topic) as OrderIn.

    Status follows money, not the topic: orders/create of an unpaid order (bank transfer,
    COD, authorized only) is `pending` and emits no order.paid. Fulfilment and
    cancellation are passed as timestamps, so an order fulfilled before it is paid (COD)
    is fulfilled without being called paid. `updated_at` goes along so that a stale
    delivery (Shopify does not keep order) never overwrites newer fields.
    """
    order_id = external_id(payload.get("id"))
    if order_id is None:
        raise PayloadError("the order has no id")
    paid = payload.get("financial_status") in PAID_FINANCIAL_STATUSES
    updated_at = when(payload.get("updated_at"), "updated_at")
    fulfilled_at = _fulfilled_at(payload)
    cancelled_at = when(payload.get("cancelled_at"), "cancelled_at")
    if cancelled_at is None and payload.get("cancelled_at"):
        # Cancelled at a time we could not use (noted by `when`): still cancelled, as of the update.
        cancelled_at = updated_at
    lines = [line for index, item in enumerate(items(payload.get("line_items"))) if (line := _line(item, index))]
    data = {
        "external_id": order_id,
        "number": text(payload.get("name") or payload.get("order_number"), 64),
        "customer": customer_from_order(payload),
        "currency": payload.get("currency"),
        "status": _status(paid, fulfilled_at, cancelled_at),
        "placed_at": when(payload.get("processed_at"), "processed_at") or when(payload.get("created_at"), "created_at"),
        # orders/paid fires when the order became paid and is retried with the original
        # payload, so its updated_at is the payment time. Otherwise the service takes the
        # time the order was placed (a card payment is paid at checkout).
        "paid_at": updated_at if paid and topic == "orders/paid" else None,
        "fulfilled_at": fulfilled_at,
        "cancelled_at": cancelled_at,
        "cancel_reason": text(payload.get("cancel_reason"), 255) if cancelled_at else "",
        "total": payload.get("total_price"),
        "discount_total": payload.get("total_discounts") or "0",
        "discount_codes": [text(code["code"], 100) for code in items(payload.get("discount_codes")) if code.get("code")][:50],
        "landing_site": text(payload.get("landing_site"), 2000),
        "referring_site": text(payload.get("referring_site"), 2000),
        "referral_code": _referral_code(payload),
        "lines": lines,
        "updated_at": updated_at,
    }
    if payload.get("subtotal_price") is not None:
        data["subtotal"] = payload["subtotal_price"]
    return OrderIn.model_validate(data)


@dataclasses.dataclass(frozen=True)
class Refund:
    order_external_id: str
    # From the refund transactions; None when no transaction names it.
    currency: str | None
    # None when the refund moved no money (a restock only, or every transaction failed).
    refund: RefundIn | None
    # Every money-moving transaction was made with a test gateway.
    test: bool


def refund_in(payload: dict[str, Any], *, order_external_id: str | None = None) -> Refund:
    """A Refund resource (refunds/create, or an entry of an order's `refunds[]`).

    The money is Σ transactions[kind=refund, status=success].amount: refund line
    subtotals leave out shipping refunds and order adjustments.
    """
    refund = unwrap(payload, "refund")
    refund_id = external_id(refund.get("id"))
    order_id = external_id(refund.get("order_id")) or order_external_id
    if refund_id is None or order_id is None:
        raise PayloadError("the refund has no id or no order_id")
    transactions = [t for t in items(refund.get("transactions"))
                    if t.get("kind") == "refund" and t.get("status") == "success"]
    amount = sum((money(t.get("amount"), "transactions.amount") for t in transactions), Decimal("0"))
    currencies = [t["currency"].strip().upper() for t in transactions if isinstance(t.get("currency"), str)]
    currency = next((code for code in currencies if is_currency(code)), None)
    data = None
    if amount > 0:
        data = RefundIn(
            external_id=refund_id,
            amount=amount,
            reason=text(refund.get("note"), 500),
            refunded_at=when(refund.get("processed_at"), "processed_at") or when(refund.get("created_at"), "created_at"),
        )
    return Refund(order_external_id=order_id, currency=currency, refund=data,
                  test=bool(transactions) and all(t.get("test") is True for t in transactions))


def order_refunds(payload: dict[str, Any]) -> list[RefundIn]:
    """The refunds embedded in an order payload that moved real money.

    Recording them too (once per refund id) means a lost refunds/create delivery is
    recovered by the next orders/updated.
    """
    order_id = external_id(payload.get("id"))
    found = [refund_in(entry, order_external_id=order_id) for entry in items(payload.get("refunds"))]
    return [entry.refund for entry in found if entry.refund is not None and not entry.test]


@dataclasses.dataclass(frozen=True)
class FulfillmentEvent:
    order_external_id: str
    # label_printed, in_transit, out_for_delivery, delivered, failure, …
    status: str
    happened_at: dt.datetime | None


def fulfillment_event(payload: dict[str, Any]) -> FulfillmentEvent:
    """fulfillment_events/create: a carrier update on one fulfillment of an order."""
    event = unwrap(payload, "fulfillment_event")
    order_id = external_id(event.get("order_id"))
    if order_id is None:
        raise PayloadError("the fulfillment event has no order_id")
    return FulfillmentEvent(
        order_external_id=order_id,
        status=text(event.get("status"), 64),
        happened_at=when(event.get("happened_at"), "happened_at") or when(event.get("created_at"), "created_at"),
    )


def product_in(payload: dict[str, Any], *, shop_domain: str) -> ProductIn:
    """A Product resource (products/create, products/update) as ProductIn.

    Its page is https://<shop domain>/products/<handle> (the myshopify.com domain forwards to the
    store's own), only while the product is active and published to the online store; else the
    url is empty, which clears a page that would now be a 404. The image is the featured one.
    """
    product_id = external_id(payload.get("id"))
    if not product_id:
        raise PayloadError("the product has no id")
    handle = payload.get("handle") if isinstance(payload.get("handle"), str) else ""
    live = payload.get("status", "active") == "active" and payload.get("published_at") is not None
    url = url_or_empty(f"https://{shop_domain}/products/{quote(handle.strip())}") if handle.strip() and live else ""
    images = [obj(payload.get("image")), *sorted(items(payload.get("images")), key=lambda i: _position(i))]
    image = next((src for src in (url_or_empty(i.get("src")) for i in images) if src), "")
    # A SKU names the product only when it has one variant; else each variant has its own.
    skus = [text(v.get("sku"), 255) for v in items(payload.get("variants"))]
    # Its product type and tags stand for collections (a journey's condition: bought from a collection):
    # the product webhook does not name a product's collections.
    tags = payload.get("tags") if isinstance(payload.get("tags"), str) else ""
    collections = sorted({t for t in (text(payload.get("product_type"), 255), *(
        text(tag.strip(), 255) for tag in tags.split(","))) if t})[:100]
    return ProductIn(external_id=product_id, title=text(payload.get("title"), 500),
                     sku=skus[0] if len(skus) == 1 else "", url=url, image_url=image, collections=collections)


def _position(image: dict[str, Any]) -> int:
    position = image.get("position")
    return position if isinstance(position, int) and not isinstance(position, bool) else 1 << 30
