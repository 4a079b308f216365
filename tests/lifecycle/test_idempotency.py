"""Idempotency-Key semantics, and concurrent posts of one order over real HTTP."""

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from lifecycle import clock
from lifecycle.models import Event, IdempotencyRecord, Order
from tests.factories import order_payload


@pytest.mark.django_db
def test_replay_with_key_returns_the_stored_response_byte_for_byte(api, tenant):
    body = order_payload()
    first = api.post("/api/v1/orders", body, headers={"Idempotency-Key": "k-1"})

    replay = api.post("/api/v1/orders", body, headers={"Idempotency-Key": "k-1"})

    assert first.status_code == replay.status_code == 201
    assert replay.content == first.content
    assert replay["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Order.objects.for_tenant(tenant).count() == 1


@pytest.mark.django_db
def test_replay_with_key_is_the_first_answer_even_after_a_change(api, tenant):
    body = order_payload(external_id="X")
    first = api.post("/api/v1/orders", body, headers={"Idempotency-Key": "k-1"})
    api.post("/api/v1/orders/X/delivery", {})

    replay = api.post("/api/v1/orders", body, headers={"Idempotency-Key": "k-1"})

    assert replay.content == first.content
    assert json.loads(replay.content)["status"] == "paid"


@pytest.mark.django_db
def test_same_key_different_body_is_422_and_writes_nothing(api, tenant):
    api.post("/api/v1/orders", order_payload(external_id="A"), headers={"Idempotency-Key": "k-1"})

    response = api.post("/api/v1/orders", order_payload(external_id="B"), headers={"Idempotency-Key": "k-1"})

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency.key_reused"
    assert list(Order.objects.for_tenant(tenant).values_list("external_id", flat=True)) == ["A"]


@pytest.mark.django_db
def test_same_key_on_another_path_is_422(api, tenant):
    api.post("/api/v1/orders", order_payload(external_id="A"), headers={"Idempotency-Key": "k-1"})

    response = api.post("/api/v1/orders/A/delivery", {}, headers={"Idempotency-Key": "k-1"})

    assert response.status_code == 422
    assert Order.objects.for_tenant(tenant).get().delivered_at is None


@pytest.mark.django_db
def test_key_in_flight_is_409(api, tenant):
    body = order_payload()
    raw = json.dumps(body).encode()
    from lifecycle.idempotency import request_fingerprint

    IdempotencyRecord.objects.for_tenant(tenant).create(
        tenant=tenant, key="busy", fingerprint=request_fingerprint("POST", "/api/v1/orders", raw),
        created_at=clock.now())

    response = api.post("/api/v1/orders", raw=raw, headers={"Idempotency-Key": "busy"})

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency.in_flight"
    assert response["Retry-After"] == "1"
    assert Order.objects.for_tenant(tenant).count() == 0

    # A request stuck in flight for over a minute died with its worker: a retry takes over.
    clock.advance(dt.timedelta(seconds=61))
    taken_over = api.post("/api/v1/orders", raw=raw, headers={"Idempotency-Key": "busy"})
    assert taken_over.status_code == 201


@pytest.mark.django_db
def test_errors_are_replayed_too_but_not_kept_past_24_hours(api, tenant):
    bad = order_payload(currency="XXQ")
    first = api.post("/api/v1/orders", bad, headers={"Idempotency-Key": "k-bad"})
    again = api.post("/api/v1/orders", bad, headers={"Idempotency-Key": "k-bad"})
    assert first.status_code == again.status_code == 400
    assert again.content == first.content

    clock.advance(dt.timedelta(hours=23))
    assert api.post("/api/v1/orders", order_payload(), headers={"Idempotency-Key": "k-bad"}).status_code == 422
    clock.advance(dt.timedelta(hours=2))
    assert api.post("/api/v1/orders", order_payload(), headers={"Idempotency-Key": "k-bad"}).status_code == 201


@pytest.mark.django_db
def test_keys_are_per_tenant(api, other_api, tenant, other_tenant):
    api.post("/api/v1/orders", order_payload(external_id="A"), headers={"Idempotency-Key": "shared"})

    response = other_api.post("/api/v1/orders", order_payload(external_id="B"), headers={"Idempotency-Key": "shared"})

    assert response.status_code == 201
    assert Order.objects.for_tenant(other_tenant).get().external_id == "B"


@pytest.mark.django_db
def test_overlong_key_is_400(api, tenant):
    response = api.post("/api/v1/orders", order_payload(), headers={"Idempotency-Key": "k" * 256})

    assert response.status_code == 400
    assert response.json()["code"] == "idempotency.bad_key"
    assert Order.objects.for_tenant(tenant).count() == 0


def _post_concurrently(url: str, key: str, body: dict, n: int, headers: dict | None = None) -> list:
    def post(_):
        return requests.post(url, data=json.dumps(body), timeout=30, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})})

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(post, range(n)))


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_posts_of_one_new_order_give_one_201(live_server, tenant_and_key):
    tenant, key = tenant_and_key
    body = order_payload(external_id="race-1", customer={"email": "racer@example.com"})

    codes = [r.status_code for r in _post_concurrently(f"{live_server.url}/api/v1/orders", key, body, 20)]

    assert sorted(codes) == [200] * 19 + [201]
    assert Order.objects.for_tenant(tenant).count() == 1
    assert Event.objects.for_tenant(tenant).filter(type="order.paid").count() == 1
    assert Event.objects.for_tenant(tenant).filter(type="customer.created").count() == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_posts_with_one_key_give_one_201(live_server, tenant_and_key):
    tenant, key = tenant_and_key
    body = order_payload(external_id="race-2")

    responses = _post_concurrently(f"{live_server.url}/api/v1/orders", key, body, 20, {"Idempotency-Key": "race"})

    first = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(first) == 1
    for r in responses:
        assert r.status_code == 409 or r.content == first[0].content
    assert Order.objects.for_tenant(tenant).count() == 1
