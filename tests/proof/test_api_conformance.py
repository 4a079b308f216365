"""The published schema says what the server enforces (issue 14, item 8).

Schemathesis runs every operation of lifecycle/api/openapi.yaml against the app in-process (WSGI),
with the store's real API key, and with all of its checks: besides never a 5xx and response bodies,
status codes, content types and headers as documented, it sends schema-valid requests that must be
accepted (positive_data_acceptance), schema-violating ones that must be refused
(negative_data_rejection), requests without a required header (missing_required_header), without
or with a wrong key (ignored_auth) and with methods the path does not have (unsupported_method).
Its coverage phase (every boundary case the schema implies: empty values, lengths, ranges, formats)
runs too, then a few generated examples per operation. ~1 minute on two cores.

(tests/proof/test_api_fuzz.py fuzzes longer with every kind of key and the response checks only.)
Run alone: make test PYTEST_ARGS=tests/proof/test_api_conformance.py
"""

import os

import jsonschema
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings

from config.wsgi import application
from lifecycle.models import Event, IdempotencyRecord, Order, Tenant
from referrals.models import Program as ReferralProgram
from tests.factories import order_payload
from tests.proof.test_api_fuzz import PUBLISHED, SEEDED, in_process_wsgi, keys  # noqa: F401 - fixtures

EXAMPLES = int(os.environ.get("PROOF_CONFORMANCE_EXAMPLES", "10"))

# Operations whose request body has rules the published schema does not state (yet), refused with a
# 400 that names them: a journey's steps must form a path the engine can run; amounts are decimal
# strings of at most 4 places below a maximum, currencies ISO 4217 codes, time zones IANA names (the
# request models in lifecycle/inputs.py). For these, a schema-valid body may still get a 400; every
# other check still holds, and the rules the schema does state are pinned by the tests below.
BODY_RULES = ("POST /api/v1/journeys", "POST /api/v1/orders", "POST /api/v1/orders/bulk",
              "POST /api/v1/events", "POST /api/v1/orders/{external_id}/refunds")
# Operations whose body carries date-times: one outside 1970-01-01 .. now + 2 days (a window no static
# schema can state, it moves with the clock) is a 422 `timestamp_out_of_range` that says the window,
# pinned by tests/lifecycle/test_input_bounds_api.py.
TIME_WINDOW = ("POST /api/v1/orders", "POST /api/v1/orders/bulk", "POST /api/v1/events",
               "POST /api/v1/orders/{external_id}/refunds", "POST /api/v1/orders/{external_id}/fulfillment",
               "POST /api/v1/orders/{external_id}/delivery", "POST /api/v1/orders/{external_id}/cancellation")

CONFIG = schemathesis.Config.from_dict({
    "phases": {"coverage": {"enabled": True}, "stateful": {"enabled": False}},
    # A NUL anywhere is refused with its own 400 (request.nul_character), pinned by
    # test_api_fuzz.test_a_nul_character_anywhere_is_a_400_and_writes_nothing.
    "generation": {"allow-x00": False},
    "operations": [{"include-name": name, "checks": {"positive_data_acceptance": {
        "expected-statuses": ["2xx", "401", "403", "404", "409", "429",
                              *(["400"] if name in BODY_RULES else []), *(["422"] if name in TIME_WINDOW else [])]}}}
        for name in sorted(set(BODY_RULES) | set(TIME_WINDOW))],
})
schema = schemathesis.openapi.from_path(PUBLISHED, config=CONFIG)
schema.app = application  # probes (a request without the key, with a wrong one) go to the app too

# The store's key, given to Schemathesis as the configured credentials: so it takes a 2xx with it as
# earned, and checks that the same request without it, or with a made-up one, is a 401. The coverage
# cases are built when the tests are collected, before the store exists: they carry this stand-in,
# swapped for the real key (made per test) just before the request goes out.
STAND_IN = "Bearer the-store-key"


@schema.auth()
class StoreKey:
    def get(self, case, context):
        return STAND_IN

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": data}


@schema.hook
def map_path_parameters(context, path_parameters):
    """Half of the ids name the seeded objects, so the checks reach real answers and not only 404s."""
    if not path_parameters:
        return path_parameters
    for name, seeded in SEEDED.items():
        if name in path_parameters and seeded and len(str(path_parameters)) % 2:
            path_parameters[name] = seeded[0]
    return path_parameters


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_server_does_what_the_schema_says(case, keys, in_process_wsgi):  # noqa: F811
    if (case.headers or {}).get("Authorization") == STAND_IN:
        case.headers["Authorization"] = keys["valid"]["Authorization"]
    # Generated requests reuse Idempotency-Key values; each is sent as a first use of its key (a
    # reuse with another body is a 422 by design: tests/lifecycle/test_idempotency.py).
    IdempotencyRecord.objects.for_tenant(Tenant.objects.get(slug="fuzz")).delete()
    case.call_and_validate()


# --- what the schema now says, pinned (each was a finding) -----------------------------------


def _published() -> dict:
    return yaml.safe_load(PUBLISHED.read_text())


def _operations(document: dict):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_documents_its_errors_with_the_error_shape_and_414():
    document = _published()
    assert document["components"]["schemas"]["ErrorOut"]["required"] == ["code", "message", "fields"]
    for label, operation in _operations(document):
        responses = operation["responses"]
        assert "414" in responses, label
        for status in ("400", "401", "404", "429"):
            if status in responses:
                schema_ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
                assert schema_ref == "#/components/schemas/ErrorOut", (label, status)
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["schema"]["type"] == "string":
                assert parameter["schema"]["maxLength"] == 255, (label, parameter["name"])


def test_the_idempotency_key_length_is_published_and_enforced(api, tenant):
    keyed = [label for label, operation in _operations(_published())
             for parameter in operation.get("parameters", []) if parameter["name"] == "Idempotency-Key"
             and parameter["schema"] == {"type": "string", "minLength": 1, "maxLength": 255}]
    assert len(keyed) == 10 and "POST /api/v1/orders" in keyed
    for key in ("", "k" * 256):
        refused = api.post("/api/v1/orders", order_payload(external_id="IK-1"), headers={"Idempotency-Key": key})
        assert refused.status_code == 400
        assert refused.json() == {"code": "idempotency.bad_key", "fields": {},
                                  "message": "Idempotency-Key must be 1 to 255 characters."}
    assert not Order.objects.for_tenant(tenant).exists()
    assert not IdempotencyRecord.objects.for_tenant(tenant).exists()
    accepted = api.post("/api/v1/orders", order_payload(external_id="IK-1"), headers={"Idempotency-Key": "k" * 255})
    assert accepted.status_code == 201
    assert list(Order.objects.for_tenant(tenant).values_list("external_id", flat=True)) == ["IK-1"]


def test_a_customer_needs_an_external_id_or_an_email_in_the_schema_as_on_the_server(api, tenant):
    document = _published()
    customer = {**document["components"]["schemas"]["CustomerIn"], "components": document["components"]}
    validator = jsonschema.Draft202012Validator(customer)
    assert not validator.is_valid({"first_name": "Ada"})
    assert not validator.is_valid({"external_id": None, "email": None})
    assert not validator.is_valid({"external_id": ""})
    assert validator.is_valid({"external_id": "c-1"}) and validator.is_valid({"email": "ada@example.com"})

    refused = api.post("/api/v1/orders", order_payload(external_id="NC-1", customer={"first_name": "Ada"}))
    assert refused.status_code == 400
    assert refused.json()["fields"] == {"customer": ["a customer needs an external_id or an email"]}
    assert not Order.objects.for_tenant(tenant).exists()
    assert api.post("/api/v1/orders", order_payload(external_id="NC-2", customer={"email": "ada@example.com"})
                    ).status_code == 201


def test_customers_by_email_requires_an_address_as_published(api):
    parameter = next(p for label, operation in _operations(_published()) if label == "GET /api/v1/customers"
                     for p in operation["parameters"])
    assert (parameter["name"], parameter["required"], parameter["schema"]) == ("email", True,
                                                                              {"type": "string", "pattern": "@"})
    for params in ({}, {"email": ""}, {"email": "nobody"}):
        response = api.get("/api/v1/customers", params)
        assert (response.status_code, response.json()["code"]) == (400, "customers.email_required"), params
    assert api.get("/api/v1/customers", {"email": "nobody@example.com"}).json() == {"results": []}


@pytest.mark.parametrize("path", ["/api/v1/feedback/metrics", "/api/v1/referrals/metrics"])
def test_an_empty_or_loose_date_is_a_400_as_the_schema_says(api, tenant, path):
    ReferralProgram.objects.for_tenant(tenant).create(tenant=tenant)
    code = "feedback.bad_date" if "feedback" in path else "referrals.bad_date"
    for name in ("since", "until"):
        for value in ("", "20260131", "2026-W05-6", "2026-02-30"):
            response = api.get(path, {name: value})
            assert response.status_code == 400, (name, value)
            assert response.json() == {"code": code, "message": f"{name} must be a date such as 2026-01-31",
                                       "fields": {name: ["must be a date such as 2026-01-31"]}}
    assert api.get(path, {"since": "2026-01-01", "until": "2026-02-01"}).status_code == 200
    assert api.get(path).status_code == 200


def test_paging_and_id_parameters_publish_their_range(api):
    ranges = {(label, p["name"]): (p["schema"].get("minimum"), p["schema"].get("maximum"))
              for label, operation in _operations(_published()) for p in operation.get("parameters", [])
              if p["schema"].get("type") == "integer"}
    assert ranges == {
        ("GET /api/v1/journeys", "after"): (0, 2**63 - 1),
        ("GET /api/v1/customers/{external_id}/journeys", "journey"): (1, 2**63 - 1),
        ("GET /api/v1/products/{external_id}/reviews", "page"): (1, 10**6),
        ("GET /api/v1/products/{external_id}/reviews", "page_size"): (1, 100),
    }
    after = api.get("/api/v1/journeys", {"after": "-1"})
    assert (after.status_code, after.json()["fields"]) == (400, {"after": ["must be a whole number"]})


def test_numbers_in_event_data_are_stored_as_json_numbers(api, tenant):
    """Found by the fuzzing: a fraction in `data` (read as Decimal, for money) could not be written: 500."""
    body = {"type": "support.contacted", "customer": {"external_id": "c-1"},
            "data": {"rating": 4.5, "count": 3, "nested": [{"share": 0.25}], "big": 6.1423998383946376e+16}}
    created = api.post("/api/v1/events", body)
    assert created.status_code == 201, created.content
    event = Event.objects.for_tenant(tenant).get(pk=created.json()["id"])
    assert event.data == {"rating": 4.5, "count": 3, "nested": [{"share": 0.25}], "big": 61423998383946376}
    events = Event.objects.for_tenant(tenant).count()
    too_large = api.post("/api/v1/events", raw=b'{"type": "support.contacted", "customer": {"external_id": "c-1"},'
                                                 b' "data": {"x": [1e400]}}')
    assert too_large.status_code == 400
    assert too_large.json() == {"code": "validation_failed", "message": "data.x.0 is too large a number",
                                "fields": {"data.x.0": ["is too large a number"]}}
    assert Event.objects.for_tenant(tenant).count() == events
