"""Input the API must refuse at the door (issue 14, items 3, 6 and 7): out-of-range times, JSON that
breaks a parser or the database, and values pydantic's lax mode would have bent into shape.

Each gets its exact status, code and message, and nothing is written: no customer, order, line,
product or event, and no idempotency record left in flight.
"""

import datetime as dt
import json
from decimal import Decimal

import pytest

from lifecycle import clock, jsonbody
from lifecycle.models import Customer, Event, IdempotencyRecord, Order, OrderLine, Product
from tests.factories import order_payload

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
WINDOW = "must be between 1970-01-01T00:00:00Z and 2026-11-27T12:00:00Z (now + 2 days)"


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def assert_nothing_written(tenant):
    for model in (Order, Customer, OrderLine, Product, Event):
        assert model.objects.for_tenant(tenant).count() == 0, model.__name__
    assert IdempotencyRecord.objects.for_tenant(tenant).filter(state="in_flight").count() == 0


def refused(response, status: int, code: str, fields: dict | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    if fields is not None:
        assert body["fields"] == fields, body
    return body


# --- item 3: times outside 1970-01-01 .. now + 2 days are a 422 that says the window --------------


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00",
                                   "1969-12-31T23:59:59Z", "2026-11-27T12:00:01Z"])
@pytest.mark.parametrize("field", ["placed_at", "paid_at", "fulfilled_at", "delivered_at", "cancelled_at",
                                   "updated_at"])
def test_an_order_time_outside_the_window_is_422_and_writes_nothing(api, tenant, field, value):
    response = api.post("/api/v1/orders", order_payload(**{field: value}))

    body = refused(response, 422, "timestamp_out_of_range", {field: [WINDOW]})
    assert body["message"] == f"{field} {WINDOW}"
    assert_nothing_written(tenant)


def test_the_window_edges_are_accepted(api, tenant):
    earliest = api.post("/api/v1/orders", order_payload(external_id="E1", placed_at="1970-01-01T00:00:00Z"))
    latest = api.post("/api/v1/orders", order_payload(external_id="E2", placed_at="2026-11-27T12:00:00Z"))

    assert (earliest.status_code, earliest.json()["placed_at"]) == (201, "1970-01-01T00:00:00Z")
    assert (latest.status_code, latest.json()["placed_at"]) == (201, "2026-11-27T12:00:00Z")


def test_a_customer_consent_time_outside_the_window_is_422(api, tenant):
    payload = order_payload()
    payload["customer"]["consent_updated_at"] = "9999-12-31T23:59:59Z"

    refused(api.post("/api/v1/orders", payload), 422, "timestamp_out_of_range",
            {"customer.consent_updated_at": [WINDOW]})
    assert_nothing_written(tenant)


def test_milestone_refund_and_event_times_outside_the_window_are_422_and_change_nothing(api, tenant):
    assert api.post("/api/v1/orders", order_payload(external_id="A1", status="paid")).status_code == 201
    before = {model: model.objects.for_tenant(tenant).count() for model in (Order, Customer, Event)}

    for path, field in (("fulfillment", "fulfilled_at"), ("delivery", "delivered_at"),
                        ("cancellation", "cancelled_at")):
        refused(api.post(f"/api/v1/orders/A1/{path}", {field: "9999-12-31T23:59:59Z"}), 422,
                "timestamp_out_of_range", {field: [WINDOW]})
    refused(api.post("/api/v1/orders/A1/refunds", {"external_id": "r1", "amount": "1.00",
                                                   "refunded_at": "0001-01-01T00:00:00Z"}),
            422, "timestamp_out_of_range", {"refunded_at": [WINDOW]})
    refused(api.post("/api/v1/events", {"type": "support.contacted", "customer": {"external_id": "c-new"},
                                        "occurred_at": "0001-01-01T00:00:00Z"}),
            422, "timestamp_out_of_range", {"occurred_at": [WINDOW]})

    order = Order.objects.for_tenant(tenant).get(external_id="A1")
    assert (order.fulfilled_at, order.delivered_at, order.cancelled_at, order.refunded_total) == (None, None, None, 0)
    assert {model: model.objects.for_tenant(tenant).count() for model in (Order, Customer, Event)} == before


def test_an_out_of_range_time_with_another_problem_is_a_400_listing_both(api, tenant):
    response = api.post("/api/v1/orders", order_payload(placed_at="9999-12-31T23:59:59Z", currency="XXX"))

    refused(response, 400, "validation_failed",
            {"placed_at": [WINDOW], "currency": ["'XXX' is not an ISO 4217 currency code such as \"EUR\""]})
    assert_nothing_written(tenant)


# --- item 6: JSON that would break the parser or the database --------------------------------------


def test_100000_nested_brackets_are_a_400(api, tenant):
    refused(api.post("/api/v1/orders", raw=b"[" * 100_000), 400, "request.too_deep")
    refused(api.post("/api/v1/events", raw=b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), 400,
            "request.too_deep")
    assert_nothing_written(tenant)


def test_data_nested_deeper_than_the_limit_is_a_400_and_at_the_limit_is_kept(api, tenant):
    def event(depth, key):
        data = {}
        for _ in range(depth):
            data = {"x": data}
        return {"type": "support.contacted", "customer": {"external_id": "c1"}, "data": data, "idempotency_key": key}

    # The body is one level, data another: MAX_DEPTH levels in all is the most accepted.
    body = refused(api.post("/api/v1/events", event(jsonbody.MAX_DEPTH - 1, "deep")), 400, "request.too_deep")
    assert body["message"] == "The body's JSON is nested more than 32 levels deep."
    assert_nothing_written(tenant)
    assert api.post("/api/v1/events", event(jsonbody.MAX_DEPTH - 2, "ok")).status_code == 201


def test_a_5000_digit_integer_is_a_400(api, tenant):
    body = json.dumps(order_payload()).replace('"quantity": 2', '"quantity": ' + "9" * 5000).encode()

    response = refused(api.post("/api/v1/orders", raw=body), 400, "request.number_too_long", {})
    assert response["message"] == ("The body has a number of 5000 characters; numbers may have at most 40 "
                                   "(send long identifiers as strings).")
    event = b'{"type": "support.contacted", "customer": {"external_id": "c1"}, "data": {"n": 1' + b"0" * 5000 + b"}}"
    refused(api.post("/api/v1/events", raw=event), 400, "request.number_too_long")
    refused(api.post("/api/v1/orders", raw=b'{"total": 0.' + b"1" * 5000 + b"}"), 400, "request.number_too_long")
    assert_nothing_written(tenant)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json_numbers(api, tenant, constant):
    body = b'{"type": "support.contacted", "customer": {"external_id": "c1"}, "data": {"n": ' + constant + b"}}"

    response = refused(api.post("/api/v1/events", raw=body), 400, "request.malformed_json")
    assert constant.decode().lstrip("-") in response["message"]
    assert_nothing_written(tenant)


def test_a_lone_surrogate_in_event_data_is_a_400_naming_where(api, tenant):
    body = b'{"type": "support.contacted", "customer": {"external_id": "c1"}, "data": {"note": ["ok", "\\ud800"]}}'

    response = refused(api.post("/api/v1/events", raw=body), 400, "request.bad_unicode", {})
    assert response["message"].startswith("data.note.1 has a lone UTF-16 surrogate")
    refused(api.post("/api/v1/events", raw=body.replace(b'"note"', b'"\\udfff"')), 400, "request.bad_unicode")
    assert_nothing_written(tenant)


def test_a_surrogate_pair_is_a_character_and_is_kept(api, tenant):
    body = b'{"type": "support.contacted", "customer": {"external_id": "c1"}, "data": {"note": "\\ud83d\\ude00"}}'

    assert api.post("/api/v1/events", raw=body).status_code == 201
    assert Event.objects.for_tenant(tenant).get(type="support.contacted").data == {"note": "\U0001F600"}


@pytest.mark.parametrize("total", ["99999999999999.9999", "1000000000000", "1e13"])
def test_an_order_total_above_a_trillion_is_a_400(api, tenant, total):
    # The columns would hold 99999999999999.9999, but not what is derived from it (journey revenue
    # rollups, a customer's spend): one order's amounts stay below 10^12.
    refused(api.post("/api/v1/orders", order_payload(total=total, lines=[])), 400, "validation_failed",
            {"total": ["is too large (at most 999999999999.9999)"]})
    assert_nothing_written(tenant)


def test_a_customers_spend_saturates_at_what_its_column_holds(api, tenant):
    from lifecycle.aggregates import TOTAL_SPENT_MAX

    assert api.post("/api/v1/orders", order_payload(customer={"external_id": "whale"}, lines=[])).status_code == 201
    Customer.objects.for_tenant(tenant).update(total_spent=TOTAL_SPENT_MAX - 1)  # ~a thousand trillion-unit orders

    again = api.post("/api/v1/orders", order_payload(customer={"external_id": "whale"}, total="999999999999",
                                                     lines=[]))

    assert again.status_code == 201
    customer = Customer.objects.for_tenant(tenant).get()
    assert (customer.order_count, customer.total_spent) == (2, Decimal("999999999999999.9999"))


def test_an_order_total_at_the_limit_is_accepted(api, tenant):
    kept = api.post("/api/v1/orders", order_payload(external_id="big", total="999999999999.9999", lines=[]))

    assert kept.status_code == 201 and kept.json()["total"] == "999999999999.9999"
    assert Customer.objects.for_tenant(tenant).get().total_spent == Decimal("999999999999.9999")


# --- item 7: strict where the API means a number, a zone, a currency, an offset ---------------------


@pytest.mark.parametrize(("quantity", "message"), [(True, "must be a whole number"), ("2", "must be a whole number"),
                                                   (2.5, "must be a whole number"), (False, "must be a whole number")])
def test_a_quantity_that_is_not_a_json_integer_is_a_400(api, tenant, quantity, message):
    payload = order_payload()
    payload["lines"][0]["quantity"] = quantity

    refused(api.post("/api/v1/orders", payload), 400, "validation_failed", {"lines.0.quantity": [message]})
    assert_nothing_written(tenant)


def test_a_quantity_written_with_a_zero_fraction_is_the_whole_number_json_schema_says_it_is(api, tenant):
    """The published schema says `integer`, and to JSON Schema 2.0 is one (Schemathesis sends it)."""
    payload = order_payload()
    payload["lines"][0]["quantity"] = 2.0

    assert api.post("/api/v1/orders", payload).status_code == 201
    assert OrderLine.objects.for_tenant(tenant).order_by("pk").first().quantity == 2


@pytest.mark.parametrize("value", ["2026-11-20T10:00:00", "2026-11-20", 1763632800, "1763632800", 1763632800.5])
def test_a_time_without_a_utc_offset_is_a_400_naming_the_field(api, tenant, value):
    response = api.post("/api/v1/orders", order_payload(placed_at=value))

    body = refused(response, 400, "validation_failed")
    assert list(body["fields"]) == ["placed_at"]
    assert body["message"].startswith("placed_at must ")
    assert "UTC offset" in body["message"]
    assert_nothing_written(tenant)


def test_marketing_consent_must_be_a_json_boolean(api, tenant):
    payload = order_payload()
    payload["customer"]["marketing_consent"] = "yes"

    refused(api.post("/api/v1/orders", payload), 400, "validation_failed",
            {"customer.marketing_consent": ["must be true or false"]})
    assert_nothing_written(tenant)


def test_duplicate_line_external_ids_are_a_400(api, tenant):
    payload = order_payload()
    payload["lines"][0]["external_id"] = "L-1"
    payload["lines"][1]["external_id"] = "L-1"

    refused(api.post("/api/v1/orders", payload), 400, "validation_failed", {"lines": [
        "has two lines with external_id 'L-1' (lines.0 and lines.1); each line's external_id must be unique "
        "within the order"]})
    assert_nothing_written(tenant)


def test_lines_without_external_ids_may_repeat(api, tenant):
    payload = order_payload()
    payload["lines"][1] = dict(payload["lines"][0])

    assert api.post("/api/v1/orders", payload).status_code == 201


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules", "Mars/Olympus"])
def test_a_time_zone_that_is_not_an_iana_zone_is_a_400(api, tenant, zone):
    payload = order_payload()
    payload["customer"]["time_zone"] = zone

    refused(api.post("/api/v1/orders", payload), 400, "validation_failed",
            {"customer.time_zone": [f"{zone!r} is not an IANA time zone such as 'Europe/Berlin'"]})
    assert_nothing_written(tenant)


@pytest.mark.parametrize("code", ["XXX", "XTS", "XAU", "XDR"])
def test_a_code_that_is_not_money_is_not_a_currency(api, tenant, code):
    refused(api.post("/api/v1/orders", order_payload(currency=code)), 400, "validation_failed",
            {"currency": [f"{code!r} is not an ISO 4217 currency code such as \"EUR\""]})
    assert_nothing_written(tenant)


@pytest.mark.parametrize("code", ["XOF", "XAF", "XPF", "XCD", "IDR", "KWD"])
def test_real_currencies_starting_with_x_and_others_are_accepted(api, tenant, code):
    response = api.post("/api/v1/orders", order_payload(currency=code, lines=[], total="10"))

    assert response.status_code == 201 and response.json()["currency"] == code


def test_the_bulk_path_refuses_the_same_values_per_order(api, tenant):
    good = order_payload(external_id="B-1")
    bad_time = order_payload(external_id="B-2", placed_at="9999-12-31T23:59:59Z")
    bad_quantity = order_payload(external_id="B-3")
    bad_quantity["lines"][0]["quantity"] = True

    response = api.post("/api/v1/orders/bulk", {"orders": [good, bad_time, bad_quantity]})

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["result"] for r in results] == ["created", "error", "error"]
    assert results[1]["error"]["fields"] == {"placed_at": [WINDOW]}
    assert results[2]["error"]["fields"] == {"lines.0.quantity": ["must be a whole number"]}
    assert list(Order.objects.for_tenant(tenant).values_list("external_id", flat=True)) == ["B-1"]
