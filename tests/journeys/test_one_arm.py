"""Journeys do what the builder shows: an A/B split sends each customer exactly one arm, every way
of going live runs the same activation check, and what the engine cannot do is refused."""

import datetime as dt
from collections import defaultdict

import pytest
from django.core import mail

from feedback.models import Survey
from journeys import builder
from journeys.builder_checks import journey_problems, step_does
from journeys.io import NotReady, activation_check
from journeys.models import Delivery, EmailTemplate, Enrollment, Journey, Step
from lifecycle import clock
from lifecycle.models import Customer
from loyalty.models import LoyaltyAccount, Tier
from loyalty.services import points_award
from tests.loyalty.helpers import program

from .helpers import make_journey, process_events
from .test_engine import NOON, paid_order, send_due
from .test_io import journey_json, with_step

pytestmark = pytest.mark.django_db


def orders_for(api, n: int) -> None:
    with clock.frozen(NOON):
        for i in range(n):
            paid_order(api, external_id=f"O{i}", customer={"external_id": f"c{i}", "email": f"c{i}@example.com",
                                                            "marketing_consent": True})
        process_events()


def send_everything(start: dt.datetime) -> None:
    for day in range(10):
        while send_due(start + dt.timedelta(days=day)):
            pass


def rows_by_customer(tenant, journey) -> dict[str, list[tuple[int, str]]]:
    """Each customer's delivery rows as (step position, state), by the customer's email."""
    found = defaultdict(list)
    for delivery in (Delivery.objects.for_tenant(tenant).filter(journey=journey).select_related("customer", "step")
                     .order_by("step__position")):
        found[delivery.customer.email].append((delivery.step.position, delivery.state))
    return dict(found)


def emails_by_customer() -> dict[str, list[str]]:
    found = defaultdict(list)
    for message in mail.outbox:
        found[message.to[0]].append(message.subject)
    return dict(found)


def test_the_builders_default_ab_layout_sends_each_customer_exactly_one_arm(api, tenant):
    journey = builder.journey_create(tenant=tenant, name="Welcome test", trigger=Journey.Trigger.ORDER_PAID)
    builder.journey_settings_update(tenant=tenant, journey_id=journey.pk, values={"message_class": "transactional"})
    split = builder.step_add(tenant=tenant, journey_id=journey.pk, kind="ab_split", wait=dt.timedelta(0))
    assert split.config == {"variants": [{"step": 3, "weight": 1}, {"step": 4, "weight": 1}]}  # the default 50/50
    for subject in ("Variant A", "Variant B", "Both arms go on here"):
        step = builder.step_add(tenant=tenant, journey_id=journey.pk, kind="email", wait=dt.timedelta(0))
        builder.step_update(tenant=tenant, journey_id=journey.pk, step_id=step.pk, values={},
                            content={"subject": subject, "body": "<p>Hi {{ first_name }}</p>", "preheader": "",
                                     "signature": ""})
    builder.journey_set_status(tenant=tenant, journey_id=journey.pk, action="activate")
    steps = {s.position: s for s in Step.objects.for_tenant(tenant).filter(journey=journey)}
    assert step_does(steps[2], steps) == ("splits 50% to step 3, 50% to step 4; each customer gets one branch, "
                                          "then goes on at step 5")

    orders_for(api, 30)
    send_everything(NOON + dt.timedelta(days=1))

    rows = rows_by_customer(tenant, journey)
    emails = emails_by_customer()
    assert len(rows) == 30
    arms = defaultdict(int)
    for address, delivered in rows.items():
        arm = 3 if (3, "sent") in delivered else 4
        arms[arm] += 1
        assert delivered == [(1, "sent"), (2, "sent"), (arm, "sent"), (5, "sent")], address
        assert emails[address] == ["A note from Acme Coffee", "Variant A" if arm == 3 else "Variant B",
                                   "Both arms go on here"], address
    assert arms[3] > 0 and arms[4] > 0 and arms[3] + arms[4] == 30
    assert len(mail.outbox) == 90
    assert set(Enrollment.objects.for_tenant(tenant).values_list("state", flat=True)) == {"completed"}


def test_arms_of_several_steps_meet_again_where_the_split_says(api, tenant):
    journey = make_journey(tenant, message_class="transactional", steps=[
        ("PT0S", "unused"), ("PT0S", "A1"), ("PT0S", "A2"), ("PT0S", "B1"), ("PT0S", "B2"), ("PT0S", "Together")])
    Step.objects.for_tenant(tenant).filter(journey=journey, position=1).update(
        kind="ab_split", template=None,
        config={"variants": [{"step": 2, "weight": 1}, {"step": 4, "weight": 1}], "then": 6})
    assert journey_problems(journey) == []

    orders_for(api, 20)
    send_everything(NOON)

    emails = emails_by_customer()
    assert len(emails) == 20
    assert {tuple(subjects) for subjects in emails.values()} == {("A1", "A2", "Together"), ("B1", "B2", "Together")}
    for delivered in rows_by_customer(tenant, journey).values():
        assert [p for p, _ in delivered] in ([1, 2, 3, 6], [1, 4, 5, 6])


def test_a_split_with_nothing_after_its_arms_ends_the_journey_after_one_arm(api, tenant):
    journey = make_journey(tenant, message_class="transactional",
                           steps=[("PT0S", "unused"), ("PT0S", "A"), ("PT0S", "B")])
    Step.objects.for_tenant(tenant).filter(journey=journey, position=1).update(
        kind="ab_split", template=None, config={"variants": [{"step": 2, "weight": 1}, {"step": 3, "weight": 1}]})

    orders_for(api, 12)
    send_everything(NOON)

    assert sorted(len(subjects) for subjects in emails_by_customer().values()) == [1] * 12
    for delivered in rows_by_customer(tenant, journey).values():
        assert delivered in ([(1, "sent"), (2, "sent")], [(1, "sent"), (3, "sent")])


# --- conditions on loyalty ------------------------------------------------------------


@pytest.mark.parametrize(("field", "op", "value"), [("points_balance", ">=", 100), ("tier", "==", "Gold")])
def test_conditions_on_points_and_tier_take_the_right_branch(api, tenant, field, op, value):
    prog = program(tenant)
    gold = Tier.objects.for_tenant(tenant).create(tenant=tenant, program=prog, name="Gold", threshold=500)
    body = journey_json(name="Loyal", trigger="order_paid", message_class="transactional", exit_events=[], steps=[
        {"position": 1, "kind": "condition", "config": {"field": field, "op": op, "value": value, "then": 2}},
        {"position": 2, "template": {"subject": "For our best customers", "body": "<p>{{ points_balance }}</p>"}}])
    assert api.post("/api/v1/journeys", {**body, "status": "active"}).status_code == 201
    with clock.frozen(NOON):
        for name in ("rich", "poor"):
            paid_order(api, external_id=f"O-{name}", customer={"external_id": name, "email": f"{name}@example.com"})
        process_events()  # enrolled; the condition is evaluated when its step runs
    rich = Customer.objects.for_tenant(tenant).get(external_id="rich")
    points_award(tenant=tenant, customer=rich, points=150, source="test:gift")
    LoyaltyAccount.objects.for_tenant(tenant).filter(customer=rich).update(tier=gold)
    send_everything(NOON)

    assert emails_by_customer() == {"rich@example.com": ["For our best customers"]}
    assert "150" in mail.outbox[0].body
    assert sorted(Enrollment.objects.for_tenant(tenant).values_list("customer__external_id", "state")) == [
        ("poor", "completed"), ("rich", "completed")]


# --- one activation check ---------------------------------------------------------------


def test_an_import_that_goes_live_runs_the_activation_check_and_writes_nothing(api, tenant):
    # Valid JSON, but its last step is due 400 days in: past the journey's horizon.
    body = with_step(3, wait="P400D")
    before = (Journey.objects.for_tenant(tenant).count(), EmailTemplate.objects.for_tenant(tenant).count())

    response = api.post("/api/v1/journeys", {**body, "status": "active"})

    assert response.status_code == 400, response.content
    draft = api.post("/api/v1/journeys", body)  # the same journey as a draft is fine...
    assert draft.status_code == 201
    journey = Journey.objects.for_tenant(tenant).get(name=body["name"])
    with pytest.raises(NotReady) as refused:  # ...and activating it says exactly what the import said
        activation_check(journey)
    assert response.json() == {"code": "journeys.not_ready", "message": refused.value.message,
                               "fields": refused.value.fields}
    assert refused.value.message == "1 thing to fix before this journey can go live:"
    assert refused.value.fields == {"status": [
        "step 4: This step can be due 408 days after the customer enters, past the journey's horizon of 365 days: "
        "shorten the waits."]}
    with pytest.raises(builder.NotActivatable) as in_builder:
        builder.journey_set_status(tenant=tenant, journey_id=journey.pk, action="activate")
    assert in_builder.value.message == refused.value.message
    assert [p.message for p in in_builder.value.problems] == [p.message for p in refused.value.problems]

    # Turning the draft live by import is the same check; nothing changes.
    response = api.post("/api/v1/journeys", {**body, "status": "active"})
    assert (response.status_code, response.json()["code"]) == (400, "journeys.not_ready")
    journey.refresh_from_db()
    assert journey.status == "draft"
    assert (Journey.objects.for_tenant(tenant).count(), EmailTemplate.objects.for_tenant(tenant).count()) == (
        before[0] + 1, before[1] + 3)


def test_a_ready_journey_imported_as_active_goes_live(api, tenant):
    response = api.post("/api/v1/journeys", {**journey_json(), "status": "active"})
    assert response.status_code == 201, response.content
    assert Journey.objects.for_tenant(tenant).get().status == "active"


# --- refused kinds and surveys --------------------------------------------------------


def test_the_builder_refuses_a_loyalty_invite_step_and_writes_nothing(tenant):
    journey = builder.journey_create(tenant=tenant, name="Hooks", trigger=Journey.Trigger.ORDER_PAID)
    step = Step.objects.for_tenant(tenant).get(journey=journey)
    with pytest.raises(builder.BuilderError) as refused:
        builder.step_add(tenant=tenant, journey_id=journey.pk, kind="loyalty_invite", wait=dt.timedelta(0))
    assert refused.value.message == ("'loyalty_invite' is not available yet: a loyalty invite step would be accepted "
                                     "and then do nothing. Use an email step, or leave it out.")
    with pytest.raises(builder.BuilderError) as refused:
        builder.step_update(tenant=tenant, journey_id=journey.pk, step_id=step.pk, values={"kind": "loyalty_invite"},
                            content=None)
    assert refused.value.code == "journeys.kind_unavailable"
    assert list(Step.objects.for_tenant(tenant).filter(journey=journey).values_list("kind", flat=True)) == ["email"]


def test_another_stores_survey_id_is_refused_everywhere(api, tenant, other_tenant):
    theirs = Survey.objects.for_tenant(other_tenant).create(tenant=other_tenant, key="nps", name="NPS", kind="nps")
    ours = Survey.objects.for_tenant(tenant).create(tenant=tenant, key="nps", name="NPS", kind="nps")
    steps = [{"position": 1, "kind": "feedback_request", "config": {"survey_id": theirs.pk},
              "template": {"subject": "Tell us", "body": "<p>How likely…</p>"}}]
    body = journey_json(name="Ask", trigger="order_paid", exit_events=[], steps=steps)

    response = api.post("/api/v1/journeys", body)
    message = f"survey_id {theirs.pk} is not a survey of this store: use one of its survey ids, or the survey's key"
    assert (response.status_code, response.json()) == (400, {
        "code": "journeys.unknown_survey", "message": message, "fields": {"steps.0.config.survey_id": [message]}})
    assert not Journey.objects.for_tenant(tenant).exists()

    import json

    with pytest.raises(builder.BuilderError) as refused:
        builder.journey_import_file(tenant=tenant, raw=json.dumps(body).encode())
    assert refused.value.message == message
    assert not Journey.objects.for_tenant(tenant).exists()

    steps[0]["config"] = {"survey_id": ours.pk}
    assert api.post("/api/v1/journeys", body).status_code == 201
    journey = Journey.objects.for_tenant(tenant).get()
    step = Step.objects.for_tenant(tenant).get(journey=journey)
    with pytest.raises(builder.BuilderError) as refused:
        builder.step_update(tenant=tenant, journey_id=journey.pk, step_id=step.pk,
                            values={"config": {"survey_id": theirs.pk}}, content=None)
    assert refused.value.message == message + "."
    step.refresh_from_db()
    assert step.config == {"survey_id": ours.pk}
