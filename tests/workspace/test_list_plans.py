"""The list pages' queries use their indexes (PostgreSQL's plans, on enough rows that a sequential
scan would be chosen if the index did not fit): the query each page really sends is captured and
EXPLAINed, so a change to the query or the index that breaks the fit fails here."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lifecycle.models import Customer
from workspace import customers as customer_pages
from workspace import orders as order_pages

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL's plans"),
]

# The store under test is the smaller one, as most are beside the biggest: the primary key's order
# then says little about its rows, and the plan must use an index that starts with the tenant.
ROWS, OTHER_ROWS = 3_000, 30_000
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

CUSTOMERS_SQL = """
INSERT INTO lifecycle_customer (tenant_id, external_id, email, first_name, last_name, locale, time_zone,
    marketing_consent, consent_source, suppression_reason, order_count, total_spent, created_at, updated_at)
SELECT %(tenant)s, %(slug)s || '-' || i, %(slug)s || i || '@example.com', '', '', '', '',
    CASE i %% 10 WHEN 0 THEN true WHEN 1 THEN false END, '', '', 0, 0, now(), now()
FROM generate_series(1, %(n)s) AS i
"""
ORDERS_SQL = """
INSERT INTO lifecycle_order (tenant_id, external_id, number, status, placed_at, cancel_reason, currency, subtotal,
    discount_total, total, refunded_total, discount_codes, landing_site, referring_site, referral_code, source,
    created_at, updated_at)
SELECT %(tenant)s, %(slug)s || '-o' || i, '#' || i, CASE WHEN i %% 4 = 0 THEN 'paid' ELSE 'delivered' END,
    %(t0)s + i * interval '1 minute', '', 'EUR', 10, 0, 10, 0, '[]', '', '', '', 'api', now(), now()
FROM generate_series(1, %(n)s) AS i
"""


def load(sql: str, tenant, other_tenant, table: str) -> None:
    """Rows written by SQL (a second, not minutes): the plans depend on the numbers, not on the ORM."""
    with connection.cursor() as cursor:
        for store, n in ((tenant, ROWS), (other_tenant, OTHER_ROWS)):
            cursor.execute(sql, {"tenant": store.pk, "slug": store.slug, "n": n, "t0": T0})
        cursor.execute(f"ANALYZE {table}")


def plan_of_page_query(fetch) -> str:
    """The plan of the query that fetched the page's rows (the one with LIMIT PAGE_SIZE + 1)."""
    with CaptureQueriesContext(connection) as captured:
        fetch()
    [sql] = [q["sql"] for q in captured.captured_queries if f"LIMIT {customer_pages.PAGE_SIZE + 1}" in q["sql"]]
    return explain(sql)


def explain(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def assert_index_scan(plan: str, index: str = "", *, sorted_by_index: bool = True) -> None:
    """An index scan (of `index`, when named) that also gives the page its order: no Sort, no Seq Scan."""
    assert "Seq Scan" not in plan, plan
    assert re.search(rf"Index Scan (Backward )?using {index or 'customer_tenant_id_idx|lifecycle_customer_pkey'} ",
                     plan), plan
    if sorted_by_index:
        assert "Sort" not in plan, plan


def test_customer_list_pages_filters_and_searches_read_an_index(tenant, other_tenant):
    load(CUSTOMERS_SQL, tenant, other_tenant, "lifecycle_customer")
    page = lambda **kw: plan_of_page_query(lambda: customer_pages.customer_page(tenant=tenant, **kw))  # noqa: E731

    # The default order, newest first, and the page after a cursor: by (tenant, id), or by the primary
    # key where the statistics say the store's rows are most of those below the cursor.
    assert_index_scan(page())
    middle = Customer.objects.for_tenant(tenant).order_by("id").values_list("id", flat=True)[ROWS // 2]
    assert_index_scan(page(after=customer_pages.encode_cursor([middle])))
    # Email prefix search. Either index serves a prefix under the C collation; under any other
    # only the pattern one does. The matches are sorted by email (a handful for a real prefix).
    plan = page(q="ACME123@")
    assert "Seq Scan" not in plan, plan
    assert "Index Scan using customer_email_prefix_idx" in plan or \
        "Index Scan using customer_tenant_email_idx" in plan, plan
    # Without an @ the search is also an external id: both indexes, OR-ed.
    plan = page(q="ACME123")
    assert "Seq Scan" not in plan, plan
    assert "customer_tenant_external_id_uniq" in plan, plan
    assert "customer_email_prefix_idx" in plan or "customer_tenant_email_idx" in plan, plan
    # A filter that keeps one customer in ten, and one that keeps a few.
    assert_index_scan(page(consent="no"), "customer_tenant_consent_idx")
    assert_index_scan(page(consent="unsubscribed"), "customer_unsubscribed_idx")
    assert_index_scan(page(consent="suppressed"), "customer_suppressed_idx")


def test_order_list_pages_filters_and_searches_read_an_index(tenant, other_tenant):
    load(ORDERS_SQL, tenant, other_tenant, "lifecycle_order")
    page = lambda **kw: plan_of_page_query(lambda: order_pages.order_page(tenant=tenant, **kw))  # noqa: E731

    assert_index_scan(page(), "order_tenant_placed_idx")
    assert_index_scan(page(date_from=dt.date(2026, 1, 2), date_to=dt.date(2026, 1, 2)), "order_tenant_placed_idx")
    assert_index_scan(page(status="paid"), "order_tenant_status_idx")
    assert_index_scan(page(status="awaiting"), "order_placeholder_idx")
    with CaptureQueriesContext(connection) as captured:
        found = order_pages.order_page(tenant=tenant, q="1234")
    assert [o.number for o in found.rows] == ["#1234"]
    [sql] = [q["sql"] for q in captured.captured_queries if "lifecycle_order" in q["sql"]]
    plan = explain(sql)
    assert "Seq Scan" not in plan, plan
    assert "order_tenant_number_idx" in plan, plan
