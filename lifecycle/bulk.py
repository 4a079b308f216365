"""Backfilling order history in batches: the same rules as `order_ingest`, set-based.

New orders (the bulk of any import) are written with a handful of multi-row INSERTs per
batch. Anything that needs the careful path (an order we already have, the same order
twice in one batch, a guest record to adopt, a race with a live writer) goes through
`order_ingest` one at a time, so both paths give the same rows. Events written here are
marked `backfill`: they fill the timeline but start no journeys.
"""

from collections.abc import Iterable
from typing import Any

import pydantic
from django.db import IntegrityError, transaction
from django.db.models import F

from . import clock
from .api.errors import pydantic_fields
from .api.outputs import BulkItemOut, BulkOut
from .models import Customer, Event, Order, OrderLine, Tenant
from .schemas import OrderIn
from .services import (
    _STATUS_IMPLIES,
    MILESTONES,
    ServiceError,
    _product_ids,
    order_event_data,
    order_ingest,
    refresh_aggregates,
)

# One transaction per this many orders: large enough that INSERT round trips are few,
# small enough that a conflicting batch retried one by one stays cheap.
BATCH_SIZE = 500


def _validate(items: list[dict[str, Any]], offset: int) -> tuple[list[tuple[int, OrderIn]], list[BulkItemOut]]:
    valid, errors = [], []
    for position, raw in enumerate(items):
        index = offset + position
        try:
            if not isinstance(raw, dict):
                raise TypeError
            valid.append((index, OrderIn.model_validate(raw)))
        except pydantic.ValidationError as exc:
            fields = pydantic_fields(exc)
            first, messages = next(iter(fields.items()))
            errors.append(BulkItemOut(index=index, external_id=raw.get("external_id") if isinstance(raw, dict) else None,
                                      result="error", error={"code": "validation_failed",
                                                            "message": f"{first} {messages[0]}", "fields": fields}))
        except TypeError:
            errors.append(BulkItemOut(index=index, result="error", error={
                "code": "validation_failed", "message": "each order must be a JSON object", "fields": {}}))
    return valid, errors


def orders_bulk_ingest(*, tenant: Tenant, items: list[dict[str, Any]], backfill: bool = True) -> BulkOut:
    """Validate and write up to any number of orders; one bad order never stops the others."""
    results: list[BulkItemOut] = []
    for start in range(0, len(items), BATCH_SIZE):
        valid, errors = _validate(items[start:start + BATCH_SIZE], start)
        results.extend(errors)
        results.extend(_write_batch(tenant, valid, backfill))
    results.sort(key=lambda r: r.index)
    counts = {kind: sum(1 for r in results if r.result == kind) for kind in ("created", "updated", "unchanged", "error")}
    return BulkOut(created=counts["created"], updated=counts["updated"], unchanged=counts["unchanged"],
                   errors=counts["error"], results=results)


def _one_by_one(tenant: Tenant, items: Iterable[tuple[int, OrderIn]], backfill: bool) -> list[BulkItemOut]:
    out = []
    for index, data in items:
        try:
            result = order_ingest(tenant=tenant, data=data, source=Order.Source.IMPORT, backfill=backfill)
        except ServiceError as exc:
            out.append(BulkItemOut(index=index, external_id=data.external_id, result="error",
                                   error={"code": exc.code, "message": exc.message, "fields": exc.fields}))
            continue
        kind = "created" if result.created else "updated" if result.changed else "unchanged"
        out.append(BulkItemOut(index=index, external_id=data.external_id, result=kind))
    return out


def _write_batch(tenant: Tenant, valid: list[tuple[int, OrderIn]], backfill: bool) -> list[BulkItemOut]:
    if not valid:
        return []
    try:
        with transaction.atomic():
            fast, slow = _fast_insert(tenant, valid, backfill)
    except IntegrityError:
        # A live writer created one of these rows meanwhile: take the careful path for all.
        return _one_by_one(tenant, valid, backfill)
    return fast + _one_by_one(tenant, slow, backfill)


def _fast_insert(tenant: Tenant, valid: list[tuple[int, OrderIn]], backfill: bool):
    orders_qs = Order.objects.for_tenant(tenant)
    customers_qs = Customer.objects.for_tenant(tenant)
    existing = set(orders_qs.filter(external_id__in=[d.external_id for _, d in valid]).values_list("external_id", flat=True))
    seen: set[str] = set()
    fresh, slow = [], []
    for index, data in valid:
        if data.external_id in existing or data.external_id in seen:
            slow.append((index, data))
        else:
            seen.add(data.external_id)
            fresh.append((index, data))

    ext_ids = {d.customer.external_id for _, d in fresh if d.customer.external_id}
    emails = {d.customer.email for _, d in fresh if d.customer.email}
    by_ext = {c.external_id: c for c in customers_qs.filter(external_id__in=ext_ids)}
    by_email: dict[str, Customer] = {}
    for c in customers_qs.filter(email__in=emails).order_by(F("external_id").asc(nulls_last=True), "-pk"):
        by_email[c.email] = c
    new_customers: dict[str, Customer] = {}
    resolved: list[tuple[int, OrderIn, str]] = []  # (index, data, customer key)
    now = clock.now()
    for index, data in fresh:
        c = data.customer
        if c.external_id and c.external_id in by_ext:
            key = f"x:{c.external_id}"
        elif c.external_id:
            guest = by_email.get(c.email) if c.email else None
            if guest is not None and guest.external_id is None:
                slow.append((index, data))  # adopting a guest record: careful path
                continue
            key = f"x:{c.external_id}"
            if key not in new_customers:
                new_customers[key] = _new_customer(tenant, c, now)
        elif c.email in by_email:
            key = f"e:{c.email}"
        else:
            key = f"e:{c.email}"
            if key not in new_customers:
                new_customers[key] = _new_customer(tenant, c, now)
        resolved.append((index, data, key))

    if new_customers:
        customers_qs.bulk_create(new_customers.values())

    def customer_for(key: str) -> Customer:
        if key in new_customers:
            return new_customers[key]
        kind, value = key.split(":", 1)
        return by_ext[value] if kind == "x" else by_email[value]

    product_ids = _product_ids(tenant, [line for _, d, _ in resolved for line in d.lines])
    orders = []
    for _, data, key in resolved:
        order = Order(
            tenant=tenant, external_id=data.external_id, number=data.number, customer=customer_for(key),
            currency=data.currency, subtotal=data.subtotal, discount_total=data.discount_total, total=data.total,
            discount_codes=data.discount_codes, landing_site=data.landing_site, referring_site=data.referring_site,
            referral_code=data.referral_code, cancel_reason=data.cancel_reason, source=Order.Source.IMPORT,
            source_updated_at=data.updated_at, placed_at=data.placed_at or now,
        )
        implied = _STATUS_IMPLIES[data.status]
        for field in ("paid_at", "fulfilled_at", "delivered_at", "cancelled_at"):
            value = getattr(data, field)
            if value is not None or field in implied:
                setattr(order, field, value or (order.placed_at if field == "paid_at" else now))
        order.status = order.derive_status()
        orders.append(order)
    orders_qs.bulk_create(orders)

    lines, events = [], []
    processed_at = now if backfill else None  # backfilled history starts nothing
    for order, (_, data, _) in zip(orders, resolved, strict=True):
        for position, line in enumerate(data.lines):
            lines.append(OrderLine(
                tenant=tenant, order=order, position=position, external_id=line.external_id,
                product_external_id=line.product_external_id, product_id=product_ids.get(line.product_external_id),
                sku=line.sku, title=line.title, quantity=line.quantity, unit_price=line.unit_price,
            ))
        payload = order_event_data(order)
        events.append(Event(tenant=tenant, type="order.placed", occurred_at=order.placed_at, customer=order.customer,
                            order=order, data=payload, dedupe_key=f"order.placed:{order.pk}", backfill=backfill, processed_at=processed_at))
        for field, event_type in MILESTONES:
            at = getattr(order, field)
            if at:
                events.append(Event(tenant=tenant, type=event_type, occurred_at=at, customer=order.customer,
                                    order=order, data=payload, dedupe_key=f"{event_type}:{order.pk}", backfill=backfill, processed_at=processed_at))
    for customer in new_customers.values():
        events.append(Event(tenant=tenant, type="customer.created", occurred_at=now, customer=customer,
                            dedupe_key=f"customer.created:{customer.pk}", backfill=backfill, processed_at=processed_at))
    OrderLine.objects.for_tenant(tenant).bulk_create(lines)
    Event.objects.for_tenant(tenant).bulk_create(events)
    refresh_aggregates(tenant, {order.customer_id for order in orders})
    fast = [BulkItemOut(index=index, external_id=data.external_id, result="created") for index, data, _ in resolved]
    return fast, slow


def _new_customer(tenant: Tenant, data, now) -> Customer:
    customer = Customer(
        tenant=tenant, external_id=data.external_id, email=data.email or "", first_name=data.first_name,
        last_name=data.last_name, locale=data.locale, time_zone=data.time_zone,
    )
    if data.marketing_consent is not None:
        customer.marketing_consent = data.marketing_consent
        customer.consent_updated_at = data.consent_updated_at or now
        customer.consent_source = Customer.ConsentSource.API
    return customer
