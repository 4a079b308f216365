"""POST /api/v1/orders and the order milestone endpoints, as a storefront developer uses them."""

import datetime as dt
from decimal import Decimal

import pytest

from lifecycle import clock
from lifecycle.models import Customer, Event, Order, OrderLine, Product, Refund
from tests.factories import order_payload

pytestmark = pytest.mark.django_db


def event_types(tenant, **filters) -> list[str]:
    return list(Event.objects.for_tenant(tenant).filter(**filters).order_by("pk").values_list("type", flat=True))


def test_create_order_stores_order_customer_lines_and_timeline(api, tenant):
    body = order_payload(external_id="1001", number="#1001")

    response = api.post("/api/v1/orders", body)

    assert response.status_code == 201, response.content
    data = response.json()
    assert data["external_id"] == "1001"
    assert data["status"] == "paid"
    assert data["total"] == "59.90"
    assert data["subtotal"] == "64.90"  # computed from the lines when not sent
    assert data["discount_total"] == "5.00"
    assert data["currency"] == "EUR"
    assert data["placed_at"] == "2026-11-20T09:00:00Z"  # stored in UTC
    assert data["paid_at"] == "2026-11-20T09:00:00Z"
    assert [line["unit_price"] for line in data["lines"]] == ["24.95", "15.00"]
    order = Order.objects.for_tenant(tenant).get(external_id="1001")
    assert order.total == Decimal("59.90") and order.currency == "EUR"
    assert order.discount_codes == ["WELCOME5"]
    customer = order.customer
    assert customer.email == body["customer"]["email"].lower()
    assert customer.external_id == body["customer"]["external_id"]
    assert customer.marketing_consent is True and customer.consent_source == "api"
    assert customer.order_count == 1 and customer.total_spent == Decimal("59.90")
    assert customer.first_order_at == customer.last_order_at == dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)
    assert OrderLine.objects.for_tenant(tenant).filter(order=order).count() == 2
    assert set(Product.objects.for_tenant(tenant).values_list("external_id", flat=True)) == {"p-beans", "p-filter"}
    assert event_types(tenant) == ["customer.created", "order.placed", "order.paid"]


def test_replaying_the_same_order_changes_nothing(api, tenant):
    body = order_payload()
    first = api.post("/api/v1/orders", body)

    replays = [api.post("/api/v1/orders", body) for _ in range(3)]

    assert first.status_code == 201
    assert [r.status_code for r in replays] == [200, 200, 200]
    assert all(r.json() == first.json() for r in replays)
    assert Order.objects.for_tenant(tenant).count() == 1
    assert Customer.objects.for_tenant(tenant).count() == 1
    assert OrderLine.objects.for_tenant(tenant).count() == 2
    assert event_types(tenant) == ["customer.created", "order.placed", "order.paid"]


def test_unpaid_order_emits_no_paid_event_until_paid(api, tenant):
    body = order_payload(status="pending")
    assert api.post("/api/v1/orders", body).json()["status"] == "pending"
    assert "order.paid" not in event_types(tenant)

    body["status"] = "paid"
    body["paid_at"] = "2026-11-21T08:00:00Z"
    response = api.post("/api/v1/orders", body)

    assert response.status_code == 200
    assert response.json()["paid_at"] == "2026-11-21T08:00:00Z"
    assert event_types(tenant, type="order.paid") == ["order.paid"]
    assert Customer.objects.for_tenant(tenant).get().order_count == 1


def test_status_only_moves_forward(api, tenant):
    body = order_payload(status="delivered", delivered_at="2026-11-22T15:00:00Z")
    api.post("/api/v1/orders", body)

    body["status"] = "paid"
    body.pop("delivered_at")
    response = api.post("/api/v1/orders", body)

    assert response.status_code == 200
    assert response.json()["status"] == "delivered"
    assert response.json()["delivered_at"] == "2026-11-22T15:00:00Z"
    assert event_types(tenant, order__external_id=body["external_id"]) == [
        "order.placed", "order.paid", "order.fulfilled", "order.delivered"]


def test_an_older_update_does_not_overwrite_a_newer_one(api, tenant):
    body = order_payload(updated_at="2026-11-21T10:00:00Z", number="#NEW")
    api.post("/api/v1/orders", body)

    stale = {**body, "updated_at": "2026-11-21T09:00:00Z", "number": "#OLD", "status": "fulfilled"}
    response = api.post("/api/v1/orders", stale)

    assert response.status_code == 200
    assert response.json()["number"] == "#NEW"
    # Facts still count: a stale payload can say the order shipped.
    assert response.json()["status"] == "fulfilled"


def test_update_replaces_changed_lines_and_total(api, tenant):
    body = order_payload()
    api.post("/api/v1/orders", body)
    body["lines"] = [{"sku": "ONE", "title": "One thing", "quantity": 1, "unit_price": "10.00"}]
    body["total"] = "10.00"

    response = api.post("/api/v1/orders", body)

    assert response.status_code == 200
    assert [(line["sku"], line["quantity"]) for line in response.json()["lines"]] == [("ONE", 1)]
    assert OrderLine.objects.for_tenant(tenant).count() == 1
    assert Customer.objects.for_tenant(tenant).get().total_spent == Decimal("10.00")


def test_guest_then_account_is_one_customer(api, tenant):
    guest = order_payload(customer={"email": "guest@example.com"})
    api.post("/api/v1/orders", guest)

    account = order_payload(customer={"external_id": "acct-9", "email": "GUEST@example.com", "first_name": "Gi"})
    api.post("/api/v1/orders", account)

    customer = Customer.objects.for_tenant(tenant).get()
    assert customer.external_id == "acct-9" and customer.first_name == "Gi"
    assert customer.order_count == 2


def test_orders_in_another_currency_count_but_do_not_add_to_spend(api, tenant):
    api.post("/api/v1/orders", order_payload(customer={"external_id": "c1"}, total="10.00", lines=[]))
    api.post("/api/v1/orders", order_payload(customer={"external_id": "c1"}, total="99.00", currency="USD", lines=[]))

    customer = Customer.objects.for_tenant(tenant).get()
    assert customer.order_count == 2
    assert customer.total_spent == Decimal("10.00")  # the store's currency is EUR


def test_fulfillment_delivery_and_cancellation(api, tenant):
    body = order_payload(external_id="A1")
    api.post("/api/v1/orders", body)

    shipped = api.post("/api/v1/orders/A1/fulfillment", {"fulfilled_at": "2026-11-21T12:00:00+01:00"})
    delivered = api.post("/api/v1/orders/A1/delivery", {})
    later = (clock.now() + dt.timedelta(days=1)).isoformat()
    again = api.post("/api/v1/orders/A1/delivery", {"delivered_at": later})

    assert shipped.status_code == 200 and shipped.json()["fulfilled_at"] == "2026-11-21T11:00:00Z"
    assert delivered.json()["status"] == "delivered"
    assert again.json()["delivered_at"] == delivered.json()["delivered_at"]  # set once
    assert event_types(tenant, type="order.delivered") == ["order.delivered"]

    cancelled = api.post("/api/v1/orders/A1/cancellation", {"reason": "customer"})
    assert cancelled.json()["status"] == "cancelled"
    customer = Customer.objects.for_tenant(tenant).get()
    assert customer.order_count == 0 and customer.total_spent == Decimal("0")


def test_refunds_partial_full_and_replayed(api, tenant):
    api.post("/api/v1/orders", order_payload(external_id="R1", total="50.00", lines=[]))

    partial = api.post("/api/v1/orders/R1/refunds", {"external_id": "rf-1", "amount": "20.00", "reason": "damaged"})
    replay = api.post("/api/v1/orders/R1/refunds", {"external_id": "rf-1", "amount": "20.00", "reason": "damaged"})
    customer = Customer.objects.for_tenant(tenant).get()
    assert (partial.status_code, replay.status_code) == (201, 200)
    assert partial.json()["status"] == "paid" and partial.json()["refunded_total"] == "20.00"
    assert customer.total_spent == Decimal("30.00")

    too_much = api.post("/api/v1/orders/R1/refunds", {"external_id": "rf-2", "amount": "30.01"})
    assert too_much.status_code == 400
    assert too_much.json()["code"] == "refunds.exceeds_total"
    assert too_much.json()["fields"] == {"amount": ["must be at most 30.00"]}
    assert Refund.objects.for_tenant(tenant).count() == 1

    full = api.post("/api/v1/orders/R1/refunds", {"external_id": "rf-2", "amount": "30.00"})
    assert full.status_code == 201
    assert full.json()["status"] == "refunded"
    assert [r["external_id"] for r in full.json()["refunds"]] == ["rf-1", "rf-2"]
    events = Event.objects.for_tenant(tenant).filter(type="order.refunded").order_by("pk")
    assert [(e.data["amount"], e.data["full"]) for e in events] == [("20.00", False), ("30.00", True)]
    customer.refresh_from_db()
    assert customer.total_spent == Decimal("0")


def test_refund_on_missing_order_is_404_and_writes_nothing(api, tenant):
    response = api.post("/api/v1/orders/nope/refunds", {"external_id": "rf-1", "amount": "1.00"})

    assert response.status_code == 404
    assert response.json()["code"] == "orders.not_found"
    assert Order.objects.for_tenant(tenant).count() == 0 and Refund.objects.for_tenant(tenant).count() == 0


def test_lowering_total_below_refunds_is_refused(api, tenant):
    body = order_payload(external_id="L1", total="50.00", lines=[])
    api.post("/api/v1/orders", body)
    api.post("/api/v1/orders/L1/refunds", {"external_id": "rf", "amount": "40.00"})

    response = api.post("/api/v1/orders", {**body, "total": "30.00"})

    assert response.status_code == 400
    assert response.json()["code"] == "orders.total_below_refunds"
    assert Order.objects.for_tenant(tenant).get().total == Decimal("50.00")


def test_get_order(api, tenant):
    api.post("/api/v1/orders", order_payload(external_id="G1"))

    response = api.get("/api/v1/orders/G1")

    assert response.status_code == 200
    assert response.json()["external_id"] == "G1"
    assert api.get("/api/v1/orders/G2").status_code == 404


def test_trailing_slash_is_accepted_without_redirect(api):
    response = api.post("/api/v1/orders/", order_payload())
    assert response.status_code == 201


def test_default_timestamps_come_from_the_clock(api, tenant):
    at = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)
    with clock.frozen(at):
        response = api.post("/api/v1/orders", order_payload(placed_at=None))
    assert response.json()["placed_at"] == "2026-03-29T01:30:00Z"
