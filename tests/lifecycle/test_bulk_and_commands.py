"""The bulk path (API and JSON Lines command: history by default, live orders on request) and the set-up commands."""

import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from journeys.models import Delivery, Enrollment
from lifecycle.models import ApiKey, Customer, Event, Membership, Order, OrderLine, StoreConnection, Tenant
from lifecycle.tenancy import UnscopedQueryError
from lifecycle.tenants import tenant_create
from tests.conftest import Api
from tests.factories import order_payload
from tests.journeys.helpers import make_journey, process_events

pytestmark = pytest.mark.django_db


def test_bulk_creates_valid_orders_and_reports_each_bad_one(api, tenant):
    good = [order_payload(external_id=f"B{i}", customer={"external_id": f"c{i % 3}", "email": f"c{i % 3}@ex.com"})
            for i in range(6)]
    bad = order_payload(external_id="BAD", currency="NOPE")

    response = api.post("/api/v1/orders/bulk", {"orders": [*good[:3], bad, "not an object", *good[3:]]})

    assert response.status_code == 200
    data = response.json()
    assert (data["created"], data["updated"], data["unchanged"], data["errors"]) == (6, 0, 0, 2)
    assert [r["result"] for r in data["results"]] == ["created"] * 3 + ["error", "error"] + ["created"] * 3
    assert data["results"][3]["external_id"] == "BAD"
    assert data["results"][3]["error"]["fields"] == {"currency": ["'NOPE' is not an ISO 4217 currency code such as \"EUR\""]}
    assert data["results"][4]["error"]["message"] == "each order must be a JSON object"
    assert Order.objects.for_tenant(tenant).count() == 6
    assert OrderLine.objects.for_tenant(tenant).count() == 12
    customers = Customer.objects.for_tenant(tenant).order_by("external_id")
    assert [(c.external_id, c.order_count, c.total_spent) for c in customers] == [
        ("c0", 2, Decimal("119.80")), ("c1", 2, Decimal("119.80")), ("c2", 2, Decimal("119.80"))]
    events = Event.objects.for_tenant(tenant)
    assert events.filter(type="order.paid").count() == 6
    assert events.filter(type="customer.created").count() == 3
    # Backfilled history is on the timeline, and marked so that it starts no journey.
    assert set(events.values_list("backfill", flat=True)) == {True}


def test_bulk_gives_the_same_rows_as_single_posts(api, tenant):
    other_tenant, other_key = tenant_create(slug="twin", name="Twin", currency="EUR")
    other_api = Api(other_key)
    orders = [order_payload(external_id=f"S{i}", customer={"external_id": "same", "email": "same@ex.com"},
                            status=status, cancelled_at="2026-11-21T10:00:00Z" if status == "cancelled" else None,
                            delivered_at="2026-11-22T10:00:00Z" if status == "delivered" else None)
              for i, status in enumerate(["pending", "paid", "delivered", "cancelled"])]

    for order in orders:
        api.post("/api/v1/orders", order)
    other_api.post("/api/v1/orders/bulk", {"orders": orders})

    def rows(t):
        return sorted(Order.objects.for_tenant(t).values_list("external_id", "status", "total", "paid_at",
                                                              "cancelled_at", "subtotal"))

    def customer(t):
        return Customer.objects.for_tenant(t).values_list("order_count", "total_spent", "first_order_at").get()

    def types(t):
        return sorted(Event.objects.for_tenant(t).values_list("type", flat=True))

    assert rows(tenant) == rows(other_tenant)
    assert customer(tenant) == customer(other_tenant)
    assert types(tenant) == types(other_tenant)


def test_bulk_replay_and_existing_orders_take_the_careful_path(api, tenant):
    existing = order_payload(external_id="X1", status="pending")
    api.post("/api/v1/orders", existing)
    x2 = order_payload(external_id="X2")
    batch = [{**existing, "status": "paid"}, x2, x2]

    first = api.post("/api/v1/orders/bulk", {"orders": batch}).json()
    again = api.post("/api/v1/orders/bulk", {"orders": batch}).json()

    assert [r["result"] for r in first["results"]] == ["updated", "created", "unchanged"]
    assert [r["result"] for r in again["results"]] == ["unchanged", "unchanged", "unchanged"]
    assert Order.objects.for_tenant(tenant).count() == 2
    assert Event.objects.for_tenant(tenant).filter(type="order.paid").count() == 2


def test_bulk_adopts_a_guest_record(api, tenant):
    api.post("/api/v1/orders", order_payload(customer={"email": "guest@ex.com"}))

    api.post("/api/v1/orders/bulk", {"orders": [order_payload(customer={"external_id": "acct", "email": "guest@ex.com"})]})

    assert list(Customer.objects.for_tenant(tenant).values_list("external_id", "order_count")) == [("acct", 2)]


def test_import_orders_command_reads_json_lines(tmp_path, tenant, capsys):
    lines = [json.dumps(order_payload(external_id=f"J{i}")) for i in range(1200)]
    lines.insert(10, "{broken")
    lines.insert(20, json.dumps(order_payload(external_id="BADQ", lines=[{"quantity": -2, "unit_price": "1"}])))
    lines.insert(30, '{"total": 1' + "0" * 5000 + "}")  # int() would raise past 4,300 digits
    lines.insert(40, "[" * 100_000)  # RecursionError in json.loads
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(lines) + "\n\n")

    with pytest.raises(CommandError, match="4 line"):
        call_command("import_orders", "acme", str(path), "--no-progress")

    out, err = capsys.readouterr()
    assert json.loads(out) == {"created": 1200, "updated": 0, "unchanged": 0, "errors": 4}
    assert "line 11: not valid JSON" in err
    assert "line 21: lines.0.quantity must be at least 1" in err
    assert "line 31: not valid JSON (The body has a number of 5001 characters" in err
    assert "line 41: not valid JSON (The body's JSON is nested more than 32 levels deep.)" in err
    assert Order.objects.for_tenant(tenant).count() == 1200


def test_import_orders_unknown_tenant_or_file(tmp_path, db):
    with pytest.raises(CommandError, match="no tenant"):
        call_command("import_orders", "nope", str(tmp_path / "x.jsonl"))
    Tenant.objects.create(slug="t", name="T")
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_orders", "t", str(tmp_path / "x.jsonl"))


def test_create_tenant_prints_exactly_one_json_object(db, capsys):
    call_command("create_tenant", "shop-1", "--name", "Shop One", "--owner-email", "Boss@Shop.example.com",
                 "--currency", "gbp", "--time-zone", "Europe/London")

    out = capsys.readouterr().out
    data = json.loads(out)
    assert set(data) == {"tenant", "api_key"} and data["tenant"] == "shop-1"
    assert out.strip().count("\n") == 0
    tenant = Tenant.objects.get(slug="shop-1")
    assert (tenant.currency, tenant.time_zone) == ("GBP", "Europe/London")
    assert Membership.objects.get(tenant=tenant).role == "owner"
    api_key = ApiKey.objects.for_tenant(tenant).get()
    assert data["api_key"].startswith(f"lc_{api_key.prefix}_") and api_key.matches(data["api_key"].split("_", 2)[2])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--currency", "EURO"], "currency"),
        (["--time-zone", "Mars/Olympus"], "time_zone"),
    ],
)
def test_create_tenant_rejects_bad_values(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_tenant", "shop-2", "--name", "Two", *args)
    assert not Tenant.objects.filter(slug="shop-2").exists()


def test_create_tenant_twice_is_an_error(tenant):
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_tenant", "acme", "--name", "Again")


def test_connect_store_prints_connection_and_webhook_url(tenant, capsys, settings):
    settings.PUBLIC_BASE_URL = "https://lifecycle.example.com"
    call_command("connect_store", "acme", "shopify", "https://Acme.myshopify.com/", "--secret", "shpss_123456")
    shopify = json.loads(capsys.readouterr().out)
    call_command("connect_store", "acme", "woocommerce", "https://shop.example.com", "--secret", "wc-secret-1")
    woo = json.loads(capsys.readouterr().out)

    assert shopify["webhook_url"] == "https://lifecycle.example.com/webhooks/shopify"
    conn = StoreConnection.objects.for_tenant(tenant).get(public_id=woo["connection"])
    assert woo["webhook_url"] == f"https://lifecycle.example.com/webhooks/woocommerce/{conn.public_id}"
    assert StoreConnection.objects.for_tenant(tenant).get(public_id=shopify["connection"]).shop_domain == "acme.myshopify.com"
    # The secret is encrypted at rest, and still verifies.
    assert "wc-secret-1" not in conn.webhook_secret_encrypted
    assert conn.verification_secrets(conn.created_at) == [b"wc-secret-1"]


def test_connect_store_refuses_a_shop_already_connected(tenant, other_tenant):
    call_command("connect_store", "acme", "shopify", "acme.myshopify.com", "--secret", "secret-123")
    with pytest.raises(CommandError, match="already connected"):
        call_command("connect_store", "globex", "shopify", "acme.myshopify.com", "--secret", "secret-456")
    with pytest.raises(CommandError, match="at least 8"):
        call_command("connect_store", "globex", "shopify", "globex.myshopify.com", "--secret", "short")
    assert StoreConnection.objects.for_tenant(other_tenant).count() == 0


def test_unscoped_queries_fail_closed(tenant):
    with pytest.raises(UnscopedQueryError, match="needs a tenant"):
        list(Order.objects.all())
    with pytest.raises(UnscopedQueryError):
        Customer.objects.filter(email="x@y.z").exists()
    with pytest.raises(UnscopedQueryError):
        Order.objects.for_tenant(None)


def test_live_bulk_orders_start_journeys_and_history_does_not(api, tenant):
    journey = make_journey(tenant, steps=(("PT0S", "Thanks"),))
    history = [order_payload(external_id=f"H{i}", customer={"external_id": f"h{i}", "email": f"h{i}@ex.com"})
               for i in range(3)]
    live = [order_payload(external_id=f"L{i}", customer={"external_id": f"l{i}", "email": f"l{i}@ex.com"})
            for i in range(4)]

    assert api.post("/api/v1/orders/bulk", {"orders": history}).json()["created"] == 3
    assert api.post("/api/v1/orders/bulk", {"orders": live, "live": True}).json()["created"] == 4
    process_events()

    events = Event.objects.for_tenant(tenant)
    assert sorted(events.filter(backfill=False, type="order.paid").values_list("order__external_id", flat=True)) == [
        "L0", "L1", "L2", "L3"]
    assert events.filter(processed_at__isnull=True).count() == 0
    enrolled = Enrollment.objects.for_tenant(tenant).filter(journey=journey)
    assert sorted(enrolled.values_list("order__external_id", flat=True)) == ["L0", "L1", "L2", "L3"]
    assert Delivery.objects.for_tenant(tenant).filter(journey=journey).count() == 4


@pytest.mark.parametrize("live", ["true", 1, None])
def test_bulk_live_must_be_a_json_boolean_and_nothing_is_written_otherwise(api, tenant, live):
    response = api.post("/api/v1/orders/bulk", {"orders": [order_payload(external_id="Z1")], "live": live})

    assert response.status_code == 400
    assert "live" in response.json()["fields"]
    assert Order.objects.for_tenant(tenant).count() == 0
    assert Event.objects.for_tenant(tenant).count() == 0
