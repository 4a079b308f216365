"""The builder offers the webhook, discount-code, check-in and community steps: each saved with the settings an
import would write, each mistake refused beside its field with the import's words, the webhook's calls shown
under it."""

import html

import pytest
from django.contrib.auth import get_user_model

from journeys.models import Journey, Step, WebhookCall
from journeys.webhooks import webhook_call_attempt, webhook_secret_rotate
from lifecycle import clock
from lifecycle.models import Membership
from loyalty.models import Reward
from tests.journeys.helpers import make_journey
from tests.journeys.test_webhook_step import DUE, order, send_due, webhook_journey
from tests.journeys.webhook_server import Receiver
from tests.loyalty.helpers import program, reward

from .test_journey_builder import rows, step_post, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft(tenant):
    return make_journey(tenant, name="After delivery", trigger=Journey.Trigger.ORDER_DELIVERED,
                        status=Journey.Status.DRAFT, steps=(("P1D", "Setup tips"), ("P6D", "Check-in")))


def save(client, step, **fields):
    return client.post(url("journey_step", journey_id=step.journey_id, step_id=step.pk), step_post(step, **fields))


def test_each_new_kind_is_offered_and_saved_as_an_import_would_write_it(as_marketer, tenant, draft):
    reward(tenant, program(tenant), name="Thank-you 10%", code_source=Reward.CodeSource.POOL)
    mia = get_user_model().objects.create_user(username="mia", email="Mia@Acme.test", first_name="Mia")
    Membership.objects.create(user=mia, tenant=tenant, role=Membership.Role.MARKETER)
    first, second = Step.objects.for_tenant(tenant).filter(journey=draft).order_by("position")
    page = as_marketer.get(url("journey", journey_id=draft.pk) + f"?step={first.pk}").content.decode()
    for value in ("webhook", "discount_code", "check_in", "community_invite"):
        assert f'<option value="{value}"' in page
    assert '<option value="Thank-you 10%">Thank-you 10%</option>' in page
    assert '<option value="mia@acme.test">Mia &lt;Mia@acme.test&gt;</option>' in page  # Django lowers the domain

    assert save(as_marketer, first, kind="webhook", hook_url="https://app.acme.test/hooks",
                hook_data='{"sms_template": "thanks"}').status_code == 302
    first.refresh_from_db()
    assert (first.kind, first.config, first.template_id) == (
        "webhook", {"url": "https://app.acme.test/hooks", "data": {"sms_template": "thanks"}}, None)

    assert save(as_marketer, first, kind="discount_code", code_source="pool", code_pool="Thank-you 10%",
                hook_url="").status_code == 302
    first.refresh_from_db()
    assert (first.kind, first.config) == ("discount_code", {"source": "pool", "pool": "Thank-you 10%"})

    assert save(as_marketer, second, kind="check_in", signer="mia@acme.test").status_code == 302
    second.refresh_from_db()
    assert (second.kind, second.config) == ("check_in", {"signer": "mia@acme.test"})
    assert second.template_id is not None  # an email: it keeps its text

    assert save(as_marketer, second, kind="community_invite", hook_url="https://forum.acme.test").status_code == 302
    second.refresh_from_db()
    assert (second.kind, second.config) == ("community_invite", {"url": "https://forum.acme.test"})


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"kind": "webhook", "hook_url": ""}, "hook_url", "is required"),
    ({"kind": "webhook", "hook_url": "app.acme.test"}, "hook_url",
     "must be a full http(s) address, such as https://example.com/hooks/lifecycle"),
    ({"kind": "webhook", "hook_url": "https://a.test", "hook_data": "[1, 2]"}, "hook_data",
     'must be a JSON object, such as {"sms_template": "thanks"}'),
    ({"kind": "webhook", "hook_url": "https://a.test", "hook_data": "{oops"}, "hook_data", "is not JSON"),
    ({"kind": "discount_code", "code_source": "pool", "code_pool": ""}, "code_pool",
     "is required when source is 'pool'"),
    ({"kind": "discount_code", "code_source": "webhook", "hook_url": ""}, "hook_url",
     "is required when source is 'webhook'"),
    ({"kind": "check_in", "signer": ""}, "signer", "is required"),
    ({"kind": "community_invite", "hook_url": "ftp://forum"}, "hook_url", "must be a full http(s) address"),
])
def test_a_bad_new_step_is_refused_beside_its_field_and_nothing_changes(as_marketer, tenant, draft, overrides, field,
                                                                        message):
    step = Step.objects.for_tenant(tenant).get(journey=draft, position=1)
    before = rows(tenant)
    response = save(as_marketer, step, **overrides)
    assert response.status_code == 400
    assert message in response.context["step_form"].errors[field][0]
    assert message in html.unescape(response.content.decode())
    assert rows(tenant) == before


def test_the_activation_check_names_what_the_store_lacks(tenant, draft):
    from journeys.builder_checks import journey_problems

    first, second = Step.objects.for_tenant(tenant).filter(journey=draft).order_by("position")
    Step.objects.for_tenant(tenant).filter(pk=first.pk).update(kind="webhook", template=None,
                                                               config={"url": "https://app.acme.test/hooks"})
    Step.objects.for_tenant(tenant).filter(pk=second.pk).update(kind="check_in", config={"signer": "nobody@x.test"})
    messages = [(p.position, p.message) for p in journey_problems(draft)]
    assert (1, "Calls to the store's webhook are signed: make the store's webhook secret first "
               "(Settings → Outbound webhooks).") in messages
    assert (2, "'nobody@x.test' is not a member of this store's team: invite them first, or pick a member.") in messages
    webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    assert [p.position for p in journey_problems(draft)] == [2]


def test_a_webhook_steps_calls_and_attempts_show_under_it(api, tenant, as_viewer, settings):
    settings.JOURNEY_WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    webhook_secret_rotate(tenant=tenant, by="owner@acme.test")
    with Receiver(answer=lambda n: 500) as receiver:
        journey = webhook_journey(tenant, receiver.url)
        order(api)
        send_due()
        call = WebhookCall.objects.for_tenant(tenant).get()
        with clock.frozen(DUE):
            webhook_call_attempt(call_id=call.pk)
    step = Step.objects.for_tenant(tenant).get(journey=journey, position=1)
    page = as_viewer.get(url("journey", journey_id=journey.pk) + f"?step={step.pk}").content.decode()
    assert 'id="step-webhook-calls"' in page
    assert f"<code>{call.idempotency_key}</code> → c0: pending (HTTP 500)" in page
    assert "HTTP 500 ·" in page and "down for maintenance" in page
    other = Step.objects.for_tenant(tenant).get(journey=journey, position=2)
    assert 'id="step-webhook-calls"' not in as_viewer.get(
        url("journey", journey_id=journey.pk) + f"?step={other.pk}").content.decode()
