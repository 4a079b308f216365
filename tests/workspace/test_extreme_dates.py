"""Extreme timestamps that PostgreSQL holds never break a page (issue 14, item 3).

Rows are written straight with the ORM at datetime.max / datetime.min (UTC), as older rows or another
path may have left them; every workspace page about them, the dashboard and the API's reads answer
200 in a store east and a store west of UTC. Date filters at the ends of the calendar answer 200
(the range is clamped) or a 400 that says why, never a 500.
"""

import datetime as dt

import pytest

from lifecycle.models import Customer, Order, Tenant
from tests.factories import order_payload

from .conftest import client_for, make_user

LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)
EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)


def _store_with_extreme_orders(api, tenant: Tenant, zone: str) -> tuple[Customer, list[Order]]:
    Tenant.objects.filter(pk=tenant.pk).update(time_zone=zone)
    for external_id in ("X-MAX", "X-MIN"):
        assert api.post("/api/v1/orders", order_payload(
            external_id=external_id, customer={"external_id": "X-C", "email": "x@example.com"})).status_code == 201
    orders = Order.objects.for_tenant(tenant)
    for external_id, moment in (("X-MAX", LATEST), ("X-MIN", EARLIEST)):
        orders.filter(external_id=external_id).update(placed_at=moment, paid_at=moment, fulfilled_at=moment,
                                                      delivered_at=moment, cancelled_at=moment)
    customer = Customer.objects.for_tenant(tenant).get(external_id="X-C")
    Customer.objects.for_tenant(tenant).filter(pk=customer.pk).update(
        first_order_at=EARLIEST, last_order_at=LATEST, consent_updated_at=LATEST)
    return customer, list(orders.filter(external_id__in=["X-MAX", "X-MIN"]).order_by("external_id"))


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/Los_Angeles", "Pacific/Kiritimati"])
def test_every_page_renders_orders_at_the_ends_of_time(api, tenant, zone):
    customer, orders = _store_with_extreme_orders(api, tenant, zone)
    client = client_for(make_user("olivia", tenant, "owner"))
    pages = ["/app/acme/", "/app/acme/orders/", "/app/acme/customers/", f"/app/acme/customers/{customer.pk}/",
             "/app/acme/dashboard/journeys/", "/app/acme/dashboard/feedback/", "/app/acme/dashboard/programs/",
             "/app/acme/orders/?status=paid", "/app/acme/customers/?ordered=yes",
             *[f"/app/acme/orders/{order.pk}/" for order in orders]]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, (page, response.status_code)
    listed = client.get("/app/acme/orders/").context["page"].rows
    assert [order.external_id for order in listed] == ["X-MAX", "X-MIN"]
    for path in ("/api/v1/orders/X-MAX", "/api/v1/orders/X-MIN", "/api/v1/customers/X-C"):
        response = api.get(path)
        assert response.status_code == 200, path
    assert api.get("/api/v1/orders/X-MAX").json()["placed_at"] == "9999-12-31T23:59:59.999999Z"
    assert api.get("/api/v1/orders/X-MIN").json()["placed_at"] == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/Los_Angeles"])
def test_order_dates_at_the_ends_of_the_calendar_are_clamped_not_a_500(api, tenant, zone):
    _store_with_extreme_orders(api, tenant, zone)
    client = client_for(make_user("olivia", tenant, "owner"))
    everything = client.get("/app/acme/orders/", {"from": "0001-01-01", "to": "9999-12-31"})
    assert everything.status_code == 200
    listed = [order.external_id for order in everything.context["page"].rows]
    assert sorted(listed) == ["X-MAX", "X-MIN"]
    only_last_day = client.get("/app/acme/orders/", {"from": "9999-12-31", "to": "9999-12-31"})
    assert only_last_day.status_code == 200
    only_first_day = client.get("/app/acme/orders/", {"from": "0001-01-01", "to": "0001-01-01"})
    assert only_first_day.status_code == 200
    assert [o.external_id for o in only_last_day.context["page"].rows] == ["X-MAX"]
    assert [o.external_id for o in only_first_day.context["page"].rows] == ["X-MIN"]
    bad = client.get("/app/acme/orders/", {"from": "10000-01-01"})
    assert bad.status_code == 400
    assert "From &#x27;10000-01-01&#x27; is not a date such as 2026-11-23." in bad.content.decode()


@pytest.mark.parametrize("query", [{"from": "0001-01-01", "to": "9999-12-31"}, {"from": "9999-12-31", "to": "9999-12-31"},
                                   {"from": "0001-01-01", "to": "0001-01-01"}])
@pytest.mark.parametrize("page", ["/app/acme/", "/app/acme/dashboard/journeys/", "/app/acme/dashboard/feedback/",
                                  "/app/acme/dashboard/programs/"])
def test_dashboard_periods_at_the_ends_of_the_calendar_answer_or_say_why(api, tenant, page, query):
    _store_with_extreme_orders(api, tenant, "Europe/Berlin")
    client = client_for(make_user("olivia", tenant, "owner"))
    response = client.get(page, query)
    assert response.status_code == 400, (page, query, response.status_code)
    assert response.context["errors"] == [
        f"{day} is outside the dates a period can cover: choose days from 1900-01-01 to 2999-12-31."
        for day in query.values()]
    assert client.get(page, {"from": "1900-01-01", "to": "1900-12-31"}).status_code == 200
    assert client.get(page, {"from": "2999-01-01", "to": "2999-12-31"}).status_code == 200
