"""Journeys and loyalty: points in email content and conditions, loyalty events as triggers, an award step."""

import datetime as dt

import pytest
from django.core import mail

from journeys.durations import parse_duration
from journeys.models import Delivery, EmailTemplate, Journey, Step
from lifecycle import clock
from lifecycle.models import Event
from loyalty.models import LedgerEntry
from tests.journeys.helpers import make_journey, process_events
from tests.journeys.test_engine import send_due

from .helpers import NOW, paid_order, program, reward, sums, tier

pytestmark = pytest.mark.django_db


def _step(tenant, journey, position, kind, config=None, subject=""):
    template = None
    if subject:
        template = EmailTemplate.objects.for_tenant(tenant).create(
            tenant=tenant, name=f"{journey.name} {position}", subject=subject,
            body='<p>You have {{ points_balance }} points ({{ tier }}). <a href="{{ loyalty_url }}">See them</a></p>')
    return Step.objects.for_tenant(tenant).create(tenant=tenant, journey=journey, position=position,
                                                  wait=parse_duration("PT0S"), kind=kind, template=template,
                                                  config=config or {})


def test_award_step_awards_once_per_delivery_and_the_next_email_shows_points_and_tier(api, tenant):
    prog = program(tenant, pending_days=0)
    tier(tenant, prog, "Silver", "100")
    journey = Journey.objects.for_tenant(tenant).create(tenant=tenant, name="Thanks", status=Journey.Status.ACTIVE,
                                                        trigger=Journey.Trigger.ORDER_PAID)
    _step(tenant, journey, 1, Step.Kind.AWARD_POINTS, {"points": 25, "reason": "Thank-you bonus"})
    _step(tenant, journey, 2, Step.Kind.EMAIL, subject="Your points")
    with clock.frozen(NOW):
        paid_order(api, total="80.00")
    assert send_due(NOW + dt.timedelta(minutes=1)) == ["sent"]
    assert sums(tenant) == (105, 0, 0)
    award = LedgerEntry.objects.for_tenant(tenant).get(source__startswith="delivery:")
    assert (award.amount, award.reason) == (25, "Thank-you bonus")
    # The award delivery is sent once: running the step again (a redelivered task) awards nothing.
    from journeys.dispatch import _award_points

    first = Delivery.objects.for_tenant(tenant).get(step__position=1)
    Delivery.objects.for_tenant(tenant).filter(pk=first.pk).update(state=Delivery.State.SENDING)
    _award_points(Delivery.objects.for_tenant(tenant).select_related("customer__tenant", "journey", "step").get(
        pk=first.pk), NOW)
    assert sums(tenant) == (105, 0, 0)

    with clock.frozen(NOW + dt.timedelta(minutes=2)):
        process_events()
    assert send_due(NOW + dt.timedelta(minutes=2)) == ["sent"]
    html = mail.outbox[-1].alternatives[0][0]
    assert "You have 105 points (Silver)" in html
    assert 'href="http://127.0.0.1:8000/l/' in html


def test_tier_reached_and_reward_unlocked_are_journey_triggers_and_conditions_read_points(api, tenant):
    prog = program(tenant, pending_days=0)
    tier(tenant, prog, "Gold", "100")
    reward(tenant, prog, cost=50)
    welcome = make_journey(tenant, trigger=Journey.Trigger.CUSTOM, custom_event_type="loyalty.tier_reached",
                           name="Welcome to Gold", steps=(("PT0S", "Welcome to Gold"),))
    unlocked = make_journey(tenant, trigger=Journey.Trigger.CUSTOM, custom_event_type="loyalty.reward_unlocked",
                            name="Reward unlocked", steps=(("PT0S", "A reward is yours"),))
    with clock.frozen(NOW):
        paid_order(api, total="120.00")
        process_events()
    assert Event.objects.for_tenant(tenant).get(type="loyalty.tier_reached").data["tier"] == "Gold"
    assert Event.objects.for_tenant(tenant).get(type="loyalty.reward_unlocked").data["cost"] == 50
    assert welcome.enrollments.count() == 1 and unlocked.enrollments.count() == 1

    from journeys.enrollment import condition_holds

    delivery = Delivery.objects.for_tenant(tenant).filter(journey=welcome).select_related("customer",
                                                                                           "enrollment").get()
    assert condition_holds({"field": "points_balance", "op": ">=", "value": 120}, delivery)
    assert not condition_holds({"field": "points_balance", "op": ">", "value": 120}, delivery)
    assert condition_holds({"field": "tier", "op": "==", "value": "Gold"}, delivery)
