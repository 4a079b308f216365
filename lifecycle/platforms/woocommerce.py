"""WooCommerce webhook payloads → OrderIn / RefundIn. Pure functions.

The payload is the REST order resource as it is *when sent*, not when triggered (see
shared/reference/storefront-formats.md §2 and §6): money is decimal strings (except the
float line `price`, never read), `*_gmt` times are UTC without a `Z`, `billing.email` is
the only email, `customer_id` 0 is a guest, and core has no marketing consent at all.
"""

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import urlsplit

from lifecycle.inputs import CustomerIn, OrderIn, ProductIn, RefundIn

from ..money import MONEY_DECIMAL_PLACES
from ..numbers import whole_number
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
    url_or_empty,
    when,
)

ORDER_TOPICS = frozenset({"order.created", "order.updated"})
# The product's page (permalink) and image for the review request.
PRODUCT_TOPICS = frozenset({"product.created", "product.updated"})

# WooCommerce status → (our status, paid?). A refunded order was paid: its refunds[]
# carry the money back and the order becomes refunded once they cover the total.
# `pending`, `on-hold` and `failed` are not paid yet; `trash` and custom statuses add no
# fact (an order never moves backwards, so "pending" there changes nothing).
STATUSES = {
    "pending": "pending",
    "on-hold": "pending",
    "failed": "pending",
    "processing": "paid",
    "completed": "fulfilled",
    "refunded": "paid",
    "cancelled": "cancelled",
}
_UNIT_PRICE_PLACES = Decimal(1).scaleb(-MONEY_DECIMAL_PLACES)
# meta_data keys of WooCommerce's own order attribution (WC ≥ 8.5).
LANDING_META = "_wc_order_attribution_session_entry"
REFERRER_META = "_wc_order_attribution_referrer"
# meta_data keys where referral plugins and custom checkout fields put the code.
REFERRAL_META = ("referral_code", "_referral_code", "ref")


def _gmt(payload: dict[str, Any], field: str):
    return when(payload.get(field), field, naive_is_utc=True)


def customer_from_order(payload: dict[str, Any]) -> CustomerIn:
    """The billing contact. Consent stays None: core WooCommerce never tells us, and an
    order is not consent."""
    billing = obj(payload.get("billing"))
    customer_id = external_id(payload.get("customer_id"))
    email = email_or_none(billing.get("email"))
    if customer_id is None and email is None:
        raise PayloadError("no customer: a guest order (customer_id 0) without a valid billing.email")
    return CustomerIn(
        external_id=customer_id,
        email=email,
        first_name=text(billing.get("first_name"), 150),
        last_name=text(billing.get("last_name"), 150),
        marketing_consent=None,
    )


def _line(item: dict[str, Any], index: int) -> dict[str, Any] | None:
    count = quantity(item.get("quantity"), f"line_items.{index}.quantity")
    if count < 1:
        # Kept out of the order's lines, never silently: the delivery's detail says so (see shopify._line).
        note(f"line_items.{index} (id {item.get('id')}) skipped: quantity {count}")
        return None
    # `price` is a float of total/quantity (after discount): float artefacts and the wrong
    # meaning. The list price is subtotal/quantity, rounded to what the column holds.
    subtotal = money(item.get("subtotal"), f"line_items.{index}.subtotal")
    return {
        "external_id": external_id(item.get("id")) or "",
        "product_external_id": external_id(item.get("product_id")) or "",
        "sku": text(item.get("sku"), 255),
        "title": text(item.get("name"), 500),
        "quantity": count,
        "unit_price": (subtotal / count).quantize(_UNIT_PRICE_PLACES, rounding=ROUND_HALF_EVEN),
        # The line's image is the product's (the variation's when it has one); its page comes with
        # product.* webhooks, or product_links() below.
        "product_image_url": url_or_empty(obj(item.get("image")).get("src")),
    }


def _meta(payload: dict[str, Any], key: str) -> Any:
    return next((entry.get("value") for entry in items(payload.get("meta_data")) if entry.get("key") == key), None)


def _referral_code(payload: dict[str, Any]) -> str:
    for key in REFERRAL_META:
        value = _meta(payload, key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return text(value, 64)
    return ""


def order_in(payload: dict[str, Any]) -> OrderIn:
    """An order resource (order.created / order.updated) as OrderIn.

    `date_modified_gmt` is passed as `updated_at`: WooCommerce builds the payload at
    send time from a background queue, so an older state can arrive after a newer one.
    """
    order_id = external_id(payload.get("id"))
    if order_id is None:
        raise PayloadError("the order has no id")
    woo_status = payload.get("status")
    status = STATUSES.get(woo_status, "pending")
    paid = status in ("paid", "fulfilled")
    lines_in = items(payload.get("line_items"))
    lines = [line for index, item in enumerate(lines_in) if (line := _line(item, index))]
    # No order-level subtotal in WooCommerce: the sum of line subtotals (before discounts).
    subtotal = sum((money(item.get("subtotal"), f"line_items.{i}.subtotal") for i, item in enumerate(lines_in)),
                   Decimal("0"))
    updated_at = _gmt(payload, "date_modified_gmt")
    return OrderIn.model_validate({
        "external_id": order_id,
        "number": text(payload.get("number") or order_id, 64),
        "customer": customer_from_order(payload),
        "currency": payload.get("currency"),
        "status": status,
        "placed_at": _gmt(payload, "date_created_gmt"),
        "paid_at": _gmt(payload, "date_paid_gmt") if paid else None,
        # Marked complete by the merchant: the best proxy for "shipped" core offers.
        "fulfilled_at": _gmt(payload, "date_completed_gmt") if status == "fulfilled" else None,
        # No date_cancelled in WooCommerce; the modification that carried the status is closest.
        "cancelled_at": updated_at if status == "cancelled" else None,
        "subtotal": subtotal,
        "discount_total": payload.get("discount_total") or "0",
        "total": payload.get("total"),
        "discount_codes": [text(c["code"], 100) for c in items(payload.get("coupon_lines")) if c.get("code")][:50],
        "landing_site": text(_meta(payload, LANDING_META), 2000),
        "referring_site": text(_meta(payload, REFERRER_META), 2000),
        "referral_code": _referral_code(payload),
        "lines": lines,
        "updated_at": updated_at,
    })


def refunds_in(payload: dict[str, Any]) -> list[RefundIn]:
    """refunds[] as RefundIn, one per refund id. Totals are negative strings ("-10.00").

    Older controllers name the reason `refund` instead of `reason`. The entries carry no
    date, so the service records the time we learned of them.
    """
    found = []
    for index, entry in enumerate(items(payload.get("refunds"))):
        refund_id = external_id(entry.get("id"))
        if refund_id is None:
            raise PayloadError(f"refunds.{index} has no id")
        amount = -money(entry.get("total"), f"refunds.{index}.total")
        if amount <= 0:
            continue  # a zero refund (items restocked, no money back) is not a refund of money
        found.append(RefundIn(external_id=refund_id, amount=amount,
                              reason=text(entry.get("reason") or entry.get("refund"), 500)))
    return found


def _site(url: str) -> tuple[str, str]:
    parts = urlsplit(url.strip())
    return (parts.netloc.lower().removeprefix("www."), parts.path.rstrip("/"))


def source_matches(site_url: str, source: str) -> bool:
    """Does X-WC-Webhook-Source (`home_url('/')`) name the connected site?

    Scheme, `www.` and a trailing slash are ignored: a site that moved to https, or was
    connected as "https://shop.example.com" while WordPress says ".../", is the same site.
    A staging copy of the WordPress database (same webhooks, same secret) is not.
    """
    return _site(site_url) == _site(source)


def product_in(payload: dict[str, Any]) -> ProductIn:
    """A product resource (product.created, product.updated) as ProductIn: its permalink while it is
    published (else the url is empty, which clears a page that would now be a 404), its first image."""
    product_id = external_id(payload.get("id"))
    if not product_id:
        raise PayloadError("the product has no id")
    url = url_or_empty(payload.get("permalink")) if payload.get("status", "publish") == "publish" else ""
    image = next((src for src in (url_or_empty(i.get("src")) for i in items(payload.get("images"))) if src), "")
    # Its categories are the store's collections (a journey's condition: bought from a collection).
    collections = sorted({name for c in items(payload.get("categories")) for name in (
        text(c.get("slug"), 255), text(c.get("name"), 255)) if name})[:100]
    return ProductIn(external_id=product_id, title=text(payload.get("name"), 500), sku=text(payload.get("sku"), 255),
                     url=url, image_url=image, collections=collections)


def product_links(data: OrderIn, site_url: str, *, with_pages: set[str] = frozenset()) -> OrderIn:
    """Give each line that names a product but no page WordPress's own link to it
    (`/?post_type=product&p=<id>`, which redirects to the permalink): order payloads carry no
    permalink, and a store may not send product webhooks. Products in `with_pages` already have
    a page (a product webhook's permalink): their lines are left alone."""
    site = site_url.rstrip("/")
    if not site:
        return data
    lines = [line if line.product_url or line.product_external_id in with_pages
             or not _ascii_digits(line.product_external_id) else line.model_copy(
        update={"product_url": url_or_empty(f"{site}/?post_type=product&p={line.product_external_id}")})
        for line in data.lines]
    return data.model_copy(update={"lines": lines})


def _ascii_digits(value: str) -> bool:
    return whole_number(value) is not None
