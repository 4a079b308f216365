"""Customers (lookup and erasure) and custom events."""

from decimal import Decimal

import pytest

from lifecycle.models import Customer, Event, Order
from tests.factories import order_payload

pytestmark = pytest.mark.django_db


def test_get_customer_by_external_id(api, tenant):
    api.post("/api/v1/orders", order_payload(customer={"external_id": "c-7", "email": "Ada@Example.com",
                                                        "first_name": "Ada", "marketing_consent": False},
                                             total="12.50", lines=[]))

    response = api.get("/api/v1/customers/c-7")

    assert response.status_code == 200
    data = response.json()
    assert (data["email"], data["first_name"], data["marketing_consent"]) == ("ada@example.com", "Ada", False)
    assert (data["order_count"], data["total_spent"], data["currency"]) == (1, "12.50", "EUR")


def test_find_customers_by_email(api, tenant):
    api.post("/api/v1/orders", order_payload(customer={"email": "guest@example.com"}))

    found = api.get("/api/v1/customers", {"email": " GUEST@example.com "})
    missing = api.get("/api/v1/customers", {"email": "nobody@example.com"})
    bad = api.get("/api/v1/customers")

    assert [c["email"] for c in found.json()["results"]] == ["guest@example.com"]
    assert missing.json() == {"results": []}
    assert bad.status_code == 400 and bad.json()["fields"] == {"email": ["is required"]}


def test_erasure_anonymizes_and_keeps_aggregates(api, tenant):
    api.post("/api/v1/orders", order_payload(external_id="E1", customer={"external_id": "c-9", "email": "x@y.com",
                                             "first_name": "Xi"}, total="30.00", lines=[],
                                             landing_site="/?utm_source=x@y.com"))
    api.post("/api/v1/events", {"type": "support.contacted", "customer": {"external_id": "c-9"},
                                "data": {"email": "x@y.com"}})

    response = api.delete("/api/v1/customers/c-9")

    assert response.status_code == 204
    customer = Customer.objects.for_tenant(tenant).get()
    assert (customer.external_id, customer.email, customer.first_name) == (None, "", "")
    assert customer.erased_at is not None and customer.suppressed_at is not None
    assert customer.marketing_consent is False
    assert customer.order_count == 1 and customer.total_spent == Decimal("30.00")
    order = Order.objects.for_tenant(tenant).get()
    assert order.customer_id == customer.pk and order.landing_site == ""
    assert all(e.data == {} for e in Event.objects.for_tenant(tenant).exclude(type="customer.erased"))
    erased = Event.objects.for_tenant(tenant).get(type="customer.erased")
    assert len(erased.data["email_sha256"]) == 64 and "x@y.com" not in str(erased.data)
    assert api.get("/api/v1/customers/c-9").status_code == 404
    assert api.delete("/api/v1/customers/c-9").status_code == 404


def test_a_new_order_after_erasure_is_a_new_customer(api, tenant):
    api.post("/api/v1/orders", order_payload(customer={"external_id": "c-9", "email": "x@y.com"}))
    api.delete("/api/v1/customers/c-9")

    api.post("/api/v1/orders", order_payload(customer={"external_id": "c-9", "email": "x@y.com"}))

    assert Customer.objects.for_tenant(tenant).count() == 2
    assert Customer.objects.for_tenant(tenant).get(external_id="c-9").erased_at is None


def test_custom_event_recorded_once_per_idempotency_key(api, tenant):
    body = {"type": "support.contacted", "customer": {"email": "help@example.com"},
            "occurred_at": "2026-11-22T10:00:00-05:00", "idempotency_key": "ticket-42", "data": {"channel": "chat"}}

    first = api.post("/api/v1/events", body)
    again = api.post("/api/v1/events", body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["created"] is True and again.json()["created"] is False
    assert first.json()["occurred_at"] == "2026-11-22T15:00:00Z"
    events = Event.objects.for_tenant(tenant).filter(type="support.contacted")
    assert [(e.data, e.customer.email) for e in events] == [({"channel": "chat"}, "help@example.com")]


def test_custom_event_linked_to_an_order(api, tenant):
    api.post("/api/v1/orders", order_payload(external_id="O1", customer={"external_id": "c1"}))

    response = api.post("/api/v1/events", {"type": "product.registered", "customer": {"external_id": "c1"},
                                           "order_external_id": "O1"})

    assert response.status_code == 201
    assert Event.objects.for_tenant(tenant).get(type="product.registered").order.external_id == "O1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "order.paid", "customer": {"email": "a@b.co"}}, "body"),
        ({"type": "Support Contacted", "customer": {"email": "a@b.co"}}, "type"),
        ({"type": "support.contacted", "customer": {}}, "customer"),
        ({"type": "support.contacted", "customer": {"email": "a@b.co"}, "occurred_at": "2026-01-01"}, "occurred_at"),
    ],
)
def test_bad_events_are_400_and_write_nothing(api, tenant, body, field):
    response = api.post("/api/v1/events", body)

    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert Event.objects.for_tenant(tenant).count() == 0
    assert Customer.objects.for_tenant(tenant).count() == 0


def test_event_for_unknown_order_is_404_and_writes_nothing(api, tenant):
    response = api.post("/api/v1/events", {"type": "support.contacted", "customer": {"email": "new@b.co"},
                                           "order_external_id": "missing"})

    assert response.status_code == 404
    assert response.json()["code"] == "events.order_not_found"
    assert Customer.objects.for_tenant(tenant).count() == 0
