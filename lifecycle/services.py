"""Every write to stores, customers, orders and the timeline goes through here.

Each public function is one transaction. Concurrent writers to the same order or
customer are serialized by a transaction-scoped advisory lock on PostgreSQL (SQLite,
the embedded profile, serializes writers by itself), so "twenty posts of one new order"
create one order. Status changes are timestamps that are set once and never cleared,
so a late or replayed payload can add facts but never move an order backwards.
"""

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import F

from . import clock
from .auth import forget_key
from .models import (
    ApiKey,
    Customer,
    Event,
    Membership,
    Order,
    OrderLine,
    Product,
    Refund,
    StoreConnection,
    Tenant,
)
from .money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, money_str
from .rows import Table, execute
from .schemas import CustomerIn, EventIn, OrderIn, ProductIn, RefundIn
from .tenancy import system_scope

T = TypeVar("T")


class ServiceError(Exception):
    """A request that cannot be applied as asked; `code` is stable, `message` is for people."""

    status = 400

    def __init__(self, code: str, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


# --- plumbing -------------------------------------------------------------------


def _advisory_lock(tenant_id: int, kind: str, key: str) -> None:
    """Serialize writers of one (tenant, kind, key) until the transaction ends."""
    _advisory_locks(tenant_id, (kind, key))


def _advisory_locks(tenant_id: int, *keys: tuple[str, str]) -> None:
    """Take several such locks in one round trip, in the order given (PostgreSQL evaluates a
    SELECT list left to right), so callers keep one global order and never deadlock."""
    if connection.vendor != "postgresql":
        return
    ids = [
        int.from_bytes(hashlib.blake2b(f"{tenant_id}:{kind}:{key}".encode(), digest_size=8).digest(), "big", signed=True)
        for kind, key in keys
    ]
    with connection.cursor() as cursor:
        execute(cursor, "SELECT " + ", ".join(["pg_advisory_xact_lock(%s)"] * len(ids)), ids)


def _retry_once_on_conflict(fn: Callable[[], T]) -> T:
    """A unique constraint that fires under a race means another writer got there first:
    run again, and this time the row is found instead of created."""
    try:
        return fn()
    except IntegrityError:
        return fn()


# --- tenants and credentials ----------------------------------------------------


def tenant_create(
    *, slug: str, name: str, owner_email: str | None = None, time_zone: str = "UTC", currency: str = "USD"
) -> tuple[Tenant, str]:
    """Create a tenant, its owner membership and a first API key. Returns the key, shown once.

    The owner is a store user, never staff or superuser: the store is run from the workspace (/app/),
    and the operators' admin (/admin/) is closed to every store user (lifecycle.admin_site)."""
    tenant = Tenant(slug=slug, name=name, time_zone=time_zone, currency=currency, sender_name=name)
    tenant.full_clean()
    with transaction.atomic():
        tenant.save()
        if owner_email:
            user_model = get_user_model()
            user, _ = user_model.objects.get_or_create(
                username=owner_email.lower(), defaults={"email": owner_email.lower()}
            )
            Membership.objects.create(tenant=tenant, user=user, role=Membership.Role.OWNER)
        _, key = api_key_create(tenant=tenant, name="default")
    return tenant, key


def api_key_create(*, tenant: Tenant, name: str) -> tuple[ApiKey, str]:
    full, prefix, secret = ApiKey.generate()
    api_key = ApiKey.objects.for_tenant(tenant).create(
        tenant=tenant, name=name, prefix=prefix, key_hash=ApiKey.hash_secret(secret)
    )
    return api_key, full


def api_key_revoke(*, tenant: Tenant, prefix: str) -> bool:
    """Revoke a key: refused at once by this process, within auth.KEY_CACHE_SECONDS by every worker."""
    revoked = bool(
        ApiKey.objects.for_tenant(tenant).filter(prefix=prefix, revoked_at__isnull=True).update(revoked_at=clock.now())
    )
    forget_key(prefix)
    return revoked


def store_connect(*, tenant: Tenant, platform: str, address: str, secret: str) -> StoreConnection:
    """Connect a storefront. Shopify is addressed by its shop domain, WooCommerce by site URL."""
    if platform not in StoreConnection.Platform.values:
        raise ServiceError("stores.unknown_platform", f"platform must be one of {', '.join(StoreConnection.Platform.values)}")
    if len(secret) < 8:
        raise ServiceError("stores.weak_secret", "the webhook secret must be at least 8 characters long")
    conn = StoreConnection(tenant=tenant, platform=platform)
    if platform == StoreConnection.Platform.SHOPIFY:
        domain = address.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
        if not domain or "/" in domain or "." not in domain:
            raise ServiceError("stores.bad_shop_domain", f"{address!r} is not a shop domain such as my-shop.myshopify.com")
        with system_scope():  # a shop domain names one store, whichever it is
            taken = StoreConnection.all_tenants.filter(shop_domain=domain).exists()
        if taken:
            raise Conflict("stores.shop_taken", f"{domain} is already connected")
        conn.shop_domain = domain
    else:
        url = address.strip()
        if not url.startswith(("http://", "https://")):
            raise ServiceError("stores.bad_site_url", f"{address!r} is not a site URL such as https://shop.example.com")
        conn.site_url = url
    conn.set_secret(secret)
    conn.save()
    return conn


def store_rotate_secret(*, connection_: StoreConnection, secret: str, grace: dt.timedelta) -> StoreConnection:
    """Install a new webhook secret; the old one keeps verifying for `grace`."""
    if len(secret) < 8:
        raise ServiceError("stores.weak_secret", "the webhook secret must be at least 8 characters long")
    with transaction.atomic():
        conn = StoreConnection.all_tenants.select_for_update().get(pk=connection_.pk)
        conn.previous_webhook_secret_encrypted = conn.webhook_secret_encrypted
        conn.previous_secret_valid_until = clock.now() + grace
        conn.set_secret(secret)
        conn.save()
    return conn


# --- customers ------------------------------------------------------------------


def _customer_find(tenant: Tenant, data: CustomerIn) -> Customer | None:
    customers = Customer.objects.for_tenant(tenant)
    if data.external_id:
        found = customers.filter(external_id=data.external_id).first()
        if found:
            return found
        if data.email:
            # A guest who now has an account: adopt the guest record.
            return customers.filter(email=data.email, external_id__isnull=True).first()
        return None
    # Only an email: a guest checkout, perhaps by someone who also has an account.
    return customers.filter(email=data.email).order_by(F("external_id").asc(nulls_last=True), "pk").first()


def _customer_apply(customer: Customer, data: CustomerIn, source: str) -> bool:
    changed = False
    updates = {
        "external_id": data.external_id,
        "email": data.email,
        "first_name": data.first_name,
        "last_name": data.last_name,
        "locale": data.locale,
        "time_zone": data.time_zone,
    }
    for field, value in updates.items():
        if value and getattr(customer, field) != value:
            setattr(customer, field, value)
            changed = True
    # Platforms deliver out of order: a consent stated as of an earlier time than the one
    # we hold (a retried webhook from before an unsubscribe) must not undo the newer one.
    stale_consent = (data.consent_updated_at is not None and customer.consent_updated_at is not None
                     and data.consent_updated_at < customer.consent_updated_at)
    if (data.marketing_consent is not None and customer.marketing_consent != data.marketing_consent
            and not stale_consent):
        customer.marketing_consent = data.marketing_consent
        customer.consent_updated_at = data.consent_updated_at or clock.now()
        customer.consent_source = source
        changed = True
    return changed


def customer_upsert(*, tenant: Tenant, data: CustomerIn, source: str) -> tuple[Customer, bool]:
    """Find the customer by external id, else by email, and update what the store told us.

    Locks the customer's email (or external id) for the rest of the caller's transaction.
    """
    _advisory_lock(tenant.pk, "customer", _customer_lock_key(data))
    customer, created = _customer_write(tenant, _customer_find(tenant, data), data, source)
    if created:
        _CUSTOMERS.insert([customer])
        _EVENTS.insert_dicts([_customer_created_event(tenant, customer)])
    return customer, created


def _customer_lock_key(data: CustomerIn) -> str:
    return data.email or data.external_id or ""


def _customer_write(tenant: Tenant, found: Customer | None, data: CustomerIn, source: str) -> tuple[Customer, bool]:
    """Update the customer found with what the store told us, or make a new one, which the
    caller inserts (with its first order's aggregates, when it has one). Returns (customer, created)."""
    if found is None:
        customer = Customer(tenant=tenant)
        _customer_apply(customer, data, source)
        return customer, True
    if _customer_apply(found, data, source):
        found.save()
    return found, False


def _customer_created_event(tenant: Tenant, customer: Customer) -> dict[str, Any]:
    return _event(tenant=tenant, type="customer.created", customer=customer, occurred_at=clock.now(),
                  dedupe_key=f"customer.created:{customer.pk}")


# The customers' aggregates, recounted from their orders in one statement. Raw SQL because it
# runs for every order, refund and cancellation: the same UPDATE built from ORM Subquery
# expressions cost ~3.7 ms of CPU per call to compile, this ~0.15 ms. Scoped like every query
# here: the WHERE names the tenant, and the subqueries are correlated to those customers (an
# order's customer is its tenant's). They filter by customer alone so they use the customer_id
# index whatever the statistics say; with tenant_id in them too, a planner without statistics
# (a new database, before autovacuum's first ANALYZE) took the tenant_id index and read all the
# tenant's orders once per customer and column.
TOTAL_SPENT_MAX = Decimal(10) ** (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES) - Decimal(10) ** -MONEY_DECIMAL_PLACES
_COUNTED_ORDERS = (
    f"FROM {Order._meta.db_table} o WHERE o.customer_id = {Customer._meta.db_table}.id "
    "AND o.paid_at IS NOT NULL AND o.cancelled_at IS NULL"
)
# Table names come from the models and every value is a parameter (hence the noqa: S608 below).
_AGGREGATES_SQL = (
    f"UPDATE {Customer._meta.db_table} SET "  # noqa: S608
    f"order_count = (SELECT count(*) {_COUNTED_ORDERS}), "
    f"first_order_at = (SELECT min(coalesce(o.placed_at, o.paid_at)) {_COUNTED_ORDERS}), "
    f"last_order_at = (SELECT max(coalesce(o.placed_at, o.paid_at)) {_COUNTED_ORDERS}), "
    # Saturates at what the column holds (10^15): no number of accepted orders can make this fail.
    f"total_spent = least(coalesce((SELECT sum(o.total - o.refunded_total) {_COUNTED_ORDERS} AND o.currency = %s), 0), "
    f"{TOTAL_SPENT_MAX}) "
    "WHERE tenant_id = %s AND id IN ({ids})"
)
_LOCK_CUSTOMERS_SQL = (
    f"SELECT id FROM {Customer._meta.db_table} WHERE tenant_id = %s AND id IN ({{ids}}) ORDER BY id FOR UPDATE"  # noqa: S608
)


def refresh_aggregates(tenant: Tenant | int, customer_ids: set[int]) -> None:
    """Recompute order count, spend and first/last order from the orders themselves.

    Counts paid, uncancelled orders; spend is in the tenant's currency, net of refunds.
    One UPDATE however many customers: no read-then-write round trip, no UPDATE … CASE
    with a branch per customer.
    """
    if not customer_ids:
        return
    if isinstance(tenant, Tenant):
        tenant_id, currency = tenant.pk, tenant.currency
    else:
        tenant_id = tenant
        currency = Tenant.objects.only("currency").get(pk=tenant_id).currency
    ids = sorted(customer_ids)
    placeholders = ", ".join(["%s"] * len(ids))
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        if connection.features.has_select_for_update:
            # Lock the customers first, in primary-key order so two writers never deadlock on them.
            # Whoever commits orders for one of them meanwhile has then committed before the UPDATE
            # below reads, so its orders are counted. Without the lock two bulk imports (or an import
            # and a live order) sharing a customer each counted only their own new orders, and the
            # last to commit left the aggregates short.
            execute(cursor, _LOCK_CUSTOMERS_SQL.format(ids=placeholders), [tenant_id, *ids])
        execute(cursor, _AGGREGATES_SQL.format(ids=placeholders), [currency, tenant_id, *ids])


def customer_refresh_aggregates(*, customer: Customer) -> None:
    refresh_aggregates(customer.tenant_id, {customer.pk})


# A new order's share of its customer's aggregates, added without recounting: exact because every
# writer keeps them exact under the customer's row lock, which this UPDATE takes (a recount waiting
# on it then counts this order; this UPDATE, waiting on a recount, adds to the recounted row).
_ADD_ORDER_SQL = (
    f"UPDATE {Customer._meta.db_table} SET order_count = order_count + 1, total_spent = least(total_spent + %s, "  # noqa: S608
    f"{TOTAL_SPENT_MAX}), "
    "first_order_at = CASE WHEN first_order_at IS NULL OR first_order_at > %s THEN %s ELSE first_order_at END, "
    "last_order_at = CASE WHEN last_order_at IS NULL OR last_order_at < %s THEN %s ELSE last_order_at END "
    "WHERE tenant_id = %s AND id = %s"
)


def _order_share(tenant: Tenant, order: Order) -> tuple[Decimal, dt.datetime] | None:
    """What one order adds to its customer's aggregates: (spend, when), None when it does not count.
    The same rules as _AGGREGATES_SQL."""
    if order.paid_at is None or order.cancelled_at is not None:
        return None
    spent = Decimal(order.total) - Decimal(order.refunded_total) if order.currency == tenant.currency else Decimal(0)
    return spent, order.placed_at or order.paid_at


def _aggregates_add(tenant: Tenant, customer: Customer, order: Order) -> None:
    share = _order_share(tenant, order)
    if share is None:
        return
    conn = connections[DEFAULT_DB_ALIAS]
    spent = _SPENT_FIELD.get_db_prep_save(share[0], conn)
    at = _AT_FIELD.get_db_prep_save(share[1], conn)
    with conn.cursor() as cursor:
        execute(cursor, _ADD_ORDER_SQL, [spent, at, at, at, at, tenant.pk, customer.pk])


def _aggregates_first(tenant: Tenant, customer: Customer, order: Order) -> None:
    """A customer not yet written, whose only order this is: its aggregates, set in memory."""
    share = _order_share(tenant, order)
    if share is not None:
        customer.order_count, customer.total_spent = 1, share[0]
        customer.first_order_at = customer.last_order_at = share[1]


def customer_erase(*, tenant: Tenant, external_id: str | None = None, customer_id: int | None = None) -> Customer:
    """Erase a customer's personal data (GDPR Art. 17). Orders and aggregates stay, anonymous;
    a SHA-256 of the address is kept only so that nothing is ever sent to it again.

    The customer is named by external id (the API) or by primary key (the workspace, which can
    also erase guests: they have no external id). Erasing an erased customer changes nothing.
    """
    if (external_id is None) == (customer_id is None):
        raise ValueError("name the customer by external_id or by customer_id")
    lookup = {"pk": customer_id} if customer_id is not None else {"external_id": external_id}
    with transaction.atomic():
        customer = Customer.objects.for_tenant(tenant).select_for_update().filter(**lookup).first()
        if customer is None:
            raise NotFound("customers.not_found", f"no customer with external_id {external_id!r}")
        if customer.erased_at is not None:
            return customer
        email_hash = hashlib.sha256(customer.email.encode()).hexdigest() if customer.email else ""
        now = clock.now()
        customer.external_id = None
        customer.email = ""
        customer.first_name = customer.last_name = ""
        customer.locale = customer.time_zone = ""
        customer.marketing_consent = False
        customer.consent_updated_at = now
        customer.consent_source = Customer.ConsentSource.API
        customer.suppressed_at = now
        customer.suppression_reason = "erased"
        customer.erased_at = now
        customer.save()
        Event.objects.for_tenant(tenant).filter(customer=customer).update(data={})
        Order.objects.for_tenant(tenant).filter(customer=customer).update(landing_site="", referring_site="")
        event_append(tenant=tenant, type="customer.erased", customer=customer, occurred_at=now,
                     data={"email_sha256": email_hash}, dedupe_key=f"customer.erased:{customer.pk}")
    return customer


def customer_unsubscribe(*, customer: Customer, source: str = Customer.ConsentSource.UNSUBSCRIBE,
                         detail: str = "") -> bool:
    """Stop all marketing email to this customer from this store, at once. Idempotent.

    Returns False when they already were unsubscribed. Emits customer.unsubscribed, which
    ends journeys that exit on it; the send gate also checks `unsubscribed_at` itself.
    """
    with transaction.atomic():
        locked = Customer.objects.for_tenant(customer.tenant_id).select_for_update().get(pk=customer.pk)
        if locked.unsubscribed_at is not None:
            return False
        now = clock.now()
        locked.unsubscribed_at = now
        locked.marketing_consent = False
        locked.consent_updated_at = now
        locked.consent_source = source
        locked.save(update_fields=["unsubscribed_at", "marketing_consent", "consent_updated_at", "consent_source",
                                   "updated_at"])
        event_append(tenant=locked.tenant, type="customer.unsubscribed", occurred_at=now, customer=locked,
                     data={"source": source, "detail": detail})
    return True


def customer_suppress(*, customer: Customer, reason: str) -> bool:
    """Never email this address again (hard bounce, spam complaint). Idempotent."""
    with transaction.atomic():
        updated = Customer.objects.for_tenant(customer.tenant_id).filter(
            pk=customer.pk, suppressed_at__isnull=True).update(suppressed_at=clock.now(), suppression_reason=reason)
        if updated:
            event_append(tenant=customer.tenant, type="customer.suppressed", occurred_at=clock.now(),
                         customer=customer, data={"reason": reason})
    return bool(updated)


# --- events ---------------------------------------------------------------------


def event_append(
    *,
    tenant: Tenant,
    type: str,  # noqa: A002 - the event's name in the domain
    occurred_at: dt.datetime,
    customer: Customer | None = None,
    order: Order | None = None,
    data: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    backfill: bool = False,
) -> Event:
    """Append to the timeline. Call inside the transaction that made the change."""
    event = Event(
        tenant=tenant, type=type, occurred_at=occurred_at, customer=customer, order=order,
        data=data or {}, dedupe_key=dedupe_key, backfill=backfill, processed_at=clock.now() if backfill else None,
    )
    _EVENTS.insert([event])
    return event


def _event(
    *,
    tenant: Tenant,
    type: str,  # noqa: A002 - the event's name in the domain
    occurred_at: dt.datetime,
    customer: Customer | None = None,
    order: Order | None = None,
    data: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    backfill: bool = False,
) -> dict[str, Any]:
    """An event's row, not yet written: callers that append several write them in one INSERT
    (rows.Table.insert_dicts, no model instance each)."""
    return {"tenant_id": tenant.pk, "type": type, "occurred_at": occurred_at,
            "customer_id": customer.pk if customer is not None else None,
            "order_id": order.pk if order is not None else None, "data": data or {}, "dedupe_key": dedupe_key,
            "backfill": backfill, "processed_at": clock.now() if backfill else None}


def event_record(*, tenant: Tenant, data: EventIn) -> tuple[Event, bool]:
    """Record a storefront's custom event (support.contacted, feature.used …).

    With an idempotency_key the same event posted again is recorded once.
    """

    def run() -> tuple[Event, bool]:
        with transaction.atomic():
            customer, _ = customer_upsert(tenant=tenant, data=data.customer, source=Customer.ConsentSource.API)
            dedupe_key = f"custom:{data.idempotency_key}" if data.idempotency_key else None
            if dedupe_key:
                existing = Event.objects.for_tenant(tenant).filter(dedupe_key=dedupe_key).first()
                if existing:
                    return existing, False
            order = None
            if data.order_external_id:
                order = Order.objects.for_tenant(tenant).filter(external_id=data.order_external_id).first()
                if order is None:
                    raise NotFound("events.order_not_found", f"no order with external_id {data.order_external_id!r}")
            event = event_append(
                tenant=tenant, type=data.type, occurred_at=data.occurred_at or clock.now(), customer=customer,
                order=order, data=data.data, dedupe_key=dedupe_key,
            )
            return event, True

    return _retry_once_on_conflict(run)


# --- orders ---------------------------------------------------------------------

# Milestones in the order they happen; each becomes one event the first time it is set.
MILESTONES = (
    ("paid_at", "order.paid"),
    ("fulfilled_at", "order.fulfilled"),
    ("delivered_at", "order.delivered"),
    ("cancelled_at", "order.cancelled"),
)
_STATUS_IMPLIES = {
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


_ORDERS, _CUSTOMERS, _LINES, _EVENTS = Table(Order), Table(Customer), Table(OrderLine), Table(Event)
_SPENT_FIELD, _AT_FIELD = Customer._meta.get_field("total_spent"), Customer._meta.get_field("first_order_at")
_PRODUCT_IDS_SQL = (
    f"SELECT external_id, id FROM {Product._meta.db_table} WHERE tenant_id = %s AND external_id IN ({{ids}})"  # noqa: S608
)


def _select_product_ids(tenant: Tenant, external_ids: list[str]) -> dict[str, int]:
    with connection.cursor() as cursor:
        execute(cursor, _PRODUCT_IDS_SQL.format(ids=", ".join(["%s"] * len(external_ids))), [tenant.pk, *external_ids])
        return dict(cursor.fetchall())


def _product_ids(tenant: Tenant, lines: list) -> dict[str, int]:
    wanted = {line.product_external_id: line for line in lines if line.product_external_id}
    if not wanted:
        return {}
    existing = _select_product_ids(tenant, list(wanted))
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


def _replace_lines(tenant: Tenant, order: Order, lines: list, *, new_order: bool = False) -> tuple[OrderLine, ...]:
    product_ids = _product_ids(tenant, lines)
    if not new_order:  # an order created in this transaction has no lines to delete
        OrderLine.objects.for_tenant(tenant).filter(order=order).delete()
    rows = tuple(
        OrderLine(
            tenant=tenant, order=order, position=index, external_id=line.external_id,
            product_external_id=line.product_external_id, product_id=product_ids.get(line.product_external_id),
            sku=line.sku, title=line.title, quantity=line.quantity, unit_price=line.unit_price,
        )
        for index, line in enumerate(lines)
    )
    _LINES.insert(rows, returning=False)
    return rows


def order_event_data(order: Order) -> dict[str, Any]:
    return {"number": order.number, "total": money_str(order.total, order.currency), "currency": order.currency}


def _milestone_events(tenant: Tenant, order: Order, before: dict[str, Any], backfill: bool) -> list[dict[str, Any]]:
    """The milestone events this change makes true, not yet written."""
    return [
        {**_event(tenant=tenant, type=event_type, occurred_at=getattr(order, field), order=order,
                  data=order_event_data(order), dedupe_key=f"{event_type}:{order.pk}", backfill=backfill),
         "customer_id": order.customer_id}
        for field, event_type in MILESTONES
        if getattr(order, field) and not before.get(field)
    ]


@dataclasses.dataclass
class _Seen:
    """One read of an order by external id: the order, its lines, and the customer the payload names."""

    order: Order | None
    customer: Customer | None
    lines: tuple[OrderLine, ...]


_SEEN_SQL = (
    f"SELECT {_ORDERS.columns('o')}, {_CUSTOMERS.columns('c')}, {_LINES.columns('l')} "  # noqa: S608
    f"FROM (SELECT 1 AS one) AS one "
    f"LEFT JOIN {_ORDERS.name} o ON o.tenant_id = %s AND o.external_id = %s "
    f"LEFT JOIN {_CUSTOMERS.name} c ON c.id = {{customer}} "
    # Lines by order alone (the order is the tenant's): the planner then takes the order_id index
    # even before a new database has statistics, instead of reading the tenant's every line.
    f"LEFT JOIN {_LINES.name} l ON l.order_id = o.id "
    "ORDER BY l.position, l.id"
)
# The customer `_customer_find` picks, as a scalar subquery.
_CUSTOMER_BY_EXTERNAL_ID = f"(SELECT id FROM {_CUSTOMERS.name} WHERE tenant_id = %s AND external_id = %s)"  # noqa: S608
_GUEST_BY_EMAIL = (
    f"(SELECT id FROM {_CUSTOMERS.name} WHERE tenant_id = %s AND email = %s AND external_id IS NULL "  # noqa: S608
    "ORDER BY id LIMIT 1)"
)
_CUSTOMER_BY_EMAIL = (
    f"(SELECT id FROM {_CUSTOMERS.name} WHERE tenant_id = %s AND email = %s "  # noqa: S608
    "ORDER BY external_id IS NULL, external_id, id LIMIT 1)"
)
_SEEN_BY = {
    "external_id": _SEEN_SQL.format(customer=_CUSTOMER_BY_EXTERNAL_ID),
    # COALESCE inside its own scalar subquery: `c.id = COALESCE(…)` is not a leakproof condition
    # (PostgreSQL does not look inside COALESCE), so under row-level security the join could not
    # use the primary key and read every customer row (12 ms at 40,000 customers, bench/rls);
    # `c.id = (SELECT COALESCE(…))` compares with a parameter and is an index lookup again.
    "external_id_or_guest": _SEEN_SQL.format(
        customer=f"(SELECT COALESCE({_CUSTOMER_BY_EXTERNAL_ID}, {_GUEST_BY_EMAIL}))"),
    "email": _SEEN_SQL.format(customer=_CUSTOMER_BY_EMAIL),
}


def _order_seen(tenant: Tenant, data: OrderIn) -> _Seen:
    """The order, its lines and the payload's customer (found as `_customer_find` finds it) in one
    statement, so in one snapshot."""
    who = data.customer
    if who.external_id and who.email:
        sql, customer_params = _SEEN_BY["external_id_or_guest"], [tenant.pk, who.external_id, tenant.pk, who.email]
    elif who.external_id:
        sql, customer_params = _SEEN_BY["external_id"], [tenant.pk, who.external_id]
    else:
        sql, customer_params = _SEEN_BY["email"], [tenant.pk, who.email]
    with connection.cursor() as cursor:
        execute(cursor, sql, [tenant.pk, data.external_id, *customer_params])
        rows = cursor.fetchall()
    split, end = _ORDERS.width, _ORDERS.width + _CUSTOMERS.width
    order, customer = _ORDERS.from_row(rows[0][:split]), _CUSTOMERS.from_row(rows[0][split:end])
    lines = tuple(line for line in (_LINES.from_row(row[end:]) for row in rows) if line is not None)
    return _Seen(order=order, customer=customer, lines=lines)


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
    customer_unchanged = seen.customer is None or not _customer_apply(seen.customer, data.customer, source)
    if seen.order is not None and seen.customer is not None and customer_unchanged:
        plan = _order_plan(tenant, seen.order, seen.customer, data, source)
        if not plan.changed:
            return IngestResult(order=plan.order, created=False, changed=False, lines=seen.lines)

    def run(seen: _Seen | None) -> IngestResult:
        with transaction.atomic():
            _advisory_locks(tenant.pk, ("order", data.external_id), ("customer", _customer_lock_key(data.customer)))
            guarded = seen is not None
            if seen is None:
                seen = _order_seen(tenant, data)
            customer, customer_created = _customer_write(tenant, seen.customer, data.customer, source)
            plan = _order_plan(tenant, seen.order, customer, data, source)
            return _order_write(tenant, plan, seen.lines, customer, customer_created, data, backfill, guarded=guarded)

    if seen.order is None and customer_unchanged:
        try:
            return run(seen)
        except (_Raced, IntegrityError):
            pass
    return _retry_once_on_conflict(lambda: run(None))


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
    implied = set(_STATUS_IMPLIES[data.status])
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
    tenant: Tenant, plan: _Plan, lines: tuple[OrderLine, ...], customer: Customer, customer_created: bool,
    data: OrderIn, backfill: bool, *, guarded: bool = False,
) -> IngestResult:
    """Write what the plan says. `guarded`: the plan comes from a read made before the locks, so
    the customer and order inserts give way to a row that exists by now (_Raced)."""
    order = plan.order
    if customer_created:
        # The plan gave the order to this customer (whose id is not known yet) unless the payload
        # was stale; then the order stays with its customer and the new one has no orders.
        owns = order.customer_id is None
        if owns:
            _aggregates_first(tenant, customer, order)
        if not _CUSTOMERS.insert([customer], ignore_conflicts=guarded):
            raise _Raced
        events = [_customer_created_event(tenant, customer)]
        if owns:
            order.customer = customer
    else:
        events = []
    if not plan.changed:
        _EVENTS.insert_dicts(events)
        return IngestResult(order=order, created=False, changed=False, lines=lines)
    if plan.created:
        if not _ORDERS.insert([order], ignore_conflicts=guarded):
            raise _Raced
    else:
        order.save()
    if plan.created or (not plan.stale and data.lines and _lines_signature(lines) != _lines_signature(data.lines)):
        lines = _replace_lines(tenant, order, data.lines, new_order=plan.created)
    if plan.first_sight:
        events.append(_event(tenant=tenant, type="order.placed", occurred_at=order.placed_at, customer=customer,
                             order=order, data=order_event_data(order), dedupe_key=f"order.placed:{order.pk}",
                             backfill=backfill))
    if plan.first_sight and not plan.created:
        # The placeholder's events (order.refunded, order.delivered) did not know whose order it was.
        Event.objects.for_tenant(tenant).filter(order=order, customer__isnull=True).update(customer=customer)
    events.extend(_milestone_events(tenant, order, plan.before, backfill))
    _EVENTS.insert_dicts(events)
    if plan.created and not customer_created:
        _aggregates_add(tenant, customer, order)
    elif not customer_created:
        refresh_aggregates(tenant, {customer.pk})
    if plan.previous_customer_id and plan.previous_customer_id != customer.pk:
        refresh_aggregates(tenant, {plan.previous_customer_id})
    return IngestResult(order=order, created=plan.created, changed=True, lines=lines)


def _locked_order(tenant: Tenant, external_id: str) -> Order:
    _advisory_lock(tenant.pk, "order", external_id)
    order = Order.objects.for_tenant(tenant).select_related("customer").filter(external_id=external_id).first()
    if order is None:
        raise NotFound("orders.not_found", f"no order with external_id {external_id!r}")
    return order


def order_mark(*, tenant: Tenant, external_id: str, milestone: str, at: dt.datetime | None = None,
               reason: str = "") -> tuple[Order, bool]:
    """Set fulfilled_at, delivered_at or cancelled_at once. Returns (order, changed)."""
    field = {"fulfilled": "fulfilled_at", "delivered": "delivered_at", "cancelled": "cancelled_at"}[milestone]
    with transaction.atomic():
        order = _locked_order(tenant, external_id)
        if getattr(order, field) is not None:
            return order, False
        before = {name: getattr(order, name) for name, _ in MILESTONES}
        setattr(order, field, at or clock.now())
        if milestone == "cancelled" and reason:
            order.cancel_reason = reason
        order.status = order.derive_status()
        order.save()
        _EVENTS.insert_dicts(_milestone_events(tenant, order, before, backfill=False))
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


def refund_record(*, tenant: Tenant, order_external_id: str, data: RefundIn, source: str = Order.Source.API,
                  create_missing_order_in: str | None = None) -> tuple[Refund, bool]:
    """Record a refund once per refund id; the order's refunded total is the sum of its refunds.

    A refund larger than what is left to refund is refused, unless the order is still a
    placeholder (total unknown because the platform sent the refund first).
    """

    def run() -> tuple[Refund, bool]:
        with transaction.atomic():
            if create_missing_order_in:
                _advisory_lock(tenant.pk, "order", order_external_id)
                order = order_placeholder(tenant=tenant, external_id=order_external_id,
                                          currency=create_missing_order_in, source=source)
            else:
                order = _locked_order(tenant, order_external_id)
            existing = Refund.objects.for_tenant(tenant).filter(order=order, external_id=data.external_id).first()
            if existing:
                return existing, False
            remaining = order.total - order.refunded_total
            is_placeholder = order.placed_at is None
            if not is_placeholder and data.amount > remaining:
                raise ServiceError(
                    "refunds.exceeds_total",
                    f"refund of {money_str(data.amount, order.currency)} {order.currency} exceeds the "
                    f"{money_str(remaining, order.currency)} {order.currency} left to refund on this order",
                    {"amount": [f"must be at most {money_str(remaining, order.currency)}"]},
                )
            refund = Refund.objects.for_tenant(tenant).create(
                tenant=tenant, order=order, external_id=data.external_id, amount=data.amount,
                currency=order.currency, reason=data.reason, refunded_at=data.refunded_at or clock.now(),
            )
            Order.objects.for_tenant(tenant).filter(pk=order.pk).update(refunded_total=F("refunded_total") + data.amount)
            order.refresh_from_db()
            new_status = order.derive_status()
            if new_status != order.status:
                Order.objects.for_tenant(tenant).filter(pk=order.pk).update(status=new_status)
                order.status = new_status
            event_append(
                tenant=tenant, type="order.refunded", occurred_at=refund.refunded_at, customer=order.customer,
                order=order, dedupe_key=f"order.refunded:{order.pk}:{refund.external_id}",
                data={"amount": money_str(refund.amount, refund.currency), "currency": refund.currency, "reason": refund.reason,
                      "refund_external_id": refund.external_id, "full": new_status == Order.Status.REFUNDED},
            )
            if order.customer_id:
                customer_refresh_aggregates(customer=order.customer)
            return refund, True

    return _retry_once_on_conflict(run)


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()
