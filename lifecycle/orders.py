"""Order ingestion: one transaction upserts the customer and the order by external id, moves its status forward only, and appends the events.\n\nConcurrent writers to the same order or customer are serialized by a transaction-scoped advisory lock on\nPostgreSQL (SQLite, the embedded profile, serializes writers by itself), so twenty posts of one new order\ncreate one order. Status changes are timestamps set once and never cleared, so a late or replayed payload\ncan add facts but never move an order backwards."""

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction

from . import clock
from .aggregates import aggregates_add, aggregates_first, customer_refresh_aggregates, refresh_aggregates
from .customers import customer_apply, customer_created_event, customer_lock_key, customer_write
from .errors import NotFound, ServiceError
from .inputs import OrderIn, ProductIn
from .locks import advisory_lock, advisory_locks, retry_once_on_conflict
from .models import (
    Customer,
    Event,
    Order,
    OrderLine,
    Product,
    Tenant,
)
from .money import money_str
from .rows import Batch, execute
from .tables import CUSTOMERS, EVENTS, LINES, ORDERS
from .timeline import event_row

# Milestones in the order they happen; each becomes one event the first time it is set.
MILESTONES = (
    ("paid_at", "order.paid"),
    ("fulfilled_at", "order.fulfilled"),
    ("delivered_at", "order.delivered"),
    ("cancelled_at", "order.cancelled"),
)


STATUS_IMPLIES = {
    "pending": (),
    "paid": ("paid_at",),
    "fulfilled": ("paid_at", "fulfilled_at"),
    "delivered": ("paid_at", "fulfilled_at", "delivered_at"),
    "cancelled": ("cancelled_at",),
}


@dataclasses.dataclass(frozen=True)
class IngestResult:
    order: Order
    created: bool
    changed: bool
    # The order's lines as they stand after the call (the API answers with them).
    lines: tuple[OrderLine, ...] = ()


_PRODUCT_IDS_SQL = (
    f"SELECT external_id, id FROM {Product._meta.db_table} WHERE tenant_id = %s AND external_id IN ({{ids}})"  # noqa: S608
)


def _select_product_ids(tenant: Tenant, external_ids: list[str]) -> dict[str, int]:
    with connection.cursor() as cursor:
        execute(cursor, _PRODUCT_IDS_SQL.format(ids=", ".join(["%s"] * len(external_ids))), [tenant.pk, *external_ids])
        return dict(cursor.fetchall())


def line_product_ids(tenant: Tenant, lines: list, known: dict[str, int] | None = None) -> dict[str, int]:
    """The lines' products' ids, creating the products not known yet. `known`: the ids of those
    products already read (the order's read, `_order_seen`), so they are not read again."""
    wanted = {line.product_external_id: line for line in lines if line.product_external_id}
    if not wanted:
        return {}
    if known is None:
        existing = _select_product_ids(tenant, list(wanted))
    else:
        existing = {ext: known[ext] for ext in wanted if ext in known}
    # Sorted: two writers creating the same new products insert them in one order, so neither
    # waits on a row the other holds while holding one it wants.
    missing = sorted(ext for ext in wanted if ext not in existing)
    if missing:
        Product.objects.for_tenant(tenant).bulk_create(
            [Product(tenant=tenant, external_id=ext, sku=wanted[ext].sku, title=wanted[ext].title,
                     url=getattr(wanted[ext], "product_url", ""), image_url=getattr(wanted[ext], "product_image_url", ""))
             for ext in missing],
            ignore_conflicts=True,
        )
        existing.update(_select_product_ids(tenant, missing))
    _fill_product_media(tenant, {ext: line for ext, line in wanted.items() if ext in existing and ext not in missing})
    return existing


def _fill_product_media(tenant: Tenant, lines: dict[str, Any]) -> None:
    """A known product's page and image, from the order lines that carry them (a newer value wins;
    a line without one leaves the product's alone). Rows in external id order, like the inserts."""
    media = {ext: (getattr(line, "product_url", ""), getattr(line, "product_image_url", ""))
             for ext, line in lines.items()}
    media = {ext: pair for ext, pair in media.items() if any(pair)}
    if not media:
        return
    for product in Product.objects.for_tenant(tenant).filter(external_id__in=sorted(media)).order_by("external_id"):
        url, image_url = media[product.external_id]
        changes = {name: value for name, value in (("url", url), ("image_url", image_url))
                   if value and getattr(product, name) != value}
        if changes:
            Product.objects.for_tenant(tenant).filter(pk=product.pk).update(**changes, updated_at=clock.now())


def product_upsert(*, tenant: Tenant, data: ProductIn) -> tuple[Product, bool]:
    """A product as its platform describes it (products/create, product.updated …): title, SKU,
    page and image. An empty url clears it (the product was unpublished); an empty title, SKU or
    image leaves the stored one. Returns (product, created)."""
    values = {"url": data.url, **{name: getattr(data, name) for name in ("title", "sku", "image_url")
                                   if getattr(data, name)}}
    if data.collections is not None:
        values["collections"] = sorted(set(data.collections))
    with transaction.atomic():
        product, created = Product.objects.for_tenant(tenant).get_or_create(
            tenant=tenant, external_id=data.external_id, defaults=values)
        changed = {name: value for name, value in values.items() if getattr(product, name) != value}
        if not created and changed:
            for name, value in changed.items():
                setattr(product, name, value)
            product.save(update_fields=[*changed, "updated_at"])
    return product, created


def _lines_signature(lines) -> list[tuple]:
    return [
        (line.external_id, line.product_external_id, line.sku, line.title, line.quantity, Decimal(line.unit_price))
        for line in lines
    ]


def _replace_lines(tenant: Tenant, order: Order, lines: list, *, new_order: bool = False,
                   products: dict[str, int] | None = None, batch: Batch | None = None) -> tuple[OrderLine, ...]:
    product_ids = line_product_ids(tenant, lines, products)
    if not new_order:  # an order created in this transaction has no lines to delete
        OrderLine.objects.for_tenant(tenant).filter(order=order).delete()
    rows = tuple(
        # By id, not by object: setting a relation through its descriptor was most of building a line.
        OrderLine(
            tenant_id=tenant.pk, order_id=order.pk, position=index, external_id=line.external_id,
            product_external_id=line.product_external_id, product_id=product_ids.get(line.product_external_id),
            sku=line.sku, title=line.title, quantity=line.quantity, unit_price=line.unit_price,
        )
        for index, line in enumerate(lines)
    )
    LINES.insert(rows, returning=False, batch=batch)
    return rows


def order_event_data(order: Order) -> dict[str, Any]:
    return {"number": order.number, "total": money_str(order.total, order.currency), "currency": order.currency}


def _milestone_events(tenant: Tenant, order: Order, before: dict[str, Any], backfill: bool) -> list[dict[str, Any]]:
    """The milestone events this change makes true, not yet written."""
    return [
        {**event_row(tenant=tenant, type=event_type, occurred_at=getattr(order, field), order=order,
                  data=order_event_data(order), dedupe_key=f"{event_type}:{order.pk}", backfill=backfill),
         "customer_id": order.customer_id}
        for field, event_type in MILESTONES
        if getattr(order, field) and not before.get(field)
    ]


@dataclasses.dataclass
class _Seen:
    """One read of an order by external id: the order, its lines, the customer the payload names, and
    the ids of the payload's products that exist (by product external id)."""

    order: Order | None
    customer: Customer | None
    lines: tuple[OrderLine, ...]
    products: dict[str, int] | None  # None: not read (SQLite)


# On PostgreSQL the read also brings the ids of the payload's products, so writing its lines needs
# no read of its own (an uncorrelated subquery: run once, not per line row). SQLite (the embedded
# profile) has neither json_object_agg nor ANY: there the lines read their products themselves.
_PRODUCTS_COLUMN = {
    True: f"(SELECT json_object_agg(p.external_id, p.id) FROM {Product._meta.db_table} p "  # noqa: S608
    "WHERE p.tenant_id = %s AND p.external_id = ANY(%s))",
    False: "NULL",
}


_SEEN_SQL = (
    f"SELECT {ORDERS.columns('o')}, {CUSTOMERS.columns('c')}, {LINES.columns('l')}, {{products}} "  # noqa: S608
    f"FROM (SELECT 1 AS one) AS one "
    f"LEFT JOIN {ORDERS.name} o ON o.tenant_id = %s AND o.external_id = %s "
    # Every table with its tenant named, so that on Citus the statement goes to the store's shard group.
    f"LEFT JOIN {CUSTOMERS.name} c ON c.tenant_id = %s AND c.id = {{customer}} "
    # Lines by their order (orderline has no tenant index): the planner then takes the order_id index
    # even before a new database has statistics, instead of reading the tenant's every line.
    f"LEFT JOIN {LINES.name} l ON l.tenant_id = %s AND l.order_id = o.id "
    "ORDER BY l.position, l.id"
)


# The customer `_customer_find` picks, as a scalar subquery.
_CUSTOMER_BY_EXTERNAL_ID = f"(SELECT id FROM {CUSTOMERS.name} WHERE tenant_id = %s AND external_id = %s)"  # noqa: S608


_GUEST_BY_EMAIL = (
    f"(SELECT id FROM {CUSTOMERS.name} WHERE tenant_id = %s AND email = %s AND external_id IS NULL "  # noqa: S608
    "ORDER BY id LIMIT 1)"
)


_CUSTOMER_BY_EMAIL = (
    f"(SELECT id FROM {CUSTOMERS.name} WHERE tenant_id = %s AND email = %s "  # noqa: S608
    "ORDER BY external_id IS NULL, external_id, id LIMIT 1)"
)


def _seen_by(products: str) -> dict[str, str]:
    return {
        "external_id": _SEEN_SQL.format(customer=_CUSTOMER_BY_EXTERNAL_ID, products=products),
        # COALESCE inside its own scalar subquery: `c.id = COALESCE(…)` is not a leakproof condition
        # (PostgreSQL does not look inside COALESCE), so under row-level security the join could not
        # use the primary key and read every customer row (12 ms at 40,000 customers, bench/rls);
        # `c.id = (SELECT COALESCE(…))` compares with a parameter and is an index lookup again.
        "external_id_or_guest": _SEEN_SQL.format(
            customer=f"(SELECT COALESCE({_CUSTOMER_BY_EXTERNAL_ID}, {_GUEST_BY_EMAIL}))", products=products),
        "email": _SEEN_SQL.format(customer=_CUSTOMER_BY_EMAIL, products=products),
    }


# The read on PostgreSQL (with the products) and elsewhere (without).
_SEEN_BY, _SEEN_BY_PORTABLE = _seen_by(_PRODUCTS_COLUMN[True]), _seen_by(_PRODUCTS_COLUMN[False])


def _order_seen(tenant: Tenant, data: OrderIn) -> _Seen:
    """The order, its lines and the payload's customer (found as `_customer_find` finds it) in one
    statement, so in one snapshot."""
    who = data.customer
    if who.external_id and who.email:
        kind, customer_params = "external_id_or_guest", [tenant.pk, who.external_id, tenant.pk, who.email]
    elif who.external_id:
        kind, customer_params = "external_id", [tenant.pk, who.external_id]
    else:
        kind, customer_params = "email", [tenant.pk, who.email]
    if connection.vendor == "postgresql":
        product_ids = sorted({line.product_external_id for line in data.lines if line.product_external_id})
        sql, params = _SEEN_BY[kind], [tenant.pk, product_ids, tenant.pk, data.external_id, tenant.pk,
                                       *customer_params, tenant.pk]
    else:
        sql, params = _SEEN_BY_PORTABLE[kind], [tenant.pk, data.external_id, tenant.pk, *customer_params, tenant.pk]
    with connection.cursor() as cursor:
        execute(cursor, sql, params)
        rows = cursor.fetchall()
    split, end = ORDERS.width, ORDERS.width + CUSTOMERS.width
    order, customer = ORDERS.from_row(rows[0][:split]), CUSTOMERS.from_row(rows[0][split:end])
    lines = tuple(line for line in (LINES.from_row(row[end:-1]) for row in rows) if line is not None)
    products = rows[0][-1]
    if isinstance(products, str):  # json arrives as text where a driver leaves it unparsed
        products = json.loads(products)
    if products is None and connection.vendor != "postgresql":
        return _Seen(order=order, customer=customer, lines=lines, products=None)
    return _Seen(order=order, customer=customer, lines=lines, products=products or {})


def order_ingest(*, tenant: Tenant, data: OrderIn, source: str = Order.Source.API, backfill: bool = False) -> IngestResult:
    """Create or update an order by external id, with its customer, lines and timeline.

    Idempotent: the same payload again changes nothing and appends no event. Locks the
    order's external id, then its customer, for the transaction. Emits order.placed on
    first sight and order.paid / fulfilled / delivered / cancelled the first time each
    becomes true; post-purchase effects key off order.paid, never order.placed.

    A payload that changes nothing (storefronts resend orders with every status webhook;
    clients retry) is recognized from one read, without a transaction or a lock: the read is
    one snapshot, so the answer is the order as it stood at one moment, as if this call had
    run just then. Anything to write is decided again under the locks, except a new order
    whose customer needs no update: that read stands, and the unique constraints on order
    and customer say if it no longer does (another writer created either meanwhile); then
    the work is rolled back and done again from a read under the locks.
    """
    seen = _order_seen(tenant, data)
    customer_unchanged = seen.customer is None or not customer_apply(seen.customer, data.customer, source)
    if seen.order is not None and seen.customer is not None and customer_unchanged:
        plan = _order_plan(tenant, seen.order, seen.customer, data, source)
        if not plan.changed:
            return IngestResult(order=plan.order, created=False, changed=False, lines=seen.lines)

    def run(seen: _Seen | None) -> IngestResult:
        with transaction.atomic():
            advisory_locks(tenant.pk, ("order", data.external_id), ("customer", customer_lock_key(data.customer)))
            guarded = seen is not None
            if seen is None:
                seen = _order_seen(tenant, data)
            customer, customer_created = customer_write(tenant, seen.customer, data.customer, source)
            plan = _order_plan(tenant, seen.order, customer, data, source)
            return _order_write(tenant, plan, seen, customer, customer_created, data, backfill, guarded=guarded)

    if seen.order is None and customer_unchanged:
        try:
            return run(seen)
        except (_Raced, IntegrityError):
            pass
    return retry_once_on_conflict(lambda: run(None))


class _Raced(Exception):
    """Another writer created the order or the customer since we read: start again under the locks."""


@dataclasses.dataclass
class _Plan:
    """What a payload does to an order, worked out in memory."""

    order: Order
    created: bool
    changed: bool
    stale: bool
    first_sight: bool
    before: dict[str, Any]
    previous_customer_id: int | None


def _order_plan(tenant: Tenant, order: Order | None, customer: Customer, data: OrderIn, source: str) -> _Plan:
    now = clock.now()
    created = order is None
    previous_customer_id = None if created else order.customer_id
    if created:
        order = Order(tenant=tenant, external_id=data.external_id, source=source)
        before: dict[str, Any] = {}
    else:
        before = {field: getattr(order, field) for field, _ in MILESTONES}
        before["status"] = order.status
    stale = (
        not created and data.updated_at is not None and order.source_updated_at is not None
        and data.updated_at < order.source_updated_at
    )
    changed = created
    if not stale:
        fields = {
            "number": data.number, "customer_id": customer.pk, "currency": data.currency,
            "subtotal": data.subtotal, "discount_total": data.discount_total, "total": data.total,
            "discount_codes": data.discount_codes, "landing_site": data.landing_site,
            "referring_site": data.referring_site, "referral_code": data.referral_code,
        }
        if data.cancel_reason:
            fields["cancel_reason"] = data.cancel_reason
        for field, value in fields.items():
            if getattr(order, field) != value:
                setattr(order, field, value)
                changed = True
        if data.updated_at and order.source_updated_at != data.updated_at:
            order.source_updated_at = data.updated_at
            changed = True
    # No placed_at: a placeholder that a refund or a delivery created before this payload
    # came. Its first full payload is the order's first sight, as for a new order.
    first_sight = created or order.placed_at is None
    if order.placed_at is None:
        order.placed_at = data.placed_at or now
        changed = True
    # Timestamps only ever go from empty to set: nothing moves an order backwards.
    explicit = {field: getattr(data, field) for field in ("paid_at", "fulfilled_at", "delivered_at", "cancelled_at")}
    implied = set(STATUS_IMPLIES[data.status])
    for field, value in explicit.items():
        if getattr(order, field) is None and (value is not None or field in implied):
            setattr(order, field, value or (order.placed_at if field == "paid_at" else now))
            changed = True
    if order.refunded_total > order.total:
        raise ServiceError(
            "orders.total_below_refunds",
            f"total {money_str(data.total, data.currency)} is less than the "
            f"{money_str(order.refunded_total, data.currency)} already refunded on this order",
            {"total": ["must be at least the amount already refunded"]},
        )
    order.status = order.derive_status()
    if order.customer_id == customer.pk:
        order.customer = customer  # cached: the events and the answer name it without reading it back
    return _Plan(order=order, created=created, changed=changed, stale=stale, first_sight=first_sight, before=before,
                 previous_customer_id=previous_customer_id)


def _order_write(
    tenant: Tenant, plan: _Plan, seen: _Seen, customer: Customer, customer_created: bool,
    data: OrderIn, backfill: bool, *, guarded: bool = False,
) -> IngestResult:
    """Write what the plan says. `guarded`: the plan comes from a read made before the locks, so
    the customer and order inserts give way to a row that exists by now (_Raced)."""
    order, lines = plan.order, seen.lines
    if customer_created:
        # The plan gave the order to this customer (whose id is not known yet) unless the payload
        # was stale; then the order stays with its customer and the new one has no orders.
        owns = order.customer_id is None
        if owns:
            aggregates_first(tenant, customer, order)
        if not CUSTOMERS.insert([customer], ignore_conflicts=guarded):
            raise _Raced
        events = [customer_created_event(tenant, customer)]
        if owns:
            order.customer = customer
    else:
        events = []
    if not plan.changed:
        EVENTS.insert_dicts(events)
        return IngestResult(order=order, created=False, changed=False, lines=lines)
    if plan.created:
        if not ORDERS.insert([order], ignore_conflicts=guarded):
            raise _Raced
    else:
        order.save()
    # The lines, the events and a new order's share of the aggregates return nothing: one round trip.
    batch = Batch()
    if plan.created or (not plan.stale and data.lines and _lines_signature(lines) != _lines_signature(data.lines)):
        lines = _replace_lines(tenant, order, data.lines, new_order=plan.created, products=seen.products,
                               batch=batch)
    if plan.first_sight:
        events.append(event_row(tenant=tenant, type="order.placed", occurred_at=order.placed_at, customer=customer,
                             order=order, data=order_event_data(order), dedupe_key=f"order.placed:{order.pk}",
                             backfill=backfill))
    if plan.first_sight and not plan.created:
        # The placeholder's events (order.refunded, order.delivered) did not know whose order it was.
        Event.objects.for_tenant(tenant).filter(order=order, customer__isnull=True).update(customer=customer)
    events.extend(_milestone_events(tenant, order, plan.before, backfill))
    EVENTS.insert_dicts(events, batch=batch)
    if plan.created and not customer_created:
        aggregates_add(tenant, customer, order, batch=batch)
    batch.send()
    if not plan.created and not customer_created:
        refresh_aggregates(tenant, {customer.pk})
    if plan.previous_customer_id and plan.previous_customer_id != customer.pk:
        refresh_aggregates(tenant, {plan.previous_customer_id})
    return IngestResult(order=order, created=plan.created, changed=True, lines=lines)


def order_locked(tenant: Tenant, external_id: str) -> Order:
    advisory_lock(tenant.pk, "order", external_id)
    order = Order.objects.for_tenant(tenant).select_related("customer").filter(external_id=external_id).first()
    if order is None:
        raise NotFound("orders.not_found", f"no order with external_id {external_id!r}")
    return order


def order_mark(*, tenant: Tenant, external_id: str, milestone: str, at: dt.datetime | None = None,
               reason: str = "") -> tuple[Order, bool]:
    """Set fulfilled_at, delivered_at or cancelled_at once. Returns (order, changed)."""
    field = {"fulfilled": "fulfilled_at", "delivered": "delivered_at", "cancelled": "cancelled_at"}[milestone]
    with transaction.atomic():
        order = order_locked(tenant, external_id)
        if getattr(order, field) is not None:
            return order, False
        before = {name: getattr(order, name) for name, _ in MILESTONES}
        setattr(order, field, at or clock.now())
        if milestone == "cancelled" and reason:
            order.cancel_reason = reason
        order.status = order.derive_status()
        order.save()
        EVENTS.insert_dicts(_milestone_events(tenant, order, before, backfill=False))
        if order.customer_id and milestone == "cancelled":
            customer_refresh_aggregates(customer=order.customer)
    return order, True


def order_placeholder(*, tenant: Tenant, external_id: str, currency: str, source: str) -> Order:
    """An order we have heard of (a refund, a delivery) before its own payload arrived.

    Platforms deliver out of order; the full payload fills it in when it comes.
    Call inside a transaction holding the order's lock.
    """
    order = Order.objects.for_tenant(tenant).filter(external_id=external_id).first()
    if order is None:
        order = Order.objects.for_tenant(tenant).create(
            tenant=tenant, external_id=external_id, currency=currency, source=source, placed_at=None
        )
    return order
