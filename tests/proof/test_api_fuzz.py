"""API fuzzing (issue 8, item 5): Schemathesis generates requests for every operation of the
published schema (lifecycle/api/openapi.yaml, which the app serves at /api/schema/) and sends them to
the app in-process (WSGI), with the store's valid key and with bad ones: missing, malformed, revoked,
and another store's. Valid and invalid data both (Schemathesis' positive and negative modes).

Checks on every response: not_a_server_error (never a 5xx) and response_schema_conformance (the
body matches what the schema promises for its status code), with status_code_conformance and
content_type_conformance as well.

Each operation gets at least PROOF_FUZZ_EXAMPLES generated examples (100 in CI), each sent with one
kind of key. Run the fuzzing alone:
    make test PYTEST_ARGS=tests/proof/test_api_fuzz.py
    PROOF_FUZZ_EXAMPLES=1000 PROOF_FUZZ_COVERAGE=1 make test PYTEST_ARGS=tests/proof/test_api_fuzz.py   # longer
"""

import os
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
import yaml
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from lifecycle.models import Tenant
from lifecycle.tenants import api_key_create, api_key_revoke, tenant_create
from tests.factories import order_payload

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "lifecycle" / "api" / "openapi.yaml"
EXAMPLES = int(os.environ.get("PROOF_FUZZ_EXAMPLES", "100"))
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
KEY_KINDS = ("valid", "missing", "malformed", "revoked", "other_store")

# Schemathesis' coverage phase (every boundary case the schema implies, before the random examples)
# takes ~20 s to build and doubles the requests; CI runs the examples and the fuzzing, a longer run
# adds it: PROOF_FUZZ_COVERAGE=1.
COVERAGE = os.environ.get("PROOF_FUZZ_COVERAGE", "") == "1"
schema = schemathesis.openapi.from_path(
    PUBLISHED, config=schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": COVERAGE}}}))
OPERATIONS = [f"{method.upper()} {path}" for path, ops in schema.raw_schema["paths"].items() for method in ops
              if method in ("get", "post", "put", "patch", "delete")]

# Ids of the objects seeded below: half the generated path parameters name one, so the fuzzing reaches
# the answers for real objects, not only 404s.
SEEDED = {"external_id": ["F-1", "fc-1"], "journey_id": [], "reward_id": [], "code": ["FUZZ-1"]}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    choices = [st.just(path_parameters)]
    for name in path_parameters or {}:
        choices += [st.just({**path_parameters, name: seeded}) for seeded in SEEDED.get(name, [])]
    return st.one_of(choices)


@pytest.fixture
def in_process_wsgi(keys):
    """Requests go through the real WSGI handler, which closes the database connection when a request
    ends (close_old_connections): that would close the test's own transaction. Django's test client
    detaches it the same way for each of its requests (and attaches it again after, hence after `keys`)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def keys(db, settings) -> dict[str, dict[str, str]]:
    """Authorization headers by kind, for a store with an order, a customer, a journey, a loyalty
    reward and a referral code."""
    settings.API_RATE_LIMIT_PER_MINUTE = 1_000_000  # the fuzzing is not the rate limit's test
    settings.API_KEY_FAILURE_LIMIT = 1_000_000  # nor the wrong-key lockout's (its malformed keys would trip it)
    tenant, key = tenant_create(slug="fuzz", name="Fuzz Store", currency="EUR", time_zone="Europe/Berlin")
    _, other_key = tenant_create(slug="fuzz-other", name="Other Store")
    revoked, revoked_key = api_key_create(tenant=tenant, name="old")
    api_key_revoke(tenant=tenant, prefix=revoked.prefix)
    _seed(tenant, key)
    return {
        "valid": {"Authorization": f"Bearer {key}"},
        "missing": {},
        "malformed": {"Authorization": "Bearer lc_not-a-key"},
        "revoked": {"Authorization": f"Bearer {revoked_key}"},
        "other_store": {"Authorization": f"Bearer {other_key}"},
    }


def _seed(tenant: Tenant, key: str) -> None:
    from django.test import Client

    from journeys.models import Journey
    from lifecycle.models import Customer
    from loyalty.models import Program, Reward
    from referrals.models import ReferralCode

    client = Client()
    body = order_payload(external_id="F-1", customer={"external_id": "fc-1", "email": "fuzz@example.com",
                                                      "marketing_consent": True})
    assert client.post("/api/v1/orders", body, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 201
    journey = Journey.objects.for_tenant(tenant).create(tenant=tenant, name="Fuzz", trigger="order_paid")
    program = Program.objects.for_tenant(tenant).create(tenant=tenant)
    reward = Reward.objects.for_tenant(tenant).create(tenant=tenant, program=program, name="5 off", cost=10,
                                                      kind="fixed_discount", value="5", currency="EUR")
    customer = Customer.objects.for_tenant(tenant).get(external_id="fc-1")
    ReferralCode.objects.for_tenant(tenant).create(tenant=tenant, customer=customer, code="FUZZ-1")
    SEEDED["journey_id"] = [str(journey.pk)]
    SEEDED["reward_id"] = [str(reward.pk)]


def test_the_published_schema_is_what_the_app_serves(client):
    served = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi")
    assert served.status_code == 200
    assert yaml.safe_load(served.content) == yaml.safe_load(PUBLISHED.read_text())
    assert len(OPERATIONS) >= 24


# Each example draws its key (a header of its own carries the draw, swapped for the real Authorization
# header in the test, since the keys are made per test): the store's own most often, another store's
# (valid, but it must find none of this store's objects) next, then a missing, a malformed and a
# revoked one. Hypothesis draws it, so a failing example replays and shrinks with the same key.
KEY_KIND_HEADER = "X-Proof-Key-Kind"
KEY_KIND = st.sampled_from(["valid"] * 3 + ["other_store"] * 2 + ["missing", "malformed", "revoked"])
CALLS: Counter = Counter()  # (operation, key kind) -> requests sent


@schema.hook
def flatmap_headers(context, headers):
    return KEY_KIND.map(lambda kind: {**(headers or {}), KEY_KIND_HEADER: kind})


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_no_request_breaks_the_api(case, keys, in_process_wsgi):
    headers = {name: value for name, value in (case.headers or {}).items() if name.lower() != "authorization"}
    kind = headers.pop(KEY_KIND_HEADER, "valid")
    case.headers = {**headers, **keys[kind]}
    CALLS[(case.operation.label, kind)] += 1
    case.call_and_validate(app=application, checks=CHECKS)


def test_every_operation_was_fuzzed_with_every_kind_of_key():
    """Runs after the fuzzing (pytest keeps the file's order): what the fuzzing sent, counted. Every
    operation got its examples, at least a quarter of them with the store's own key and some with
    another store's; the missing, malformed and revoked keys (refused before any view runs) each
    reached most operations and were sent dozens of times over all of them."""
    if not CALLS:
        pytest.skip("the fuzzing did not run in this session")
    operations = {label for label, _ in CALLS}
    assert len(operations) == len(OPERATIONS)
    for label in operations:
        sent = Counter({kind: n for (op, kind), n in CALLS.items() if op == label})
        assert sent.total() >= EXAMPLES, (label, sent)
        assert sent["valid"] >= EXAMPLES // 4 and sent["other_store"] > 0, (label, sent)
    for kind in ("missing", "malformed", "revoked"):
        reached = [op for op in operations if CALLS[(op, kind)]]
        assert len(reached) >= len(operations) * 2 // 3, (kind, sorted(set(operations) - set(reached)))
        assert sum(CALLS[(op, kind)] for op in operations) >= EXAMPLES // 2, kind


# --- what the fuzzing found, pinned down ------------------------------------------------------


@pytest.fixture
def store_api(api):
    body = order_payload(external_id="F-1")
    assert api.post("/api/v1/orders", body).status_code == 201
    return api


def test_a_utc_offset_postgresql_cannot_store_is_taken_as_the_time_it_names(store_api, tenant):
    from lifecycle.models import Order

    response = store_api.post("/api/v1/orders/F-1/cancellation", {"cancelled_at": "2025-06-20T05:33:04-22:56"})
    assert response.status_code == 200, response.json()
    assert response.json()["cancelled_at"] == "2025-06-21T04:29:04Z"
    order = store_api.post("/api/v1/orders", order_payload(external_id="F-2", placed_at="2026-11-20T10:00:00+23:30"))
    assert order.status_code == 201 and order.json()["placed_at"] == "2026-11-19T10:30:00Z"
    too_early = store_api.post("/api/v1/orders", order_payload(external_id="F-3", placed_at="0001-01-01T00:00:00+01:00"))
    assert too_early.status_code == 422
    assert too_early.json()["code"] == "timestamp_out_of_range"
    assert too_early.json()["fields"]["placed_at"][0].startswith("must be between 1970-01-01T00:00:00Z and ")
    assert sorted(Order.objects.for_tenant(tenant).values_list("external_id", flat=True)) == ["F-1", "F-2"]


def test_a_nul_character_anywhere_is_a_400_and_writes_nothing(store_api, tenant):
    from lifecycle.models import Event, Order

    events = Event.objects.for_tenant(tenant).count()
    body = order_payload(external_id="F-9")
    body["lines"][1]["title"] = "Paper\x00filters"
    refused = store_api.post("/api/v1/orders", body)
    assert refused.status_code == 400
    assert refused.json()["fields"] == {"body": ["lines.1.title must not contain a NUL (\\u0000) character"]}
    event = store_api.post("/api/v1/events", {"type": "support.contacted", "customer": {"external_id": "c-9"},
                                              "data": {"note\x00": "x"}})
    assert event.status_code == 400 and "data.note" in event.json()["fields"]["body"][0]
    for path, params in (("/api/v1/feedback/metrics", {"survey": "\x00"}), ("/api/v1/orders/F\x00-1", None),
                         ("/api/v1/customers", {"email": "a\x00@example.com"})):
        response = store_api.get(path, params)
        assert (response.status_code, response.json()["code"]) == (400, "request.nul_character"), path
    bulk = store_api.post("/api/v1/orders/bulk", {"orders": [order_payload(external_id="F-10"), body]})
    assert bulk.status_code == 200
    assert [r["result"] for r in bulk.json()["results"]] == ["created", "error"]
    assert sorted(Order.objects.for_tenant(tenant).values_list("external_id", flat=True)) == ["F-1", "F-10"]
    assert Event.objects.for_tenant(tenant).count() > events  # F-10's events, none of F-9's
    assert not Order.objects.for_tenant(tenant).filter(external_id="F-9").exists()
