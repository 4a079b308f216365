"""The referral-invite journey step: an email with the advocate's link and share buttons."""

import datetime as dt

import pytest
from django.core import mail

from journeys.models import Delivery, EmailTemplate, Journey, Step
from lifecycle import clock
from lifecycle.models import Customer
from referrals.models import Invite, ReferralCode
from tests.journeys.helpers import process_events
from tests.journeys.test_engine import send_due

from .helpers import T0, make_program, post_order

pytestmark = pytest.mark.django_db
BODY = ('<p>Hi {{ first_name }}, give {{ referral_offer }}: <a href="{{ referral_url }}">your link</a> '
        '<a href="{{ share.whatsapp }}">WhatsApp</a> <a href="{{ share.x }}">X</a> '
        '<a href="{{ share.facebook }}">Facebook</a> <a href="{{ share.email }}">Email</a></p>')


def invite_journey(tenant) -> Journey:
    from journeys.durations import parse_duration

    journey = Journey.objects.for_tenant(tenant).create(tenant=tenant, name="Invite", trigger=Journey.Trigger.ORDER_PAID,
                                                        status=Journey.Status.ACTIVE)
    template = EmailTemplate.objects.for_tenant(tenant).create(tenant=tenant, name="Invite", subject="Share the love",
                                                               body=BODY, signature="Mia")
    Step.objects.for_tenant(tenant).create(tenant=tenant, journey=journey, position=1, wait=parse_duration("P1D"),
                                           kind=Step.Kind.REFERRAL_INVITE, template=template)
    return journey


def paid(api):
    with clock.frozen(T0):
        post_order(api, external_id="A-1", customer={"external_id": "adv-1", "email": "ada@example.com",
                                                     "first_name": "Ada", "marketing_consent": True})
        process_events()


def test_invite_email_carries_the_link_and_share_buttons(api, tenant):
    make_program(tenant, friend_offer_value="15")
    invite_journey(tenant)
    paid(api)

    assert send_due(T0 + dt.timedelta(days=1)) == ["sent"]
    code = ReferralCode.objects.for_tenant(tenant).get()
    assert code.code.startswith("ADA-") and code.customer.external_id == "adv-1"
    html = mail.outbox[-1].alternatives[0][0]
    link = f"http://127.0.0.1:8000/r/acme/{code.code}"
    assert f'href="{link}"' in html
    assert "15% off your first order" in html
    assert "https://wa.me/?text=" in html and "https://twitter.com/intent/tweet?" in html
    assert "https://www.facebook.com/sharer/sharer.php?u=http%3A%2F%2F127.0.0.1%3A8000%2Fr%2Facme%2F" in html
    assert link in mail.outbox[-1].body  # the text part too
    delivery = Delivery.objects.for_tenant(tenant).get()
    assert list(Invite.objects.for_tenant(tenant).values_list("delivery_id", "customer__external_id")) == [
        (delivery.pk, "adv-1")]


def test_without_an_active_program_the_step_is_skipped_with_the_reason(api, tenant):
    invite_journey(tenant)
    paid(api)

    assert send_due(T0 + dt.timedelta(days=1)) == ["skipped"]
    assert Delivery.objects.for_tenant(tenant).get().reason == "the store has no active referral program"
    assert mail.outbox == [] and not ReferralCode.objects.for_tenant(tenant).exists()


def test_journey_templates_may_name_the_referral_placeholders(api, tenant):
    from journeys.template_checks import KIND_CONTEXT, _shape, template_problems
    from referrals.rendering import referral_invite_context
    from referrals.services import referral_code_ensure

    assert template_problems(BODY, kind="referral_invite") == []
    assert template_problems("{{ referral_url }}", kind="email") != []  # only the invite step has it
    make_program(tenant)
    paid(api)
    code = referral_code_ensure(tenant=tenant, customer=Customer.objects.for_tenant(tenant).get(external_id="adv-1"))
    context = referral_invite_context(tenant=tenant, customer_id=code.customer_id)
    assert _shape(context) == KIND_CONTEXT["referral_invite"]  # the validator and the email stay in step
