"""The order list (newest placed first, status and date filters, search, keyset pages) and the order page."""

import datetime as dt
import re

import pytest
from django.urls import reverse

from lifecycle import clock
from lifecycle.models import Order
from lifecycle.orders import order_placeholder
from tests.factories import order_payload
from workspace import orders as pages

pytestmark = pytest.mark.django_db


def post_order(api, external_id: str, placed_at: str, email: str = "ada@example.com", **overrides):
    body = order_payload(external_id=external_id, number=overrides.pop("number", f"#{external_id}"), placed_at=placed_at,
                         customer={"external_id": email.split("@")[0], "email": email}, **overrides)
    response = api.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content


def url(tenant, **params) -> str:
    return reverse("workspace:orders", kwargs={"tenant": tenant.slug}) + (
        "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def listed(response) -> list[str]:
    body = response.content.decode()
    if 'id="order-list"' not in body:
        return []
    table = body.split('id="order-list"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'/orders/\d+/">([^<]+)</a>', table)


def next_link(response) -> str | None:
    found = re.search(r'href="([^"]+)" rel="next"', response.content.decode())
    return found.group(1).replace("&amp;", "&") if found else None


def bulk(tenant, n: int, placed_at: dt.datetime, **fields) -> list[Order]:
    return Order.objects.for_tenant(tenant).bulk_create([
        Order(tenant=tenant, external_id=f"bulk-{i}", number=f"#B{i}", currency="EUR", total="10", status="paid",
              placed_at=placed_at, paid_at=placed_at, **fields) for i in range(n)])


@pytest.fixture
def three_orders(api, tenant, other_tenant, other_api):
    with clock.frozen(dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)):
        post_order(api, "A1", "2026-11-20T10:00:00Z")
        post_order(api, "A2", "2026-11-21T22:30:00Z", email="bob@example.com")  # 23:30 in Berlin, the 21st
        # Delivered implies shipped: at the time the store said so, the clock's now.
        post_order(api, "A3", "2026-11-22T08:00:00Z", status="delivered", delivered_at="2026-11-23T08:00:00Z")
    assert other_api.post("/api/v1/orders", order_payload(external_id="G1", number="#G1")).status_code == 201


def test_newest_placed_first_with_customers_statuses_and_totals(as_viewer, tenant, three_orders):
    response = as_viewer.get(url(tenant))
    assert response.status_code == 200
    assert listed(response) == ["#A3", "#A2", "#A1"]
    body = response.content.decode()
    assert re.findall(r'/customers/\d+/">([^<]+)</a>', body) == ["ada@example.com", "bob@example.com", "ada@example.com"]
    assert "Showing 3 of 3 orders." in body
    assert '<span class="badge delivered">delivered</span>' in body
    assert "59.90 EUR" in body
    assert "#G1" not in body
    assert next_link(response) is None


@pytest.mark.parametrize(("params", "expected"), [
    ({"status": "delivered"}, ["#A3"]),
    ({"status": "paid"}, ["#A2", "#A1"]),
    ({"status": "refunded"}, []),
    # Whole days in the store's zone (Berlin): A2 was placed at 23:30 on the 21st there.
    ({"from": "2026-11-21", "to": "2026-11-21"}, ["#A2"]),
    ({"from": "2026-11-22"}, ["#A3"]),
    ({"to": "2026-11-20"}, ["#A1"]),
    ({"from": "2026-11-21", "status": "paid"}, ["#A2"]),
    ({"q": "A2"}, ["#A2"]),
    ({"q": "%23A2"}, ["#A2"]),
    ({"q": "A3"}, ["#A3"]),
    ({"q": "Ada@Example.com"}, ["#A3", "#A1"]),
    ({"q": "ada@example"}, []),
    ({"q": "G1"}, []),
])
def test_filters_and_search(as_viewer, tenant, three_orders, params, expected):
    response = as_viewer.get(url(tenant, **params))
    assert response.status_code == 200
    assert [n for n in listed(response) if n.startswith("#")] == expected
    if not expected:
        assert "No order matches" in response.content.decode()


def test_search_by_external_id_finds_it_under_another_number(api, as_viewer, tenant):
    post_order(api, "shop-9f3", "2026-11-20T10:00:00Z", number="#1042")
    assert listed(as_viewer.get(url(tenant, q="shop-9f3")))[0] == "#1042"
    assert listed(as_viewer.get(url(tenant, q="1042")))[0] == "#1042"


def test_orders_awaiting_their_details_are_listed_apart(as_viewer, tenant, three_orders):
    # What a refund or a delivery that comes before its order leaves behind.
    placeholder = order_placeholder(tenant=tenant, external_id="LATE-2", currency="EUR", source=Order.Source.SHOPIFY)
    default = listed(as_viewer.get(url(tenant)))
    assert "LATE-2" not in default
    awaiting = as_viewer.get(url(tenant, status="awaiting"))
    assert "LATE-2" in listed(awaiting)
    assert "awaiting details" in awaiting.content.decode()
    found = as_viewer.get(url(tenant, q="LATE-2"))
    assert listed(found) == ["LATE-2"]
    page = as_viewer.get(reverse("workspace:order", kwargs={"tenant": tenant.slug, "order_id": placeholder.pk}))
    assert "We heard of this order through a refund or a delivery" in page.content.decode()


def test_keyset_pages_break_ties_on_the_same_instant_by_id(as_viewer, tenant):
    instant = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
    made = bulk(tenant, pages.PAGE_SIZE + 7, instant)
    bulk_later = Order.objects.for_tenant(tenant).create(tenant=tenant, external_id="later", number="#LATER",
                                                         currency="EUR", status="paid",
                                                         placed_at=instant + dt.timedelta(seconds=1))
    first = as_viewer.get(url(tenant))
    second = as_viewer.get(reverse("workspace:orders", kwargs={"tenant": tenant.slug}) + next_link(first))
    numbers = listed(first) + listed(second)
    assert numbers == [bulk_later.number] + [o.number for o in sorted(made, key=lambda o: o.pk, reverse=True)]
    assert len(listed(first)) == pages.PAGE_SIZE
    assert next_link(second) is None
    assert "← Newest" in second.content.decode()


def test_filters_are_kept_across_pages(as_viewer, tenant):
    instant = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
    bulk(tenant, pages.PAGE_SIZE + 2, instant)
    Order.objects.for_tenant(tenant).filter(external_id="bulk-0").update(status="delivered")
    first = as_viewer.get(url(tenant, status="paid"))
    link = next_link(first)
    assert "status=paid" in link
    second = as_viewer.get(reverse("workspace:orders", kwargs={"tenant": tenant.slug}) + link)
    assert len(listed(second)) == 1


@pytest.mark.parametrize(("params", "message"), [
    ({"status": "lost"}, "Status &#x27;lost&#x27; is not one of: pending, paid, fulfilled, delivered, refunded, "
                         "cancelled, awaiting."),
    ({"from": "21.11.2026"}, "From &#x27;21.11.2026&#x27; is not a date such as 2026-11-23."),
    ({"from": "2026-11-22", "to": "2026-11-21"}, "From (2026-11-22) is after To (2026-11-21): swap them."),
    ({"after": "garbage"}, "This page link is damaged: start again from the first page."),
    ({"after": pages.encode_cursor(["not a time", 3])}, "This page link is damaged"),
])
def test_bad_filters_are_a_400_with_the_message_on_the_form(as_viewer, tenant, three_orders, params, message):
    response = as_viewer.get(url(tenant, **params))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert listed(response) == []


def test_an_empty_store(as_viewer, tenant):
    body = as_viewer.get(url(tenant)).content.decode()
    assert "No orders yet" in body and "POST /api/v1/orders" in body


def test_the_order_page(api, as_viewer, tenant, three_orders):
    with clock.frozen(dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)):
        assert api.post("/api/v1/orders/A3/refunds", {"external_id": "R-9", "amount": "19.90",
                                                      "reason": "beans stale"}).status_code == 201
    order = Order.objects.for_tenant(tenant).get(external_id="A3")
    response = as_viewer.get(reverse("workspace:order", kwargs={"tenant": tenant.slug, "order_id": order.pk}))
    assert response.status_code == 200
    words = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))
    assert "Order #A3 delivered" in words
    assert "Total 59.90 EUR Refunded 19.90 EUR Net 40.00 EUR" in words
    assert "Placed 2026-11-22 09:00 Paid 2026-11-22 09:00 Shipped 2026-11-23 09:00 Delivered 2026-11-23 09:00 " \
           "Cancelled —" in words
    assert "House beans 1 kg BEANS-1KG 2 24.95 EUR 49.90 EUR" in words
    assert "Paper filters FILTER-100 1 15.00 EUR 15.00 EUR" in words
    assert "Discounts 5.00 EUR (WELCOME5)" in words
    assert "2026-11-24 10:00 19.90 EUR beans stale R-9" in words
    assert f'href="/app/acme/customers/{order.customer_id}/"' in response.content.decode()
    assert "order.refunded" in words and "order.delivered" in words


def test_another_stores_order_is_a_404(as_outsider, tenant, other_tenant, three_orders):
    order = Order.objects.for_tenant(tenant).get(external_id="A1")
    for slug in (tenant.slug, other_tenant.slug):
        response = as_outsider.get(reverse("workspace:order", kwargs={"tenant": slug, "order_id": order.pk}))
        assert response.status_code == 404
