"""Each customer's order count, spend and first/last order, kept by set-based SQL as orders arrive and change."""

import datetime as dt
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from . import citus
from .models import (
    Customer,
    Order,
    Tenant,
)
from .money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS
from .rows import Batch, execute

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


def _aggregates_sql() -> str:
    counted = _COUNTED_ORDERS
    # Table names come from the models and every value is a parameter (hence the noqa: S608 below).
    return (
        f"UPDATE {Customer._meta.db_table} SET "  # noqa: S608
        f"order_count = (SELECT count(*) {counted}), "
        f"first_order_at = (SELECT min(coalesce(o.placed_at, o.paid_at)) {counted}), "
        f"last_order_at = (SELECT max(coalesce(o.placed_at, o.paid_at)) {counted}), "
        # Saturates at what the column holds (10^15): no number of accepted orders can make this fail.
        f"total_spent = least(coalesce((SELECT sum(o.total - o.refunded_total) {counted} AND o.currency = %s), 0), "
        f"{TOTAL_SPENT_MAX}) "
        "WHERE tenant_id = %s AND id IN ({ids})"
    )


# On Citus: the same figures from one grouped read of the customers' orders. Citus refuses an UPDATE whose
# SET has COALESCE around a subquery ("non-IMMUTABLE functions are not allowed in CASE or COALESCE").
_AGGREGATES_SQL_CITUS = (
    f"UPDATE {Customer._meta.db_table} AS c SET order_count = a.n, first_order_at = a.first, "  # noqa: S608
    f"last_order_at = a.last, total_spent = least(a.spent, {TOTAL_SPENT_MAX}) "
    "FROM (SELECT cu.id, count(o.id) AS n, min(coalesce(o.placed_at, o.paid_at)) AS first, "
    "max(coalesce(o.placed_at, o.paid_at)) AS last, "
    "coalesce(sum(o.total - o.refunded_total) FILTER (WHERE o.currency = %s), 0) AS spent "
    f"FROM {Customer._meta.db_table} cu LEFT JOIN {Order._meta.db_table} o ON o.tenant_id = cu.tenant_id "
    "AND o.customer_id = cu.id AND o.paid_at IS NOT NULL AND o.cancelled_at IS NULL "
    "WHERE cu.tenant_id = %s AND cu.id IN ({ids}) GROUP BY cu.id) a "
    "WHERE c.tenant_id = %s AND c.id = a.id"
)

# By whether the database is Citus.
_AGGREGATES_SQL = {False: _aggregates_sql(), True: _AGGREGATES_SQL_CITUS}


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
        on_citus = citus.enabled(connection)
        execute(cursor, _AGGREGATES_SQL[on_citus].format(ids=placeholders),
                [currency, tenant_id, *ids, *([tenant_id] if on_citus else [])])


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


def order_share(tenant: Tenant, order: Order) -> tuple[Decimal, dt.datetime] | None:
    """What one order adds to its customer's aggregates: (spend, when), None when it does not count.
    The same rules as _AGGREGATES_SQL."""
    if order.paid_at is None or order.cancelled_at is not None:
        return None
    spent = Decimal(order.total) - Decimal(order.refunded_total) if order.currency == tenant.currency else Decimal(0)
    return spent, order.placed_at or order.paid_at


def aggregates_add(tenant: Tenant, customer: Customer, order: Order, batch: Batch | None = None) -> None:
    """Add a new order's share to its customer's aggregates (with `batch`: when the batch is sent)."""
    share = order_share(tenant, order)
    if share is None:
        return
    conn = connections[DEFAULT_DB_ALIAS]
    spent = _SPENT_FIELD.get_db_prep_save(share[0], conn)
    at = _AT_FIELD.get_db_prep_save(share[1], conn)
    params = [spent, at, at, at, at, tenant.pk, customer.pk]
    if batch is not None:
        batch.add(_ADD_ORDER_SQL, params)
        return
    with conn.cursor() as cursor:
        execute(cursor, _ADD_ORDER_SQL, params)


def aggregates_first(tenant: Tenant, customer: Customer, order: Order) -> None:
    """A customer not yet written, whose only order this is: its aggregates, set in memory."""
    share = order_share(tenant, order)
    if share is not None:
        customer.order_count, customer.total_spent = 1, share[0]
        customer.first_order_at = customer.last_order_at = share[1]


_SPENT_FIELD, _AT_FIELD = Customer._meta.get_field("total_spent"), Customer._meta.get_field("first_order_at")
