"""Backfilling order history in batches: the same rules as `order_ingest`, set-based.

New orders (the bulk of any import) are written with a handful of multi-row INSERTs per
batch. Anything that needs the careful path (an order we already have, the same order
twice in one batch, a guest record to adopt, a race with a live writer) goes through
`order_ingest` one at a time, so both paths give the same rows. Events written here are
marked `backfill`: they fill the timeline but start no journeys.
"""

import dataclasses
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import pydantic
from django.db import IntegrityError, connection, transaction

from . import clock
from .aggregates import order_share, refresh_aggregates
from .api.errors import pydantic_fields
from .api.outputs import BulkItemOut, BulkOut
from .errors import ServiceError
from .inputs import OrderIn
from .models import Customer, Order, Tenant
from .orders import MILESTONES, STATUS_IMPLIES, line_product_ids, order_event_data, order_ingest
from .tables import CUSTOMERS, EVENTS, LINES, ORDERS

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


_CUSTOMERS_SQL = (
    f"SELECT id, external_id, email FROM {Customer._meta.db_table} WHERE tenant_id = %s "  # noqa: S608
    "AND (external_id IN ({ext_ids}) OR email IN ({emails})) "
    # Per email, the customer `_customer_find` picks for an email alone comes first.
    "ORDER BY email, external_id IS NULL, external_id, id"
)
_EXISTING_ORDERS_SQL = (
    f"SELECT external_id FROM {Order._meta.db_table} WHERE tenant_id = %s AND external_id IN ({{ext_ids}})"  # noqa: S608
)


def _placeholders(values) -> str:
    return ", ".join(["%s"] * len(values)) or "NULL"


@dataclasses.dataclass
class _KnownCustomers:
    """The batch's customers already in the store: by external id, the first by email (as
    `_customer_find` picks for an email alone), and the emails that have a guest record."""

    by_ext: dict[str, int] = dataclasses.field(default_factory=dict)
    first_by_email: dict[str, int] = dataclasses.field(default_factory=dict)
    guests: set[str] = dataclasses.field(default_factory=set)

    def id_of(self, key: str) -> int:
        kind, value = key.split(":", 1)
        return self.by_ext[value] if kind == "x" else self.first_by_email[value]

    def learn(self, key: str, pk: int) -> None:
        kind, value = key.split(":", 1)
        (self.by_ext if kind == "x" else self.first_by_email)[value] = pk


def _fast_insert(tenant: Tenant, valid: list[tuple[int, OrderIn]], backfill: bool):
    """New orders of new or unchanged customers, in one INSERT per table; the rest is returned
    for the careful path. Rows are written from plain values (rows.Table.insert_dicts): building
    a model instance per line and event, and Django's bulk_create preparing every value through
    its compiler, were three quarters of this path's CPU."""
    fresh, slow = _new_orders(tenant, valid)
    known = _known_customers(tenant, fresh)
    now = clock.now()
    new_customers, resolved = _resolve_customers(fresh, known, now, slow)
    orders = [_order_row(tenant, data, now) for _, data, _ in resolved]
    _insert_customers(tenant, orders, resolved, new_customers, known)
    for order, (_, _, key) in zip(orders, resolved, strict=True):
        order.customer_id = known.id_of(key)
    ORDERS.insert(orders)
    lines, events = _line_and_event_rows(tenant, orders, resolved, backfill, now)
    processed_at = now if backfill else None  # backfilled history starts nothing
    for key in new_customers:
        pk = known.id_of(key)
        events.append({"tenant_id": tenant.pk, "type": "customer.created", "occurred_at": now, "customer_id": pk,
                       "data": {}, "dedupe_key": f"customer.created:{pk}", "backfill": backfill,
                       "processed_at": processed_at})
    LINES.insert_dicts(lines)
    EVENTS.insert_dicts(events)
    new_ids = {known.id_of(key) for key in new_customers}
    refresh_aggregates(tenant, {order.customer_id for order in orders} - new_ids)
    fast = [BulkItemOut(index=index, external_id=data.external_id, result="created") for index, data, _ in resolved]
    return fast, slow


def _new_orders(tenant: Tenant, valid: list[tuple[int, OrderIn]]) -> tuple[list, list]:
    """The batch's orders the store does not have yet (each external id once), and the others."""
    ext_ids = [d.external_id for _, d in valid]
    with connection.cursor() as cursor:
        cursor.execute(_EXISTING_ORDERS_SQL.format(ext_ids=_placeholders(ext_ids)), [tenant.pk, *ext_ids])
        existing = {ext for (ext,) in cursor.fetchall()}
    seen: set[str] = set()
    fresh, slow = [], []
    for index, data in valid:
        if data.external_id in existing or data.external_id in seen:
            slow.append((index, data))
        else:
            seen.add(data.external_id)
            fresh.append((index, data))
    return fresh, slow


def _known_customers(tenant: Tenant, fresh: list[tuple[int, OrderIn]]) -> _KnownCustomers:
    customer_ext_ids = sorted({d.customer.external_id for _, d in fresh if d.customer.external_id})
    emails = sorted({d.customer.email for _, d in fresh if d.customer.email})
    known = _KnownCustomers()
    if customer_ext_ids or emails:
        with connection.cursor() as cursor:
            cursor.execute(
                _CUSTOMERS_SQL.format(ext_ids=_placeholders(customer_ext_ids), emails=_placeholders(emails)),
                [tenant.pk, *customer_ext_ids, *emails],
            )
            for pk, ext, email in cursor.fetchall():
                if ext is not None:
                    known.by_ext[ext] = pk
                else:
                    known.guests.add(email)
                known.first_by_email.setdefault(email, pk)
    return known


def _resolve_customers(fresh: list[tuple[int, OrderIn]], known: _KnownCustomers, now, slow: list):
    """Each fresh order's customer key, and the rows of the customers to create. An order that would
    adopt a guest record goes to `slow` (the careful path)."""
    new_customers: dict[str, dict[str, Any]] = {}  # customer key -> row
    resolved: list[tuple[int, OrderIn, str]] = []  # (index, data, customer key)
    for index, data in fresh:
        c = data.customer
        if c.external_id:
            key = f"x:{c.external_id}"
            if c.external_id not in known.by_ext:
                if c.email and c.email in known.guests:
                    slow.append((index, data))  # adopting a guest record: careful path
                    continue
                new_customers.setdefault(key, _new_customer(c, now))
        elif c.email in known.first_by_email:
            key = f"e:{c.email}"
        else:
            key = f"e:{c.email}"
            new_customers.setdefault(key, _new_customer(c, now))
        resolved.append((index, data, key))
    return new_customers, resolved


def _order_row(tenant: Tenant, data: OrderIn, now) -> Order:
    order = Order(
        tenant_id=tenant.pk, external_id=data.external_id, number=data.number,
        currency=data.currency, subtotal=data.subtotal, discount_total=data.discount_total, total=data.total,
        discount_codes=data.discount_codes, landing_site=data.landing_site, referring_site=data.referring_site,
        referral_code=data.referral_code, cancel_reason=data.cancel_reason, source=Order.Source.IMPORT,
        source_updated_at=data.updated_at, placed_at=data.placed_at or now,
    )
    implied = STATUS_IMPLIES[data.status]
    for field in ("paid_at", "fulfilled_at", "delivered_at", "cancelled_at"):
        value = getattr(data, field)
        if value is not None or field in implied:
            setattr(order, field, value or (order.placed_at if field == "paid_at" else now))
    order.status = order.derive_status()
    return order


def _insert_customers(tenant: Tenant, orders: list[Order], resolved: list, new_customers: dict, known) -> None:
    """A new customer's orders are all in this batch: its aggregates are theirs, written with it."""
    for order, (_, _, key) in zip(orders, resolved, strict=True):
        row = new_customers.get(key)
        share = order_share(tenant, order) if row is not None else None
        if share is not None:
            spent, at = share
            row["order_count"] += 1
            row["total_spent"] += spent
            row["first_order_at"] = at if row["first_order_at"] is None else min(row["first_order_at"], at)
            row["last_order_at"] = at if row["last_order_at"] is None else max(row["last_order_at"], at)
    for key, pk in zip(new_customers, CUSTOMERS.insert_dicts(
            [{**row, "tenant_id": tenant.pk} for row in new_customers.values()], returning=True), strict=True):
        known.learn(key, pk)


def _line_and_event_rows(tenant: Tenant, orders: list[Order], resolved: list, backfill: bool, now):
    product_ids = line_product_ids(tenant, [line for _, d, _ in resolved for line in d.lines])
    lines, events = [], []
    processed_at = now if backfill else None  # backfilled history starts nothing
    for order, (_, data, _) in zip(orders, resolved, strict=True):
        for position, line in enumerate(data.lines):
            lines.append({
                "tenant_id": tenant.pk, "order_id": order.pk, "position": position, "external_id": line.external_id,
                "product_external_id": line.product_external_id,
                "product_id": product_ids.get(line.product_external_id), "sku": line.sku, "title": line.title,
                "quantity": line.quantity, "unit_price": line.unit_price,
            })
        payload = order_event_data(order)
        common = {"tenant_id": tenant.pk, "customer_id": order.customer_id, "order_id": order.pk, "data": payload,
                  "backfill": backfill, "processed_at": processed_at}
        events.append({**common, "type": "order.placed", "occurred_at": order.placed_at,
                       "dedupe_key": f"order.placed:{order.pk}"})
        for field, event_type in MILESTONES:
            at = getattr(order, field)
            if at:
                events.append({**common, "type": event_type, "occurred_at": at,
                               "dedupe_key": f"{event_type}:{order.pk}"})
    return lines, events


def _new_customer(data, now) -> dict[str, Any]:
    row: dict[str, Any] = {
        "external_id": data.external_id, "email": data.email or "", "first_name": data.first_name,
        "last_name": data.last_name, "locale": data.locale, "time_zone": data.time_zone,
        "order_count": 0, "total_spent": Decimal(0), "first_order_at": None, "last_order_at": None,
    }
    if data.marketing_consent is not None:
        row["marketing_consent"] = data.marketing_consent
        row["consent_updated_at"] = data.consent_updated_at or now
        row["consent_source"] = Customer.ConsentSource.API
    return row
