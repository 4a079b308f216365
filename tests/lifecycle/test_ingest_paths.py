"""The order hot path: what it reads and writes, and that its short cuts answer exactly as the long way.

A repeated body gets its kept answer after one read (api/replays.py), other replays are recognized
from one read; a new order is written from the read made before the locks, unless another writer
got there first; the answer comes from the objects in hand; a new order adds its share to its
customer's aggregates instead of recounting them. Each test pins one of those.
"""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lifecycle import aggregates, auth, orders, rows
from lifecycle.api import replays
from lifecycle.inputs import OrderIn
from lifecycle.models import ApiKey, Customer, Event, Order, OrderLine, Product
from lifecycle.throttling import redis_client
from tests.factories import order_payload

pytestmark = pytest.mark.django_db


def statements(ctx: CaptureQueriesContext) -> list[str]:
    """The SQL sent, without the savepoints the test's own transaction turns BEGIN/COMMIT into
    and without PREPARE, which a connection sends once per statement (rows.execute)."""
    return [q["sql"] for q in ctx.captured_queries
            if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "PREPARE"))]


class AnyStartingWith(str):
    def __eq__(self, other) -> bool:
        return isinstance(other, str) and other.startswith(self)

    __hash__ = str.__hash__


def snapshot(tenant) -> tuple:
    return (
        list(Order.objects.for_tenant(tenant).values_list("pk", "updated_at", "status").order_by("pk")),
        list(Customer.objects.for_tenant(tenant).values_list("pk", "updated_at", "order_count", "total_spent")
             .order_by("pk")),
        OrderLine.objects.for_tenant(tenant).count(),
        Event.objects.for_tenant(tenant).count(),
    )


def test_a_replay_is_one_read_and_writes_nothing(api, tenant):
    body = order_payload()
    first = api.post("/api/v1/orders", body)
    before = snapshot(tenant)

    with CaptureQueriesContext(connection) as kept:
        replay = api.post("/api/v1/orders", body)
    redis_client().delete(*kept_answers())  # as after KEEP_SECONDS: decided from the order itself
    with CaptureQueriesContext(connection) as read:
        again = api.post("/api/v1/orders", body)

    assert replay.status_code == again.status_code == 200
    assert replay.content == again.content == first.content
    prepared = rows._prepared[connection.connection]
    assert statements(kept) == [AnyStartingWith(f"EXECUTE {prepared[replays._TOKEN_SQL]}(")]  # the state check
    assert statements(read) == [AnyStartingWith(f"EXECUTE {prepared[orders._SEEN_BY['external_id_or_guest']]}(")]
    assert snapshot(tenant) == before


def test_a_new_order_for_a_new_customer_is_a_fixed_handful_of_statements(api, tenant):
    api.post("/api/v1/orders", order_payload())  # the API key is looked up, products exist

    with CaptureQueriesContext(connection) as ctx:
        response = api.post("/api/v1/orders", order_payload())

    assert response.status_code == 201
    # read (with the products' ids), locks, customer, order, then lines and events in one round trip
    # (BEGIN and COMMIT are not statements here)
    assert len(statements(ctx)) == 5, statements(ctx)
    assert statements(ctx)[-1].count("; EXECUTE ") == 1  # the lines', then the events' INSERT
    assert not any("UPDATE" in sql for sql in statements(ctx))
    assert not any(orders._PRODUCT_IDS_SQL.split(" WHERE")[0] in sql for sql in statements(ctx))


def test_a_product_the_read_did_not_know_is_created_and_linked(api, tenant):
    api.post("/api/v1/orders", order_payload())  # p-beans and p-filter exist
    lines = [{"external_id": "n1", "product_external_id": "p-beans", "sku": "B", "title": "Beans", "quantity": 1,
              "unit_price": "10.00"},
             {"external_id": "n2", "product_external_id": "p-new", "sku": "N", "title": "New", "quantity": 1,
              "unit_price": "5.00"},
             {"external_id": "n3", "sku": "X", "title": "No product", "quantity": 1, "unit_price": "1.00"}]

    response = api.post("/api/v1/orders", order_payload(external_id="N1", lines=lines, subtotal="16.00",
                                                         total="16.00"))

    assert response.status_code == 201
    products = dict(Product.objects.for_tenant(tenant).values_list("external_id", "pk"))
    assert sorted(products) == ["p-beans", "p-filter", "p-new"]
    linked = list(OrderLine.objects.for_tenant(tenant).filter(order__external_id="N1").order_by("position")
                  .values_list("product_external_id", "product_id"))
    assert linked == [("p-beans", products["p-beans"]), ("p-new", products["p-new"]), ("", None)]


def test_the_answer_from_hand_is_the_answer_read_back(api, tenant):
    """Offsets, short decimals and a computed subtotal come back as the database has them."""
    body = order_payload(
        external_id="H1", placed_at="2026-11-20T10:00:00.25+01:00", total="59.9", discount_total="5",
        lines=[{"product_external_id": "p-beans", "sku": "B", "title": "Beans", "quantity": 2, "unit_price": "24.9"},
               {"sku": "F", "title": "Filters", "quantity": 1, "unit_price": "15.1"}],
    )

    created = api.post("/api/v1/orders", body)
    read = api.get("/api/v1/orders/H1")

    assert created.status_code == 201
    assert created.content == read.content
    assert created.json()["placed_at"] == "2026-11-20T09:00:00.250000Z"
    assert created.json()["subtotal"] == "64.90" and created.json()["refunded_total"] == "0.00"


def test_aggregates_added_per_order_equal_a_recount(api, tenant):
    customer = {"external_id": "agg", "email": "agg@example.com"}
    api.post("/api/v1/orders", order_payload(customer=customer, total="10.00", lines=[],
                                             placed_at="2026-11-02T10:00:00Z"))
    api.post("/api/v1/orders", order_payload(customer=customer, total="20.00", lines=[],
                                             placed_at="2026-11-01T10:00:00Z"))
    api.post("/api/v1/orders", order_payload(customer=customer, total="99.00", currency="USD", lines=[],
                                             placed_at="2026-11-05T10:00:00Z"))
    api.post("/api/v1/orders", order_payload(customer=customer, total="40.00", status="pending", lines=[]))
    api.post("/api/v1/orders", order_payload(customer=customer, total="80.00", status="cancelled", lines=[]))
    added = Customer.objects.for_tenant(tenant).get(external_id="agg")

    aggregates.refresh_aggregates(tenant, {added.pk})
    recounted = Customer.objects.for_tenant(tenant).get(pk=added.pk)

    fields = ("order_count", "total_spent", "first_order_at", "last_order_at")
    assert [getattr(added, f) for f in fields] == [getattr(recounted, f) for f in fields]
    assert added.order_count == 3 and added.total_spent == Decimal("30.00")
    assert added.first_order_at.isoformat() == "2026-11-01T10:00:00+00:00"
    assert added.last_order_at.isoformat() == "2026-11-05T10:00:00+00:00"


def test_a_new_order_written_meanwhile_by_another_is_found_under_the_lock(tenant, monkeypatch):
    """The read before the locks said "new order, new customer", but another writer committed both
    before this one took the locks: its inserts give way and it answers as a replay."""
    data = OrderIn.model_validate(order_payload(external_id="R1"))
    assert orders.order_ingest(tenant=tenant, data=data).created
    before = snapshot(tenant)
    real_seen = orders._order_seen
    reads = []

    def stale_first_read(tenant_, data_):
        reads.append(data_.external_id)
        if len(reads) == 1:
            return orders._Seen(order=None, customer=None, lines=(), products={})
        return real_seen(tenant_, data_)

    monkeypatch.setattr(orders, "_order_seen", stale_first_read)
    result = orders.order_ingest(tenant=tenant, data=data)

    assert reads == ["R1", "R1"]  # the stale read, then the one under the locks
    assert (result.created, result.changed) == (False, False)
    assert snapshot(tenant) == before


def test_a_key_revoked_elsewhere_is_refused_within_the_cache_bound(api, tenant, monkeypatch):
    assert api.post("/api/v1/ping").status_code == 200
    # Revoked by another process (a management command, another worker): this one still has its copy.
    ApiKey.objects.for_tenant(tenant).update(revoked_at=orders.clock.now())
    assert api.post("/api/v1/ping").status_code == 200

    monkeypatch.setattr(auth, "KEY_CACHE_SECONDS", 0.0)  # the bound has passed

    response = api.post("/api/v1/ping")
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]


def test_bulk_gives_an_order_by_email_alone_to_the_customer_a_single_post_would(api, tenant):
    """An account and a guest share an address: both paths pick the account."""
    api.post("/api/v1/orders", order_payload(customer={"external_id": "acct", "email": "first@ex.com"}))
    api.post("/api/v1/orders", order_payload(customer={"email": "shared@ex.com"}))  # a guest
    api.post("/api/v1/orders", order_payload(customer={"external_id": "acct", "email": "shared@ex.com"}))
    assert set(Customer.objects.for_tenant(tenant).filter(email="shared@ex.com")
               .values_list("external_id", flat=True)) == {None, "acct"}

    api.post("/api/v1/orders", order_payload(external_id="single", customer={"email": "shared@ex.com"}))
    api.post("/api/v1/orders/bulk", {"orders": [order_payload(external_id="bulk", customer={"email": "shared@ex.com"})]})

    owners = dict(Order.objects.for_tenant(tenant).filter(external_id__in=["single", "bulk"])
                  .values_list("external_id", "customer__external_id"))
    assert owners == {"single": "acct", "bulk": "acct"}


def kept_answers() -> list[bytes]:
    return redis_client().keys("*order-answer*")


def test_a_kept_answer_is_given_only_while_the_order_is_as_it_was(api, tenant):
    body = order_payload(external_id="K1", total="50.00", lines=[])
    first = api.post("/api/v1/orders", body)
    assert len(kept_answers()) == 1
    assert api.post("/api/v1/orders", body).content == first.content

    api.post("/api/v1/orders/K1/refunds", {"external_id": "rf-1", "amount": "20.00"})
    after_refund = api.post("/api/v1/orders", body)
    api.post("/api/v1/orders/K1/delivery", {"delivered_at": "2026-11-25T10:00:00Z"})
    after_delivery = api.post("/api/v1/orders", body)

    assert after_refund.status_code == 200
    assert after_refund.json()["refunded_total"] == "20.00"
    assert [r["external_id"] for r in after_refund.json()["refunds"]] == ["rf-1"]
    assert after_delivery.json()["status"] == "delivered"
    assert after_delivery.json()["refunded_total"] == "20.00"


def test_an_order_by_email_alone_is_not_kept_and_tenants_never_share_answers(api, other_api, tenant, other_tenant):
    guest = order_payload(external_id="G1", customer={"email": "guest@ex.com"})
    api.post("/api/v1/orders", guest)
    assert kept_answers() == []

    body = order_payload(external_id="T1")
    mine = api.post("/api/v1/orders", body)
    theirs = api.post("/api/v1/orders", body)  # kept for this tenant
    other = other_api.post("/api/v1/orders", body)

    assert (mine.status_code, theirs.status_code, other.status_code) == (201, 200, 201)
    assert Order.objects.for_tenant(other_tenant).filter(external_id="T1").count() == 1


def test_the_kept_answer_is_read_in_the_rate_limits_redis_round_trip(api, tenant, monkeypatch):
    body = order_payload()
    first = api.post("/api/v1/orders", body)
    client = redis_client()
    own_reads: list[str] = []
    real_get = client.get
    monkeypatch.setattr(client, "get", lambda key: own_reads.append(key) or real_get(key))

    replay = api.post("/api/v1/orders", body)
    new = api.post("/api/v1/orders", order_payload())

    assert (replay.status_code, replay.content) == (200, first.content)
    assert new.status_code == 201
    assert own_reads == []  # neither looked for a kept answer in a round trip of its own
