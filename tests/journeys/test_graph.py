"""A journey is a graph: each customer takes exactly one path through it, the explain view says which
rule sent them down which arm, a bad graph is a 400 that names the step, and a linear journey written
before graphs reads as it did."""

import datetime as dt
from decimal import Decimal

import pytest

from journeys.conditions import Context, condition_decide
from journeys.io import journey_export
from journeys.models import Delivery, Journey
from lifecycle import clock
from lifecycle.models import Customer, Event, Order, Product
from loyalty.models import LoyaltyAccount

from .helpers import process_events
from .test_engine import NOON, paid_order, send_due

pytestmark = pytest.mark.django_db

BEANS = {"product_external_id": "p-beans", "sku": "BEANS-1KG", "title": "House beans", "quantity": 1,
         "unit_price": "24.95"}
FILTERS = {"product_external_id": "p-filter", "sku": "FILTER-100", "title": "Filters", "quantity": 1,
           "unit_price": "15.00"}


def email(position, subject, **fields):
    return {"position": position, "template": {"subject": subject, "body": "<p>Hi {{ first_name }}</p>"}, **fields}


def graph_journey(**overrides):
    """1 thanks → 2 (bought beans in this order and clicked step 1?) → yes: 3 brew guide → 5 rejoin;
    no: 4 nudge, then the end."""
    body = {
        "name": "Beans or not", "trigger": "order_paid", "status": "active", "message_class": "transactional",
        "steps": [
            email(1, "Thanks"),
            {"position": 2, "kind": "condition", "wait": "P1D", "config": {
                "all": [{"field": "bought", "sku": "BEANS-1KG", "when": "this_order"},
                        {"field": "clicked_step", "step": 1}], "then": 3, "else": 4}},
            email(3, "Brew guide", next=5),
            email(4, "Did you see our email?", next="end"),
            email(5, "Rejoined"),
        ],
    }
    body.update(overrides)
    return body


def path_of(tenant, journey) -> dict[str, list[tuple[int, str]]]:
    out: dict[str, list[tuple[int, str]]] = {}
    for d in Delivery.objects.for_tenant(tenant).filter(journey=journey).select_related("customer", "step").order_by(
            "customer__external_id", "step__position"):
        out.setdefault(d.customer.external_id, []).append((d.step.position, d.state))
    return out


def test_each_customer_takes_exactly_one_path_and_the_explain_view_says_why(api, tenant):
    assert api.post("/api/v1/journeys", graph_journey()).status_code == 201
    journey = Journey.objects.for_tenant(tenant).get(name="Beans or not")
    with clock.frozen(NOON):
        paid_order(api, external_id="o1", customer={"external_id": "clicker"}, lines=[BEANS])
        paid_order(api, external_id="o2", customer={"external_id": "no-click"}, lines=[BEANS])
        paid_order(api, external_id="o3", customer={"external_id": "filters"}, lines=[FILTERS])
        process_events()
    assert send_due(NOON) == ["sent"] * 3
    Delivery.objects.for_tenant(tenant).filter(customer__external_id__in=["clicker", "filters"], step__position=1) \
        .update(clicked_at=NOON + dt.timedelta(hours=1))
    for day in range(1, 4):
        while send_due(NOON + dt.timedelta(days=day)):
            pass

    assert path_of(tenant, journey) == {
        "clicker": [(1, "sent"), (2, "sent"), (3, "sent"), (5, "sent")],
        "no-click": [(1, "sent"), (2, "sent"), (4, "sent")],
        "filters": [(1, "sent"), (2, "sent"), (4, "sent")],
    }
    reasons = dict(Delivery.objects.for_tenant(tenant).filter(journey=journey, step__position=2)
                   .values_list("customer__external_id", "reason"))
    assert reasons == {
        "clicker": "all of bought SKU BEANS-1KG in this order; clicked step 1: yes → step 3",
        "no-click": "clicked step 1: no → step 4",
        "filters": "bought SKU BEANS-1KG in this order: no → step 4",
    }
    explained = api.get(f"/api/v1/customers/filters/journeys?journey={journey.pk}").json()["journeys"][0]
    steps = {s["position"]: s for s in explained["enrollments"][0]["steps"]}
    assert steps[2]["summary"] == ("Step 2 (condition) evaluated 2026-11-24 10:00: "
                                   "bought SKU BEANS-1KG in this order: no → step 4")
    assert (steps[3]["state"], steps[5]["state"]) == ("not_scheduled", "not_scheduled")
    assert explained["enrollments"][0]["state"] == "completed"


def test_steps_run_in_the_order_their_next_says_not_by_position(api, tenant):
    body = {"name": "Jump", "trigger": "order_paid", "status": "active", "message_class": "transactional",
            "steps": [email(1, "One", next=3), email(2, "Two, last", next="end"), email(3, "Three", next=2)]}
    assert api.post("/api/v1/journeys", body).status_code == 201
    journey = Journey.objects.for_tenant(tenant).get(name="Jump")
    with clock.frozen(NOON):
        paid_order(api, external_id="o1", customer={"external_id": "c1"})
        process_events()
    while send_due(NOON):
        pass
    ran = Delivery.objects.for_tenant(tenant).filter(journey=journey).order_by("pk")
    assert [(d.step.position, d.state) for d in ran] == [(1, "sent"), (3, "sent"), (2, "sent")]
    assert journey.enrollments.get().state == "completed"
    assert [s["next"] for s in journey_export(journey)["steps"]] == [3, "end", 2]


BAD_GRAPHS = {
    "an arm pointing nowhere": (
        {"position": 2, "kind": "condition", "config": {"field": "order_count", "op": ">=", "value": 2,
                                                        "then": 9, "else": 4}},
        {"steps.1.config.then": ["points at position 9, and no step has that position"]}),
    "a next pointing nowhere": (
        email(2, "x", next=7), {"steps.1.next": ["points at position 7, and no step has that position"]}),
    "a loop": (
        email(2, "x", next=1),
        {"steps.1.next": ['goes back to step 1, making a loop (steps 1 → 2 → 1): a step runs at most once for a '
                          'customer, so the loop would stop there. End it there ("end") or point it at a step outside '
                          "the loop"]}),
    "a next on a condition": (
        {"position": 2, "kind": "condition", "next": 3,
         "config": {"field": "order_count", "op": ">=", "value": 2, "then": 3}},
        {"steps.1.next": ["must be left out: a condition step goes on through its config's then and else"]}),
    "opened a step that sends nothing": (
        {"position": 2, "kind": "condition", "config": {"field": "opened_step", "step": 2, "then": 3}},
        {"steps.1.config.step": ["must be the position of an email step of this journey; 2 is not one"]}),
    "bought with nothing named": (
        {"position": 2, "kind": "condition", "config": {"field": "bought", "then": 3}},
        {"steps.1.config.sku": ["name one of product, sku or collection: what the customer bought"]}),
    "within without days": (
        {"position": 2, "kind": "condition", "config": {"field": "bought", "sku": "A", "when": "within", "then": 3}},
        {"steps.1.config.days": ["is required when 'when' is 'within': within how many days, such as 30"]}),
    "a rule and a list": (
        {"position": 2, "kind": "condition", "config": {"field": "order_count", "value": 1,
                                                        "any": [{"field": "tier", "value": "Gold"}]}},
        {"steps.1.config.any": ["give one rule (field, op, value) or a list of rules under 'all' or 'any'"]}),
}


@pytest.mark.parametrize("case", sorted(BAD_GRAPHS))
def test_a_bad_graph_is_a_400_naming_the_step_and_writes_nothing(case, api, tenant):
    step, fields = BAD_GRAPHS[case]
    body = graph_journey()
    body["steps"][1] = step

    response = api.post("/api/v1/journeys", body)

    assert response.status_code == 400, response.content
    assert response.json()["fields"] == fields
    assert not Journey.objects.for_tenant(tenant).exists()


def test_a_linear_journey_from_before_graphs_imports_unchanged(api, tenant):
    """Today's JSON (no `next`) runs 1 → 2 → 3 and exports with every `next` left open."""
    body = {"name": "Linear", "trigger": "order_paid", "status": "active", "message_class": "transactional",
            "steps": [email(1, "One"), email(2, "Two"), email(3, "Three")]}
    assert api.post("/api/v1/journeys", body).status_code == 201
    journey = Journey.objects.for_tenant(tenant).get(name="Linear")
    exported = journey_export(journey)
    assert [s["next"] for s in exported["steps"]] == [None, None, None]
    assert api.post("/api/v1/journeys", exported).status_code == 200  # the same journey, nothing changed
    with clock.frozen(NOON):
        paid_order(api, external_id="o1", customer={"external_id": "c1"})
        process_events()
    while send_due(NOON):
        pass
    assert path_of(tenant, journey) == {"c1": [(1, "sent"), (2, "sent"), (3, "sent")]}


# --- the vocabulary, rule by rule ------------------------------------------------------


def decide(customer, config, **ctx):
    return condition_decide(config, Context(tenant_id=customer.tenant_id, now=NOON, **ctx), customer)


def test_behaviour_conditions_hold_exactly_when_they_should(api, tenant):
    with clock.frozen(NOON - dt.timedelta(days=40)):
        paid_order(api, external_id="old", customer={"external_id": "c1"}, lines=[FILTERS],
                   placed_at="2026-10-14T08:00:00Z")
    with clock.frozen(NOON):
        paid_order(api, external_id="new", customer={"external_id": "c1"}, lines=[BEANS])
        assert api.post("/api/v1/events", {"type": "feature.used", "customer": {"external_id": "c1"},
                                           "data": {"name": "export", "count": 3}}).status_code in (200, 201, 202)
    Product.objects.for_tenant(tenant).filter(external_id="p-filter").update(collections=["brewing", "paper"])
    customer = Customer.objects.for_tenant(tenant).get(external_id="c1")
    Customer.objects.for_tenant(tenant).filter(pk=customer.pk).update(last_order_at=NOON - dt.timedelta(days=12))
    customer.refresh_from_db()
    new = Order.objects.for_tenant(tenant).get(external_id="new")

    assert decide(customer, {"field": "bought", "collection": "brewing"}) == (True, "bought from collection brewing ever: yes")
    assert decide(customer, {"field": "bought", "collection": "brewing", "when": "within", "days": 30}) == (
        False, "bought from collection brewing within 30 days: no")
    assert decide(customer, {"field": "bought", "sku": "FILTER-100", "when": "this_order"}, order_id=new.pk)[0] is False
    assert decide(customer, {"field": "bought", "product": "p-beans", "when": "this_order"}, order_id=new.pk)[0] is True
    assert decide(customer, {"field": "bought", "sku": "MUG", "value": False}) == (True, "did not buy SKU MUG ever: yes")
    assert decide(customer, {"field": "did_event", "event": "feature.used", "data": {"name": "export"}, "days": 7}) == (
        True, "sent feature.used with name=export in the last 7 days: yes")
    assert decide(customer, {"field": "did_event", "event": "feature.used", "data": {"name": "import"},
                             "value": False})[0] is True
    assert decide(customer, {"field": "days_since_last_order", "op": "==", "value": 12})[0] is True
    assert decide(customer, {"field": "days_since_last_order", "op": ">", "value": 12})[0] is False
    assert decide(customer, {"field": "days_since_last_order", "op": ">=", "value": 12})[0] is True
    assert decide(customer, {"field": "order_count", "op": ">=", "value": 2}) == (True, "order count is at least 2: yes")
    assert decide(customer, {"field": "total_spent", "op": ">", "value": "119.80"})[0] is False  # 2 × 59.90
    assert decide(customer, {"field": "total_spent", "op": ">=", "value": "119.80"})[0] is True
    assert decide(customer, {"field": "latest_nps", "op": "<=", "value": 6})[0] is False  # never answered
    assert decide(customer, {"field": "trigger_data", "key": "topic", "value": "shipping"},
                  trigger_data={"topic": "shipping"}) == (True, "the trigger's topic is shipping: yes")
    assert decide(customer, {"field": "trigger_data", "key": "items.0.qty", "op": ">", "value": 2},
                  trigger_data={"items": [{"qty": 3}]})[0] is True
    assert decide(customer, {"any": [{"field": "tier", "value": "Gold"}, {"field": "order_count", "op": "<",
                                                                          "value": 1}]}) == (
        False, "none of loyalty tier is Gold; order count is below 1: no")
    LoyaltyAccount.objects.for_tenant(tenant).create(tenant=tenant, customer=customer, balance=150)
    assert decide(customer, {"any": [{"field": "tier", "value": "Gold"}, {"field": "points_balance", "op": ">=",
                                                                          "value": 150}]}) == (
        True, "points balance is at least 150: yes")
    assert Event.objects.for_tenant(tenant).filter(type="feature.used").count() == 1


def test_health_band_is_the_customer_pages_health(api, tenant):
    with clock.frozen(NOON):
        paid_order(api, external_id="o1", customer={"external_id": "c1"})
        for i in range(3):  # three support contacts in 30 days: red
            api.post("/api/v1/events", {"type": "support.contacted", "customer": {"external_id": "c1"},
                                        "idempotency_key": f"s{i}", "data": {"topic": "shipping"}})
    customer = Customer.objects.for_tenant(tenant).get(external_id="c1")
    assert decide(customer, {"field": "health_band", "value": "red"}) == (True, "health is red: yes")
    assert decide(customer, {"field": "health_band", "op": "!=", "value": "red"})[0] is False
    assert customer.total_spent == Decimal("59.90")


def test_paths_put_a_splits_arms_side_by_side_and_rejoin_where_they_meet():
    from types import SimpleNamespace

    from journeys.paths import paths

    def step(position, kind="email", config=None, next_position=None, ends=False):
        return SimpleNamespace(pk=position * 10, position=position, kind=kind, config=config or {},
                               next_position=next_position, ends=ends)

    steps = [step(1), step(2, "condition", {"field": "order_count", "value": 1, "then": 3, "else": 5}),
             step(3, "condition", {"field": "order_count", "value": 2, "then": 4, "else": 5}),
             step(4, ends=True), step(5), step(6, "ab_split", {"variants": [{"step": 7}, {"step": 8, "weight": 3}]}),
             step(7, next_position=9), step(8, ends=True), step(9)]

    def shape(nodes):
        return [(n.step.position, n.reached, [(a.label, shape(a.nodes), a.ends, a.goes_to) for a in n.arms])
                for n in nodes]

    assert shape(paths(steps, {10: 5, 20: 5, 30: 3})) == [
        (1, 5, []),
        (2, 5, [("Yes", [(3, 3, [("Yes", [(4, 0, [])], True, None), ("No", [], False, None)])], False, None),
                ("No", [], False, None)]),
        (5, 0, []),
        (6, 0, [("A · 25%", [(7, 0, []), (9, 0, [])], True, None), ("B · 75%", [(8, 0, [])], True, None)]),
    ]
