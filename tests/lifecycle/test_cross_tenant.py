"""Tenant B's key on tenant A's objects: every API route answers 404, and nothing of A changes.

The route list is read from the URLconf, so a new route without a case here fails the suite.
"""

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from journeys.models import EmailTemplate, Journey, Step
from lifecycle.models import Customer, Event, Order, Refund
from tests.factories import order_payload

pytestmark = pytest.mark.django_db

# (method, path template, body) for every route that names an object by its id.
OBJECT_ROUTES = {
    "v1:order-detail": [("get", "/api/v1/orders/{order}", None)],
    "v1:order-fulfillment": [("post", "/api/v1/orders/{order}/fulfillment", {})],
    "v1:order-delivery": [("post", "/api/v1/orders/{order}/delivery", {})],
    "v1:order-cancellation": [("post", "/api/v1/orders/{order}/cancellation", {"reason": "x"})],
    "v1:order-refunds": [("post", "/api/v1/orders/{order}/refunds", {"external_id": "r", "amount": "1.00"})],
    "v1:customer-detail": [("get", "/api/v1/customers/{customer}", None),
                           ("delete", "/api/v1/customers/{customer}", None)],
    "v1:journey-detail": [("get", "/api/v1/journeys/{journey}", None)],
    # A's referral code is its customer's id ("A-C"), so the missing-object path differs the same way.
    "v1:referral-code": [("get", "/api/v1/referrals/{customer}", None)],
    "v1:customer-referral": [("get", "/api/v1/customers/{customer}/referral", None)],
    "v1:customer-journeys": [("get", "/api/v1/customers/{customer}/journeys", None)],
    "v1:customer-export": [("get", "/api/v1/customers/{customer}/export", None)],
    "v1:product-reviews": [("get", "/api/v1/products/{product}/reviews", None)],
    "v1:customer-loyalty": [("get", "/api/v1/customers/{customer}/loyalty", None)],
    "v1:customer-redemptions": [("post", "/api/v1/customers/{customer}/redemptions", {"reward_id": 1})],
    "v1:reward-codes": [("post", "/api/v1/loyalty/rewards/{reward}/codes", {"codes": ["B-CODE"]})],
}
# Routes that name no object: they act on the caller's own tenant. Checked below one by one.
COLLECTION_ROUTES = {"v1:ping", "v1:orders", "v1:orders-bulk", "v1:customers", "v1:events", "v1:journeys", "v1:feedback-metrics",
                     "v1:referral-metrics"}
MISSING_JOURNEY = "999999999"
MISSING_REWARD = "999999998"
A_JOURNEY = {"name": "Welcome", "trigger": "order_paid",
             "steps": [{"position": 1, "wait": "P1D", "template": {"subject": "Hi {{ first_name }}", "body": "<p>Hi</p>"}}]}


def api_route_names() -> set[str]:
    names = set()

    def walk(patterns, namespace):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, p.namespace or namespace)
            elif isinstance(p, URLPattern) and namespace == "v1":
                names.add(f"v1:{p.name}")

    walk(get_resolver().url_patterns, None)
    return names


def snapshot(tenant) -> str:
    rows = {
        "orders": list(Order.objects.for_tenant(tenant).order_by("pk").values()),
        "customers": list(Customer.objects.for_tenant(tenant).order_by("pk").values()),
        "refunds": list(Refund.objects.for_tenant(tenant).order_by("pk").values()),
        "events": Event.objects.for_tenant(tenant).count(),
        "journeys": [list(model.objects.for_tenant(tenant).order_by("pk").values())
                     for model in (Journey, Step, EmailTemplate)],
    }
    return json.dumps(rows, default=str, sort_keys=True)


@pytest.fixture
def a_objects(api, tenant):
    api.post("/api/v1/orders", order_payload(external_id="A-1", customer={"external_id": "A-C", "email": "a@a-store.example.com"}))
    from referrals.models import Program as ReferralProgram
    from referrals.services import referral_code_add_vanity

    ReferralProgram.objects.for_tenant(tenant).create(tenant=tenant, store_url="https://a-store.example.com/")
    referral_code_add_vanity(tenant=tenant, customer=Customer.objects.for_tenant(tenant).get(external_id="A-C"), code="A-C")
    journey = api.post("/api/v1/journeys", A_JOURNEY).json()["id"]
    from loyalty.models import Program, Reward

    program = Program.objects.for_tenant(tenant).create(tenant=tenant)
    reward = Reward.objects.for_tenant(tenant).create(tenant=tenant, program=program, name="5 off", kind="fixed_discount",
                                                      cost=10, code_source="pool")
    return {"order": "A-1", "customer": "A-C", "product": "p-beans", "journey": journey, "reward": reward.pk}


def test_every_api_route_is_covered():
    assert api_route_names() == set(OBJECT_ROUTES) | COLLECTION_ROUTES


@pytest.mark.parametrize("route", sorted(OBJECT_ROUTES))
def test_other_tenant_gets_404_on_every_object_route(route, a_objects, tenant, other_api, other_tenant):
    before = snapshot(tenant)
    for method, template, body in OBJECT_ROUTES[route]:
        path = template.format(**a_objects)
        missing_path = template.format(order="no-such-order", customer="no-such-customer", product="no-such-product", journey=MISSING_JOURNEY,
                                        reward=MISSING_REWARD)
        if method == "get":
            response, missing = other_api.get(path), other_api.get(missing_path)
        elif method == "delete":
            response, missing = other_api.delete(path), other_api.delete(missing_path)
        else:
            response, missing = other_api.post(path, body), other_api.post(missing_path, body)

        assert response.status_code == 404, (route, method, response.content)
        # "Someone else's" and "missing" are indistinguishable.
        assert response.json() == json.loads(missing.content.replace(b"no-such-order", b"A-1")
                                              .replace(b"no-such-customer", b"A-C")
                                              .replace(b"no-such-product", b"p-beans")
                                              .replace(MISSING_JOURNEY.encode(), str(a_objects["journey"]).encode())
                                              .replace(MISSING_REWARD.encode(), str(a_objects["reward"]).encode()))
    assert snapshot(tenant) == before
    assert snapshot(other_tenant) == json.dumps(
        {"orders": [], "customers": [], "refunds": [], "events": 0, "journeys": [[], [], []]}, sort_keys=True)


def test_collection_routes_act_only_on_the_callers_tenant(a_objects, tenant, other_api, other_tenant):
    before = snapshot(tenant)

    assert other_api.post("/api/v1/ping").json()["tenant"] == "globex"
    assert other_api.get("/api/v1/customers", {"email": "a@a-store.example.com"}).json() == {"results": []}
    same_ids = order_payload(external_id="A-1", customer={"external_id": "A-C", "email": "a@a-store.example.com"})
    assert other_api.post("/api/v1/orders", same_ids).status_code == 201
    bulk = other_api.post("/api/v1/orders/bulk", {"orders": [order_payload(external_id="A-2")]})
    assert bulk.json()["created"] == 1
    assert other_api.post("/api/v1/events", {"type": "support.contacted", "customer": {"external_id": "A-C"},
                                             "order_external_id": "A-1"}).status_code == 201
    assert other_api.get("/api/v1/feedback/metrics").json()["overall"]["requests"] == 0
    assert other_api.get("/api/v1/referrals/metrics").json()["code"] == "referrals.no_program"  # B has none
    assert other_api.get("/api/v1/journeys").json() == {"results": [], "next": None}
    assert other_api.post("/api/v1/journeys", A_JOURNEY).status_code == 201  # same name: B's own journey

    assert snapshot(tenant) == before
    b_orders = Order.objects.for_tenant(other_tenant)
    assert sorted(b_orders.values_list("external_id", flat=True)) == ["A-1", "A-2"]
    assert Event.objects.for_tenant(other_tenant).get(type="support.contacted").order.tenant_id == other_tenant.pk
    [b_journey] = other_api.get("/api/v1/journeys").json()["results"]
    assert b_journey["id"] == Journey.objects.for_tenant(other_tenant).get().pk != a_objects["journey"]


# The core's pages behind a customer's signed email link (lifecycle/urls.py): the token names store and
# customer, so "tenant B" is a link signed for B. Each page, for a link signed for B naming A's customer
# (and for A naming B's), answers exactly as for a bad link, 404, and changes nothing of either store.
# tests/proof/test_signed_links.py tries every purpose's links the same way, and tampered and expired ones.
LINK_ROUTES = {
    "unsubscribe": [("get", "/u/{token}", {}), ("post", "/u/{token}", {"List-Unsubscribe": "One-Click"})],
    "preferences": [("get", "/u/{token}/preferences", {}),
                    *(("post", "/u/{token}/preferences", {"action": action, "categories": ["tips"]})
                      for action in ("save", "subscribe", "unsubscribe_all"))],
}


def test_every_customer_link_route_of_the_core_is_covered():
    from lifecycle import urls

    assert {p.name for p in urls.urlpatterns if "token" in p.pattern.converters} == set(LINK_ROUTES)


@pytest.mark.parametrize("route", sorted(LINK_ROUTES))
def test_a_link_signed_for_another_store_is_a_404_on_every_link_route(route, a_objects, tenant, other_api,
                                                                      other_tenant):
    from django.test import Client

    from lifecycle.links import make_token

    other_api.post("/api/v1/orders", order_payload(external_id="B-1", customer={"external_id": "B-C",
                                                                                 "email": "b@b-store.example.com"}))
    a_customer = Customer.objects.for_tenant(tenant).get(external_id="A-C")
    b_customer = Customer.objects.for_tenant(other_tenant).get(external_id="B-C")
    before = snapshot(tenant), snapshot(other_tenant)
    foreign = [make_token("unsubscribe", tenant_id=other_tenant.pk, customer_id=a_customer.pk),
               make_token("unsubscribe", tenant_id=tenant.pk, customer_id=b_customer.pk)]
    for method, template, form in LINK_ROUTES[route]:
        missing = getattr(Client(), method)(template.format(token="no-such-link"), form)
        for token in foreign:
            response = getattr(Client(), method)(template.format(token=token), form)
            assert response.status_code == 404, (route, method, response.status_code)
            assert response.content == missing.content
    assert (snapshot(tenant), snapshot(other_tenant)) == before
