"""The steps people asked for: a discount code (a loyalty reward's pool, or the store's webhook) placed in the
next email, a check-in signed by a team member whose replies go to them, a community invitation with its link."""

import datetime as dt
import json

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from journeys.dispatch import deliveries_send
from journeys.models import Delivery, EmailTemplate, EnrollmentVariable, Step
from journeys.schedule import deliveries_claim
from journeys.selectors import customer_journeys_explain
from journeys.webhooks import signature_valid, webhook_secret_rotate
from lifecycle import clock
from lifecycle.models import Customer, Membership
from loyalty.models import Reward, RewardCode
from loyalty.redemptions import reward_codes_upload
from tests.factories import order_payload
from tests.loyalty.helpers import program, reward

from .helpers import at, make_journey, process_events
from .webhook_server import Receiver

pytestmark = pytest.mark.django_db

NOON = at("2026-11-23T09:00:00+00:00")  # 10:00 in Berlin: outside quiet hours
DUE = NOON + dt.timedelta(days=1)
THEN = DUE + dt.timedelta(hours=1)


def order(api, n=0):
    body = order_payload(external_id=f"D-{n}", customer={"external_id": f"c{n}", "email": f"c{n}@example.com",
                                                         "first_name": f"N{n}", "marketing_consent": True})
    with clock.frozen(NOON):
        assert api.post("/api/v1/orders", body).status_code == 201
        process_events()


def send_due(when) -> dict:
    with clock.frozen(when):
        return dict(deliveries_send(delivery_ids=deliveries_claim(limit=500)))


def code_journey(tenant, config):
    """Step 1: the discount code; step 2, an hour later: the email that gives it."""
    journey = make_journey(tenant, name="Thank-you code", steps=[("P1D", "unused"), ("PT1H", "A gift")])
    Step.objects.for_tenant(tenant).filter(journey=journey, position=1).update(kind="discount_code", template=None,
                                                                               config=config)
    EmailTemplate.objects.for_tenant(tenant).filter(name=f"{journey.name} 2").update(
        body="<p>Hi {{ first_name }}, your code: {% if discount_code %}{{ discount_code }}{% else %}none{% endif %}</p>")
    return journey


@pytest.fixture
def pool(tenant):
    gift = reward(tenant, program(tenant), name="Thank-you 10%", code_source=Reward.CodeSource.POOL)
    reward_codes_upload(tenant=tenant, reward=gift, codes=["THANKS-A", "THANKS-B"])
    return gift


def test_each_customer_gets_a_unique_pool_code_in_the_next_email(api, tenant, pool):
    code_journey(tenant, {"source": "pool", "pool": "Thank-you 10%"})
    order(api, 0)
    order(api, 1)

    assert send_due(DUE) == {"sent": 2, "": 0}
    assert mail.outbox == []  # the code step sends nothing itself
    assert send_due(THEN) == {"sent": 2, "": 0}

    codes = {m.to[0]: m.body for m in mail.outbox}
    assert sorted(codes) == ["c0@example.com", "c1@example.com"]
    given = sorted(c for body in codes.values() for c in ("THANKS-A", "THANKS-B") if c in body)
    assert given == ["THANKS-A", "THANKS-B"]  # one each, never the same
    assert set(RewardCode.objects.for_tenant(tenant).values_list("issued_for", flat=True)) == {
        f"journey-delivery:{d.pk}" for d in Delivery.objects.for_tenant(tenant).filter(step__position=1)}
    # Loyalty's own redemptions no longer see the codes the journey gave away.
    assert not RewardCode.objects.for_tenant(tenant).filter(issued_for="", redemption__isnull=True).exists()


def test_an_empty_pool_skips_the_step_with_its_reason_and_the_journey_goes_on(api, tenant, pool):
    journey = code_journey(tenant, {"source": "pool", "pool": "Thank-you 10%"})
    for n in range(3):
        order(api, n)

    assert send_due(DUE) == {"sent": 2, "skipped": 1, "": 0}
    skipped = Delivery.objects.for_tenant(tenant).get(step__position=1, state="skipped")
    assert skipped.reason == "discount code: the pool of 'Thank-you 10%' is empty; upload more codes to its reward"
    [explained] = customer_journeys_explain(tenant=tenant, customer=skipped.customer, journey=journey)
    assert explained.enrollments[0].steps[0].reason == skipped.reason
    assert explained.enrollments[0].steps[0].summary == f"Step 1 skipped: {skipped.reason}"
    given = Delivery.objects.for_tenant(tenant).filter(step__position=1, state="sent").select_related("customer").first()
    [explained] = customer_journeys_explain(tenant=tenant, customer=given.customer, journey=journey)
    assert explained.enrollments[0].steps[0].summary.startswith(f"Step 1 gave {given.reason} 2026-11-24 10:00")
    assert given.reason in ("discount code THANKS-A (pool)", "discount code THANKS-B (pool)")
    assert not EnrollmentVariable.objects.for_tenant(tenant).filter(enrollment=skipped.enrollment).exists()
    assert send_due(THEN) == {"sent": 3, "": 0}
    to_skipped = next(m for m in mail.outbox if m.to == [skipped.customer.email])
    assert "your code: none" in to_skipped.body


def test_a_code_from_the_stores_webhook_is_asked_once_by_key_and_retried_while_it_is_down(api, tenant, settings):
    settings.JOURNEY_WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    secret = webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    with Receiver(answer=lambda n: 503 if n == 1 else 200, reply=b'{"code": "APP-777"}') as receiver:
        code_journey(tenant, {"source": "webhook", "url": receiver.url})
        order(api)
        assert send_due(DUE) == {"pending": 1, "": 0}
        step = Delivery.objects.for_tenant(tenant).get(step__position=1)
        assert step.reason == "retrying: discount code webhook: HTTP 503"
        assert send_due(step.due_at) == {"sent": 1, "": 0}
    assert [r.status for r in receiver.requests] == [503, 200]
    assert len({r.key for r in receiver.requests}) == 1
    assert receiver.requests[0].payload["type"] == "journey.discount_code_requested"
    assert signature_valid(receiver.requests[1].body, receiver.requests[1].signature, secret.encode(),
                           now=step.due_at.timestamp())
    assert send_due(THEN + dt.timedelta(minutes=5)) == {"sent": 1, "": 0}
    assert "your code: APP-777" in mail.outbox[0].body


@pytest.mark.parametrize(("config", "fields"), [
    ({"source": "pool"}, {"steps.0.config.pool": [
        "is required when source is 'pool': the name of a reward with uploaded codes"]}),
    ({"source": "webhook"}, {"steps.0.config.url": [
        'is required when source is \'webhook\': the address that answers {"code": "…"}']}),
    ({"source": "pool", "pool": "Nope"}, {"steps.0.config.pool": [
        "'Nope' is not a loyalty reward with a pool of codes; the store's pools: 'Thank-you 10%'"]}),
])
def test_a_discount_steps_mistakes_are_400s_naming_the_field(api, tenant, pool, config, fields):
    body = {"name": "Codes", "trigger": "order_paid", "steps": [
        {"position": 1, "kind": "discount_code", "config": config},
        {"position": 2, "template": {"subject": "Gift", "body": "<p>{{ discount_code }}</p>"}}]}
    response = api.post("/api/v1/journeys", body)
    assert response.status_code == 400, response.content
    assert response.json()["fields"] == fields
    assert not Step.objects.for_tenant(tenant).exists()


@pytest.fixture
def mia(tenant):
    user = get_user_model().objects.create_user(username="mia", email="mia@acme.test", first_name="Mia",
                                                last_name="Kovač", password="x" * 20)
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.MARKETER)
    return user


def test_a_signed_check_in_comes_from_the_team_member_and_replies_go_to_them(api, tenant, mia):
    body = {"name": "Check-in", "trigger": "order_paid", "status": "active",
            "steps": [{"position": 1, "kind": "check_in", "wait": "P1D", "config": {"signer": "Mia@Acme.test"},
                       "template": {"subject": "How is it going, {{ first_name }}?",
                                    "body": "<p>Just checking in. — {{ signer.name }}</p>"}}]}
    created = api.post("/api/v1/journeys", body)
    assert created.status_code == 201, created.content
    assert Step.objects.for_tenant(tenant).get().config == {"signer": "mia@acme.test"}
    order(api)
    assert send_due(DUE) == {"sent": 1, "": 0}
    [message] = mail.outbox
    assert message.from_email.startswith("Mia Kovač at Acme Coffee <")
    assert message.reply_to == ["mia@acme.test"]
    assert "Just checking in. — Mia Kovač" in message.body
    assert "Mia Kovač" in message.alternatives[0][0]  # signed in the layout too


def test_a_check_in_signer_must_be_on_the_team(api, tenant, mia):
    body = {"name": "Check-in", "trigger": "order_paid", "steps": [
        {"position": 1, "kind": "check_in", "config": {"signer": "someone@else.test"},
         "template": {"subject": "Hi", "body": "<p>Hi</p>"}}]}
    response = api.post("/api/v1/journeys", body)
    assert response.status_code == 400
    assert response.json()["fields"] == {"steps.0.config.signer": [
        "'someone@else.test' is not a member of this store's team: invite them first, or pick a member"]}
    body["steps"][0]["config"] = {}
    assert api.post("/api/v1/journeys", body).json()["fields"] == {"steps.0.config.signer": ["is required"]}


def test_a_community_invitation_links_to_the_community_with_campaign_tags(api, tenant):
    body = {"name": "Join us", "trigger": "order_paid", "status": "active", "steps": [
        {"position": 1, "kind": "community_invite", "wait": "P1D", "config": {"url": "https://forum.acme.test/join?x=1"},
         "template": {"subject": "Join the community", "body": '<p><a href="{{ community_url }}">Join</a></p>'}}]}
    created = api.post("/api/v1/journeys", body)
    assert created.status_code == 201, created.content
    journey_id = created.json()["id"]
    order(api)
    assert send_due(DUE) == {"sent": 1, "": 0}
    html = mail.outbox[0].alternatives[0][0]
    assert (f'href="https://forum.acme.test/join?x=1&amp;utm_source=lifecycle&amp;utm_medium=email&amp;'
            f'utm_campaign=journey-{journey_id}&amp;utm_content=step-1"') in html
    exported = api.get(f"/api/v1/journeys/{journey_id}").json()
    assert exported["steps"][0]["config"] == {"url": "https://forum.acme.test/join?x=1"}
    bad = json.loads(json.dumps(body) .replace("https://forum.acme.test/join?x=1", "forum"))
    bad["name"] = "Other"
    assert api.post("/api/v1/journeys", bad).json()["fields"] == {"steps.0.config.url": [
        "must be a full http(s) address, such as https://example.com/hooks/lifecycle"]}
    assert Customer.objects.for_tenant(tenant).count() == 1
