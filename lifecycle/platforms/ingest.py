"""Writing a verified webhook delivery: the raw body and everything it causes, one transaction.

The view verifies the signature and names the tenant's connection; from there,
`webhook_delivery_ingest` stores a `WebhookDelivery` row in the same transaction as the
orders, customers and refunds the payload changes. A crash halfway leaves neither, so
the platform's retry is processed afresh instead of being taken for a duplicate.
"""

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import pydantic
from django.db import DataError, IntegrityError, transaction

from lifecycle.inputs import RefundIn

from .. import clock
from ..api.errors import pydantic_fields
from ..customers import customer_upsert
from ..errors import ServiceError
from ..locks import advisory_lock
from ..models import Customer, Order, Product, StoreConnection, WebhookDelivery
from ..orders import order_ingest, order_mark, order_placeholder, product_upsert
from ..refunds import refund_record
from . import shopify, woocommerce
from .common import PayloadError, collecting_notes, parse_json_object

logger = logging.getLogger(__name__)

Status = WebhookDelivery.Status


@dataclasses.dataclass(frozen=True)
class Received:
    """A delivery whose signature verified, as the view hands it over."""

    connection: StoreConnection
    topic: str
    # Unique per connection: a second delivery with the same key is the same delivery.
    dedupe_key: str
    delivery_id: str
    body: bytes
    # Set when the view already knows the delivery is signed but not for us to act on
    # (a WooCommerce staging copy): stored as ignored, never parsed.
    ignore_reason: str = ""


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: str
    detail: str = ""
    # The key was already stored as processed or ignored: nothing was done this time.
    duplicate: bool = False


# A platform's handler: map the payload, call the services, say what happened.
Handler = Callable[[StoreConnection, str, dict[str, Any]], tuple[str, str]]


def webhook_delivery_ingest(*, received: Received, handle: Handler) -> Outcome:
    """Store a verified delivery and apply it, once per (tenant, connection, dedupe key).

    One transaction, holding an advisory lock on the dedupe key so that concurrent
    copies of one delivery queue up, and the second finds the first's row. A key
    already processed or ignored is a duplicate: nothing happens. A key stored as
    failed is tried again, and its row updated, so a retry after a fix goes through.
    Payloads we cannot map, or that the services refuse, are kept as `failed` with a
    readable `detail` and roll back whatever they had written; nothing raises.
    """
    conn = received.connection
    with transaction.atomic():
        advisory_lock(conn.tenant_id, "webhook", f"{conn.pk}:{received.dedupe_key}")
        existing = (WebhookDelivery.objects.for_tenant(conn.tenant_id)
                    .filter(connection=conn, dedupe_key=received.dedupe_key).first())
        if existing is not None and existing.status != Status.FAILED:
            return Outcome(status=existing.status, detail=existing.detail, duplicate=True)
        if received.ignore_reason:
            status, detail = Status.IGNORED, received.ignore_reason
        else:
            status, detail = _apply(conn, received, handle)
        if existing is None:
            WebhookDelivery.objects.for_tenant(conn.tenant_id).create(
                tenant_id=conn.tenant_id, connection=conn, topic=received.topic, dedupe_key=received.dedupe_key,
                delivery_id=received.delivery_id, body=received.body, status=status, detail=detail,
                received_at=clock.now(),
            )
        else:
            # received_at stays the first attempt's; the row now says how the last one went.
            existing.status, existing.detail, existing.body = status, detail, received.body
            existing.delivery_id = received.delivery_id or existing.delivery_id
            existing.save(update_fields=["status", "detail", "body", "delivery_id"])
    return Outcome(status=status, detail=detail)


def _apply(conn: StoreConnection, received: Received, handle: Handler) -> tuple[str, str]:
    try:
        payload = parse_json_object(received.body)
    except PayloadError as exc:
        return Status.FAILED, str(exc)
    try:
        # A savepoint: a failure undoes the payload's writes but keeps the delivery row.
        with transaction.atomic(), collecting_notes() as notes:
            status, detail = handle(conn, received.topic, payload)
        # What the mapping left out (a time out of range, a line with a negative quantity) is said here.
        return status, "; ".join([detail, *notes]) if notes else detail
    except pydantic.ValidationError as exc:
        fields = pydantic_fields(exc)
        return Status.FAILED, "invalid payload: " + "; ".join(
            f"{field} {message}" for field, messages in fields.items() for message in messages)
    except PayloadError as exc:
        return Status.FAILED, f"invalid payload: {exc}"
    except ServiceError as exc:
        return Status.FAILED, f"{exc.code}: {exc.message}"
    except (DataError, IntegrityError) as exc:
        logger.exception("webhook %s on connection %s refused by the database", received.topic, conn.pk)
        return Status.FAILED, f"the database refused the payload: {exc}"
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        # A shape the mapping did not expect: keep the body for a replay once it is fixed.
        logger.exception("webhook %s on connection %s has an unexpected shape", received.topic, conn.pk)
        return Status.FAILED, f"unexpected payload shape: {type(exc).__name__}: {exc}"


def _record_refunds(conn: StoreConnection, order_external_id: str, refunds: list[RefundIn], source: str) -> list[str]:
    """Refunds embedded in an order payload; one the service refuses is noted, not fatal,
    since the order itself was recorded and its refunds/create has its own delivery."""
    notes = []
    for refund in refunds:
        try:
            _, created = refund_record(tenant=conn.tenant, order_external_id=order_external_id, data=refund,
                                       source=source)
        except ServiceError as exc:
            notes.append(f"refund {refund.external_id} not recorded: {exc.message}")
        else:
            if created:
                notes.append(f"refund {refund.external_id} recorded")
    return notes


def _order_detail(external_id: str, created: bool, changed: bool, notes: list[str]) -> str:
    what = "created" if created else "updated" if changed else "unchanged"
    return "; ".join([f"order {external_id} {what}", *notes])


def shopify_handle(conn: StoreConnection, topic: str, payload: dict[str, Any]) -> tuple[str, str]:
    """Apply one Shopify topic. Each payload is mapped in full before anything is written."""
    tenant = conn.tenant
    if topic in shopify.ORDER_TOPICS:
        if shopify.is_test(payload):
            # Test orders (the admin's "Send test notification", test gateways) are kept
            # raw but not ingested: as orders they would start journeys that email the
            # address on them and count in repeat-purchase and revenue figures.
            return Status.IGNORED, "test order (test: true): stored, not ingested"
        data = shopify.order_in(payload, topic=topic)
        refunds = shopify.order_refunds(payload)
        result = order_ingest(tenant=tenant, data=data, source=Order.Source.SHOPIFY)
        notes = _record_refunds(conn, data.external_id, refunds, Order.Source.SHOPIFY)
        return Status.PROCESSED, _order_detail(data.external_id, result.created, result.changed, notes)
    if topic == shopify.REFUND_TOPIC:
        found = shopify.refund_in(payload)
        if found.test:
            return Status.IGNORED, "refund through a test gateway: stored, not ingested"
        if found.refund is None:
            return Status.IGNORED, "refund moved no money (no successful refund transaction)"
        # Refunds can beat their order here: a placeholder holds them until it arrives.
        _, created = refund_record(
            tenant=tenant, order_external_id=found.order_external_id, data=found.refund, source=Order.Source.SHOPIFY,
            create_missing_order_in=found.currency or tenant.currency,
        )
        what = "recorded" if created else "already recorded"
        return Status.PROCESSED, f"refund {found.refund.external_id} on order {found.order_external_id} {what}"
    if topic in shopify.CUSTOMER_TOPICS:
        customer, created = customer_upsert(tenant=tenant, data=shopify.customer_in(payload),
                                            source=Customer.ConsentSource.SHOPIFY)
        return Status.PROCESSED, f"customer {customer.pk} {'created' if created else 'updated'}"
    if topic in shopify.PRODUCT_TOPICS:
        product, created = product_upsert(tenant=tenant, data=shopify.product_in(payload, shop_domain=conn.shop_domain))
        return Status.PROCESSED, f"product {product.external_id} {'created' if created else 'updated'}"
    if topic == shopify.FULFILLMENT_EVENT_TOPIC:
        event = shopify.fulfillment_event(payload)
        if event.status != "delivered":
            return Status.IGNORED, f"fulfillment event {event.status!r}: only 'delivered' is a milestone we record"
        # The carrier can report delivery before the order's own payload reached us. The
        # placeholder takes the store's currency until the order payload says otherwise.
        advisory_lock(tenant.pk, "order", event.order_external_id)
        order_placeholder(tenant=tenant, external_id=event.order_external_id, currency=tenant.currency,
                          source=Order.Source.SHOPIFY)
        _, changed = order_mark(tenant=tenant, external_id=event.order_external_id, milestone="delivered",
                                at=event.happened_at)
        what = "delivered" if changed else "already delivered"
        return Status.PROCESSED, f"order {event.order_external_id} {what}"
    return Status.IGNORED, f"topic {topic!r} is not one we act on"


def woocommerce_handle(conn: StoreConnection, topic: str, payload: dict[str, Any]) -> tuple[str, str]:
    """Apply order.created / order.updated: the order's state when sent, refunds included."""
    if topic in woocommerce.PRODUCT_TOPICS:
        product, created = product_upsert(tenant=conn.tenant, data=woocommerce.product_in(payload))
        return Status.PROCESSED, f"product {product.external_id} {'created' if created else 'updated'}"
    if topic not in woocommerce.ORDER_TOPICS:
        return Status.IGNORED, f"topic {topic!r} is not one we act on"
    data = woocommerce.order_in(payload)
    with_pages = set(Product.objects.for_tenant(conn.tenant_id).filter(
        external_id__in=[line.product_external_id for line in data.lines if line.product_external_id])
        .exclude(url="").values_list("external_id", flat=True))
    data = woocommerce.product_links(data, conn.site_url, with_pages=with_pages)
    refunds = woocommerce.refunds_in(payload)
    result = order_ingest(tenant=conn.tenant, data=data, source=Order.Source.WOOCOMMERCE)
    notes = _record_refunds(conn, data.external_id, refunds, Order.Source.WOOCOMMERCE)
    return Status.PROCESSED, _order_detail(data.external_id, result.created, result.changed, notes)
