"""The customer list: newest first a page at a time, filters, email and id search, counts, bad input."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.urls import reverse

from lifecycle.models import Customer
from workspace import customers as pages

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


def make(tenant, n: int, **fields) -> list[Customer]:
    """n customers of `tenant`, created in one statement, oldest first (ids ascending)."""
    prefix = fields.pop("prefix", "shopper")
    rows = [Customer(tenant=tenant, external_id=f"{prefix}-{i}", email=f"{prefix}{i}@example.com", **fields)
            for i in range(n)]
    return Customer.objects.for_tenant(tenant).bulk_create(rows)


def url(tenant, **params) -> str:
    return reverse("workspace:customers", kwargs={"tenant": tenant.slug}) + (
        "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def listed_emails(response) -> list[str]:
    body = response.content.decode()
    table = body.split('id="customer-list"', 1)[1].split("</table>", 1)[0] if 'id="customer-list"' in body else ""
    return re.findall(r'/customers/\d+/">([^<]+)</a>', table)


def next_link(response) -> str | None:
    found = re.search(r'href="([^"]+)" rel="next"', response.content.decode())
    return found.group(1).replace("&amp;", "&") if found else None


def test_newest_first_with_an_exact_count_and_no_next_page_at_exactly_one_page(as_viewer, tenant, other_tenant):
    make(tenant, pages.PAGE_SIZE)
    make(other_tenant, 3, prefix="globex")
    response = as_viewer.get(url(tenant))
    assert response.status_code == 200
    emails = listed_emails(response)
    assert emails == [f"shopper{i}@example.com" for i in reversed(range(pages.PAGE_SIZE))]
    assert "Showing 50 of 50 customers." in response.content.decode()
    assert next_link(response) is None
    assert "globex" not in response.content.decode()


def test_keyset_pages_cover_every_customer_once_across_the_page_boundary(as_viewer, tenant):
    made = make(tenant, 2 * pages.PAGE_SIZE + 1)
    seen = []
    response = as_viewer.get(url(tenant))
    pages_seen = 0
    while True:
        pages_seen += 1
        seen += listed_emails(response)
        link = next_link(response)
        if link is None:
            break
        response = as_viewer.get(reverse("workspace:customers", kwargs={"tenant": tenant.slug}) + link)
        assert response.status_code == 200
        assert "← Newest" in response.content.decode()
    assert pages_seen == 3
    assert seen == [c.email for c in sorted(made, key=lambda c: c.pk, reverse=True)]


def test_the_page_after_a_cursor_starts_strictly_below_it(tenant):
    made = make(tenant, 5)
    cursor = pages.encode_cursor([made[2].pk])
    page = pages.customer_page(tenant=tenant, after=cursor)
    assert [c.pk for c in page.rows] == [made[1].pk, made[0].pk]
    assert page.next_cursor is None


def test_search_by_email_prefix_is_case_insensitive_and_ordered_by_email(as_viewer, tenant):
    Customer.objects.for_tenant(tenant).bulk_create([
        Customer(tenant=tenant, email=email) for email in ("kimc@example.com", "kima@example.com", "ki@example.com",
                                                           "kimb@example.org", "ann@kim.example")])
    response = as_viewer.get(url(tenant, q="KIM"))
    assert listed_emails(response) == ["kima@example.com", "kimb@example.org", "kimc@example.com"]
    assert "Showing 3 of 3 matches for “KIM”." in response.content.decode()
    exact = as_viewer.get(url(tenant, q=" Kimb@Example.org "))
    assert listed_emails(exact) == ["kimb@example.org"]
    assert "Showing 1 of 1 match for “Kimb@Example.org”." in exact.content.decode()


def test_search_by_external_id_is_exact(as_viewer, tenant):
    make(tenant, 12)
    assert listed_emails(as_viewer.get(url(tenant, q="shopper-11"))) == ["shopper11@example.com"]
    # A part of an id is no match (ids are not prefix-searched: they are the store's, exact).
    response = as_viewer.get(url(tenant, q="shopper-1x"))
    assert listed_emails(response) == []
    body = response.content.decode()
    assert "No customer matches “shopper-1x”" in body
    assert "Search by the start of an email address" in body


def test_search_pages_by_email_then_id(as_viewer, tenant):
    make(tenant, pages.PAGE_SIZE + 5)
    first = as_viewer.get(url(tenant, q="shopper"))
    second = as_viewer.get(reverse("workspace:customers", kwargs={"tenant": tenant.slug}) + next_link(first))
    everyone = [c.email for c in Customer.objects.for_tenant(tenant).order_by("email", "id")]
    assert listed_emails(first) == everyone[: pages.PAGE_SIZE]
    assert listed_emails(second) == everyone[pages.PAGE_SIZE:]
    assert next_link(second) is None


@pytest.mark.parametrize(("consent", "expected"), [
    ("subscribed", ["yes@example.com"]),
    ("no", ["gone@example.com", "no@example.com"]),
    ("unknown", ["bounced@example.com", "never@example.com"]),
    ("unsubscribed", ["gone@example.com"]),
    ("suppressed", ["bounced@example.com"]),
])
def test_consent_filters(as_viewer, tenant, consent, expected):
    Customer.objects.for_tenant(tenant).bulk_create([
        Customer(tenant=tenant, email="yes@example.com", marketing_consent=True),
        Customer(tenant=tenant, email="no@example.com", marketing_consent=False),
        Customer(tenant=tenant, email="never@example.com"),
        Customer(tenant=tenant, email="gone@example.com", marketing_consent=False, unsubscribed_at=T0),
        Customer(tenant=tenant, email="bounced@example.com", suppressed_at=T0, suppression_reason="bounce"),
    ])
    response = as_viewer.get(url(tenant, consent=consent))
    assert sorted(listed_emails(response)) == expected


def test_has_ordered_filter(as_viewer, tenant):
    Customer.objects.for_tenant(tenant).bulk_create([
        Customer(tenant=tenant, email="buyer@example.com", first_order_at=T0, last_order_at=T0, order_count=1),
        Customer(tenant=tenant, email="browser@example.com"),
    ])
    assert listed_emails(as_viewer.get(url(tenant, ordered="yes"))) == ["buyer@example.com"]
    assert listed_emails(as_viewer.get(url(tenant, ordered="no"))) == ["browser@example.com"]
    both = as_viewer.get(url(tenant, ordered="yes", consent="unknown", q="buy"))
    assert listed_emails(both) == ["buyer@example.com"]


def test_an_empty_store_says_how_customers_arrive(as_viewer, tenant):
    body = as_viewer.get(url(tenant)).content.decode()
    assert "No customers yet" in body
    assert "POST /api/v1/orders" in body
    assert 'id="customer-list"' not in body


@pytest.mark.parametrize(("params", "message"), [
    ({"consent": "maybe"}, "Consent &#x27;maybe&#x27; is not one of: subscribed, no, unknown, unsubscribed, suppressed."),
    ({"ordered": "often"}, "Orders &#x27;often&#x27; is not one of: yes, no."),
    ({"after": "not-a-cursor!"}, "This page link is damaged: start again from the first page."),
    ({"after": pages.encode_cursor(["x"])}, "This page link is damaged: start again from the first page."),
    ({"q": "a@b.co", "after": pages.encode_cursor([1, 2])}, "This page link is damaged"),
])
def test_bad_filters_and_page_links_are_a_400_with_the_message_on_the_form(as_viewer, tenant, params, message):
    make(tenant, 2)
    response = as_viewer.get(url(tenant, **params))
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert 'id="customer-list"' not in body


def test_past_the_exact_limit_the_count_is_the_planners_estimate(as_viewer, tenant):
    make(tenant, pages.EXACT_COUNT_LIMIT + 1)
    body = as_viewer.get(url(tenant)).content.decode()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE lifecycle_customer")
        body = as_viewer.get(url(tenant)).content.decode()
        assert "Showing 50 of about 1,000 customers." in body
    else:
        assert "Showing 50 of more than 1,000 customers." in body
    assert "1,001" not in body


def test_round_estimate_keeps_two_significant_figures():
    assert [pages.round_estimate(n) for n in (7, 1001, 1_049_999, 987_654)] == [7, 1000, 1_000_000, 990_000]
