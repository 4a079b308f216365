"""Bad input gets a 4xx a person can act on, and leaves nothing half-written."""

import json

import pytest
from django.test import override_settings

from lifecycle.models import ApiKey, Customer, Event, IdempotencyRecord, Order, OrderLine, Product
from lifecycle.tenants import api_key_revoke
from tests.factories import order_payload

pytestmark = pytest.mark.django_db

AMOUNT = 'must be a decimal amount such as "19.90"'


def assert_nothing_written(tenant):
    for model in (Order, Customer, OrderLine, Product, Event):
        assert model.objects.for_tenant(tenant).count() == 0, model.__name__
    assert IdempotencyRecord.objects.for_tenant(tenant).filter(state="in_flight").count() == 0


def lines(**overrides):
    return [{"sku": "X", "title": "X", "quantity": 1, "unit_price": "10.00", **overrides}]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"customer": {"first_name": "Ada"}}, "customer", "a customer needs an external_id or an email"),
        ({"customer": {"email": "not-an-email"}}, "customer.email", None),
        ({"lines": lines(quantity=-1)}, "lines.0.quantity", "must be at least 1"),
        ({"lines": lines(quantity=0)}, "lines.0.quantity", "must be at least 1"),
        ({"lines": lines(quantity="two")}, "lines.0.quantity", "must be a whole number"),
        ({"currency": "EURO"}, "currency", "'EURO' is not an ISO 4217 currency code such as \"EUR\""),
        ({"currency": "XYZ"}, "currency", "'XYZ' is not an ISO 4217 currency code such as \"EUR\""),
        ({"total": "12,50"}, "total", AMOUNT),
        ({"total": "abc"}, "total", AMOUNT),
        ({"total": True}, "total", AMOUNT),
        ({"total": "NaN"}, "total", AMOUNT),
        ({"total": "-1.00"}, "total", "must not be negative"),
        ({"total": "1.123456"}, "total", "has more than 4 decimal places"),
        ({"lines": lines(unit_price="1e400")}, "lines.0.unit_price", "is too large (at most 999999999999.9999)"),
        ({"placed_at": "2026-11-20T10:00:00"}, "placed_at", "must include a UTC offset, such as 2024-05-01T12:00:00Z"),
        ({"paid_at": "yesterday"}, "paid_at", None),
        ({"status": "shipped"}, "status", None),
        ({"external_id": ""}, "external_id", "must not be empty"),
        ({"colour": "red"}, "colour", "is not a field of this request; check its spelling"),
        ({"lines": "many"}, "lines", "must be a JSON array"),
    ],
)
def test_invalid_order_fields_get_field_level_400(api, tenant, overrides, field, message):
    body = order_payload(**overrides)

    response = api.post("/api/v1/orders", body)

    assert response.status_code == 400, response.content
    data = response.json()
    assert data["code"] == "validation_failed"
    assert field in data["fields"], data
    if message:
        assert data["fields"][field] == [message]
    assert data["message"].startswith(field)
    assert_nothing_written(tenant)


def test_missing_required_fields_are_all_listed(api, tenant):
    response = api.post("/api/v1/orders", {})

    assert response.status_code == 400
    fields = response.json()["fields"]
    assert fields == {"external_id": ["is required"], "customer": ["is required"], "currency": ["is required"],
                      "total": ["is required"]}
    assert "and 3 more problems" in response.json()["message"]


@pytest.mark.parametrize("raw", [b'{"external_id": "1",', b"\xff\xfe", b"[1, 2", b"{'single': 'quotes'}"])
def test_malformed_json_is_400(api, tenant, raw):
    response = api.post("/api/v1/orders", raw=raw)

    assert response.status_code == 400
    assert response.json()["code"] == "request.malformed_json"
    assert_nothing_written(tenant)


def test_json_that_is_not_an_object_is_400(api, tenant):
    response = api.post("/api/v1/orders", [order_payload()])

    assert response.status_code == 400
    assert response.json()["fields"] == {"body": ["must be a JSON object"]}


def test_form_encoded_body_is_415(api, tenant):
    response = api.post("/api/v1/orders", raw=b"external_id=1", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert "application/x-www-form-urlencoded" in response.json()["message"]
    assert_nothing_written(tenant)


def test_money_as_json_number_is_read_exactly(api, tenant):
    raw = order_payload(lines=[])
    body = json.dumps(raw).replace('"59.90"', "59.90").encode()

    response = api.post("/api/v1/orders", raw=body)

    assert response.status_code == 201
    assert response.json()["total"] == "59.90"


def test_missing_key_is_401(api, tenant):
    response = api.client.post("/api/v1/orders", data="{}", content_type="application/json")

    assert response.status_code == 401
    assert response.json()["code"] == "auth.missing_key"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    "header",
    ["Bearer nope", "Bearer lc_deadbeef00_wrongsecret", "Token abc", "Bearer ", "Basic dXNlcjpwYXNz"],
)
def test_bad_key_is_401_and_writes_nothing(api, tenant, header):
    response = api.client.post("/api/v1/orders", data=json.dumps(order_payload()),
                               content_type="application/json", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_key"
    assert_nothing_written(tenant)


def test_right_prefix_wrong_secret_is_401(api, tenant):
    prefix = api.key.split("_")[1]
    response = api.client.post("/api/v1/ping", HTTP_AUTHORIZATION=f"Bearer lc_{prefix}_{'x' * 43}")

    assert response.status_code == 401


def test_revoked_key_is_401(api, tenant):
    prefix = api.key.split("_")[1]
    assert api.post("/api/v1/ping").status_code == 200
    api_key_revoke(tenant=tenant, prefix=prefix)

    response = api.post("/api/v1/ping")

    assert response.status_code == 401
    assert "revoked" in response.json()["message"]


def test_key_is_stored_hashed_and_last_use_recorded(api, tenant):
    api_key = ApiKey.objects.for_tenant(tenant).get()
    assert api.key.split("_", 2)[2] not in api_key.key_hash
    assert api_key.last_used_at is None

    assert api.post("/api/v1/ping").json() == {"ok": True, "tenant": "acme"}

    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


@override_settings(API_MAX_BODY_BYTES=2000)
def test_oversized_body_is_413(api, tenant):
    body = order_payload(lines=lines() * 30)

    response = api.post("/api/v1/orders", body)

    assert response.status_code == 413
    assert response.json()["code"] == "request.too_large"
    assert "limit is 2000" in response.json()["message"]
    assert_nothing_written(tenant)


@override_settings(API_RATE_LIMIT_PER_MINUTE=3)
def test_over_the_rate_limit_is_429_with_retry_after(api, other_api, tenant):
    codes = [api.post("/api/v1/ping").status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]
    limited = api.post("/api/v1/ping")
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    # Limits are per key: another store is unaffected.
    assert other_api.post("/api/v1/ping").status_code == 200


def test_wrong_method_is_405_json(api):
    response = api.get("/api/v1/orders")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_bulk_limit_is_enforced(api, tenant):
    response = api.post("/api/v1/orders/bulk", {"orders": [order_payload()] * 1001})

    assert response.status_code == 400
    assert response.json()["fields"] == {"orders": ["must have at most 1000 items"]}
    assert_nothing_written(tenant)
