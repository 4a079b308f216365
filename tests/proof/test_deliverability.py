"""Deliverability guardrails (issue 8, item 8): complaint and bounce rates over the last 24 h warn a
store's owner, then pause its marketing email until someone resumes it."""

import datetime as dt
import logging

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from config.celery import app as beat_app
from journeys.deliverability import (
    MIN_SENT_FOR_BOUNCE_RATE,
    MIN_SENT_FOR_COMPLAINT_RATE,
    deliverability_check,
    deliverability_rates,
    deliverability_status,
    marketing_resume,
)
from journeys.engagement import esp_event_record
from journeys.models import Delivery
from journeys.tasks import check_deliverability
from lifecycle import clock
from lifecycle.models import Event, Tenant
from tests.journeys.helpers import at, make_journey, process_events
from tests.journeys.test_engine import paid_order, send_due

from .helpers import sent_ledger, tracking

pytestmark = pytest.mark.django_db

NOON = at("2026-11-23T09:00:00+00:00")  # 10:00 in Berlin: outside quiet hours
EARLIER = NOON - dt.timedelta(hours=3)


def complain(deliveries, n: int, when: dt.datetime = EARLIER) -> None:
    for delivery in deliveries[:n]:
        assert esp_event_record(esp_name="Postmark", event=tracking(delivery, "complained", at=when)) == "recorded"


def bounce(deliveries, n: int, *, hard: bool = True, when: dt.datetime = EARLIER) -> None:
    for delivery in deliveries[:n]:
        event = tracking(delivery, "bounced", at=when, reject_reason="bounced",
                         esp_type="HardBounce" if hard else "SoftBounce")
        assert esp_event_record(esp_name="Postmark", event=event) == "recorded"


def guardrail_events(tenant) -> list[str]:
    return list(Event.objects.for_tenant(tenant).filter(type__startswith="deliverability.")
                .order_by("pk").values_list("type", flat=True))


def check(tenant, now=NOON) -> str:
    outcome = deliverability_check(tenant=tenant, now=now)
    tenant.refresh_from_db()
    return outcome


def test_complaints_over_a_tenth_of_a_percent_warn_the_owner_without_pausing(tenant, caplog):
    ledger = sent_ledger(tenant, MIN_SENT_FOR_COMPLAINT_RATE, sent_at=EARLIER)
    complain(ledger, 1)
    assert check(tenant) == "ok"  # 1 of 1,000 is 0.1%: not *over* it
    assert guardrail_events(tenant) == [] and tenant.deliverability_alert_at is None

    complain(ledger[1:], 1)
    with caplog.at_level(logging.WARNING, logger="journeys.deliverability"):
        assert check(tenant) == "alert"

    assert tenant.deliverability_alert == "spam complaints at 0.20% of 1000 emails (warning above 0.10%)"
    assert tenant.deliverability_alert_at == NOON and tenant.marketing_paused_at is None
    assert guardrail_events(tenant) == ["deliverability.alert"]
    event = Event.objects.for_tenant(tenant).get(type="deliverability.alert")
    assert (event.data["sent"], event.data["complaints"], event.data["complaint_rate"]) == (1000, 2, "0.20%")
    assert [r.getMessage() for r in caplog.records] == [
        f"deliverability alert: acme (tenant {tenant.pk}): spam complaints at 0.20% of 1000 emails "
        "(warning above 0.10%)"]
    assert deliverability_status(tenant) == {"state": "alert", "reason": tenant.deliverability_alert,
                                             "alert_at": NOON, "paused_at": None}
    # Checked again: still one alert, not one per beat run.
    assert check(tenant, NOON + dt.timedelta(minutes=15)) == "alert"
    assert guardrail_events(tenant) == ["deliverability.alert"]


def test_complaints_over_three_tenths_of_a_percent_pause_marketing_but_not_order_updates(api, tenant):
    marketing = make_journey(tenant, name="Tips", steps=[("PT1H", "Tips")])
    transactional = make_journey(tenant, name="Receipt", steps=[("PT1H", "Your receipt")],
                                 message_class="transactional")
    with clock.frozen(NOON):
        paid_order(api, external_id="O1", customer={"external_id": "c1", "email": "ada@example.com"})
        process_events()
    ledger = sent_ledger(tenant, MIN_SENT_FOR_COMPLAINT_RATE, sent_at=EARLIER)
    complain(ledger, 4)

    assert check(tenant) == "paused"

    assert tenant.marketing_paused_at == NOON
    assert tenant.marketing_paused_reason == "spam complaints at 0.40% of 1000 emails (pause above 0.30%)"
    assert guardrail_events(tenant) == ["deliverability.alert", "deliverability.paused"]
    assert deliverability_status(tenant)["state"] == "paused"
    assert sorted(send_due(NOON + dt.timedelta(hours=1))) == ["deferred", "sent"]
    held = Delivery.objects.for_tenant(tenant).get(journey=marketing)
    assert (held.state, held.reason) == ("deferred", f"tenant_paused: {tenant.marketing_paused_reason}")
    assert held.due_at == NOON + dt.timedelta(hours=2)
    assert Delivery.objects.for_tenant(tenant).get(journey=transactional).state == "sent"
    assert [m.subject for m in mail.outbox] == ["Your receipt"]
    # Held again every hour, never sent, never dropped, while the pause lasts; beat finds it still paused.
    assert send_due(NOON + dt.timedelta(hours=2)) == ["deferred"]
    assert check(tenant, NOON + dt.timedelta(hours=2)) == "still paused"
    assert guardrail_events(tenant) == ["deliverability.alert", "deliverability.paused"]
    # A day later nothing marketing was sent, so the rates look fine: that is no reason to resume.
    assert check(tenant, NOON + dt.timedelta(days=2)) == "still paused"
    assert len(mail.outbox) == 1


def test_bounce_rate_warns_over_five_percent_and_pauses_over_ten(tenant, other_tenant):
    ledger = sent_ledger(tenant, MIN_SENT_FOR_BOUNCE_RATE, sent_at=EARLIER)
    bounce(ledger, 5)
    bounce(ledger[5:], 20, hard=False)  # full mailboxes: not the store's list, not counted
    assert deliverability_rates(tenant=tenant, now=NOON).bounces == 5
    assert check(tenant) == "ok"  # 5% is not over 5%

    bounce(ledger[25:], 1)
    assert check(tenant) == "alert"
    assert tenant.deliverability_alert == "hard bounces at 6.00% of 100 emails (warning above 5.00%)"

    bounce(ledger[26:], 5)
    assert check(tenant) == "paused"
    assert tenant.marketing_paused_reason == "hard bounces at 11.00% of 100 emails (pause above 10.00%)"
    # Another store's numbers are its own.
    other_ledger = sent_ledger(other_tenant, MIN_SENT_FOR_BOUNCE_RATE, sent_at=EARLIER)
    bounce(other_ledger, 2)
    assert check(other_tenant) == "ok"
    assert other_tenant.deliverability_alert_at is None and other_tenant.marketing_paused_at is None


def test_a_small_or_old_sample_judges_nothing(tenant):
    few = sent_ledger(tenant, 3, sent_at=EARLIER)
    bounce(few, 1)
    complain(few[1:], 1)
    rates = deliverability_rates(tenant=tenant, now=NOON)
    assert (rates.sent, rates.bounces, rates.complaints) == (3, 1, 1)
    assert (rates.bounce_rate, rates.complaint_rate) == (None, None)  # 1 bounce of 3 emails pauses nothing
    assert check(tenant) == "ok"

    # 100 emails sent, and 30 bounces - two days ago: out of the 24 h window.
    old = sent_ledger(tenant, 100, sent_at=NOON - dt.timedelta(days=2))
    bounce(old, 30, when=NOON - dt.timedelta(days=2))
    assert deliverability_rates(tenant=tenant, now=NOON).sent == 3
    assert check(tenant) == "ok"
    assert guardrail_events(tenant) == [] and tenant.marketing_paused_at is None


def test_an_alert_clears_once_the_rates_are_back_under(tenant):
    ledger = sent_ledger(tenant, MIN_SENT_FOR_BOUNCE_RATE, sent_at=EARLIER)
    bounce(ledger, 7)
    assert check(tenant) == "alert"
    sent_ledger(tenant, 100, sent_at=NOON)  # 7 of 200: 3.5%
    assert check(tenant, NOON + dt.timedelta(minutes=15)) == "ok"
    assert tenant.deliverability_alert == "" and tenant.deliverability_alert_at is None
    assert guardrail_events(tenant) == ["deliverability.alert", "deliverability.recovered"]


def test_resume_marketing_command_lifts_the_pause_and_rates_count_afresh(api, tenant):
    make_journey(tenant, name="Tips", steps=[("PT1H", "Tips")])
    with clock.frozen(NOON):
        paid_order(api, external_id="O1", customer={"external_id": "c1", "email": "ada@example.com"})
        process_events()
    ledger = sent_ledger(tenant, MIN_SENT_FOR_BOUNCE_RATE, sent_at=EARLIER)
    bounce(ledger, 15)
    assert check(tenant) == "paused"
    assert send_due(NOON + dt.timedelta(hours=1)) == ["deferred"]

    with pytest.raises(CommandError, match="no store with slug 'nope'"):
        call_command("resume_marketing", "nope")
    with clock.frozen(NOON + dt.timedelta(hours=1, minutes=30)):
        call_command("resume_marketing", "acme", "--by", "owner@acme.test")
    tenant.refresh_from_db()
    assert (tenant.marketing_paused_at, tenant.deliverability_alert_at) == (None, None)
    assert tenant.marketing_resumed_at == NOON + dt.timedelta(hours=1, minutes=30)
    resumed = Event.objects.for_tenant(tenant).get(type="deliverability.resumed")
    assert resumed.data["by"] == "owner@acme.test" and resumed.data["reason"].startswith("hard bounces at 15.00%")
    with pytest.raises(CommandError, match="not paused"):
        call_command("resume_marketing", "acme")

    # The same 15 old bounces no longer count: the store is judged on what it sends from now on.
    assert check(tenant, NOON + dt.timedelta(hours=2)) == "ok"
    assert send_due(NOON + dt.timedelta(hours=2)) == ["sent"]
    assert [m.subject for m in mail.outbox] == ["Tips"]
    assert marketing_resume(tenant=tenant) is False
    assert guardrail_events(tenant) == ["deliverability.alert", "deliverability.paused", "deliverability.resumed"]


def test_beat_checks_every_store(tenant, other_tenant):
    assert beat_app.conf.beat_schedule["check-deliverability"] == {
        "task": "journeys.check_deliverability", "schedule": 900.0, "options": {"expires": 900.0}}
    bounce(sent_ledger(tenant, MIN_SENT_FOR_BOUNCE_RATE, sent_at=EARLIER), 11)
    with clock.frozen(NOON):
        outcome = check_deliverability.apply().get()
    assert outcome == {"paused": 1, "ok": 1}
    assert Tenant.objects.get(pk=tenant.pk).marketing_paused_at == NOON
    assert Tenant.objects.get(pk=other_tenant.pk).marketing_paused_at is None


def test_the_sent_count_asks_per_journey_in_the_shape_of_the_journey_sent_index(tenant):
    """The check runs every 15 minutes for every store: its count of a day's sends must be one range of
    delivery_journey_sent_idx (tenant, journey, sent_at) per journey, not a read of every delivery the
    store ever had. (The plan itself is the planner's choice on a test's few rows; the shape is ours.)"""
    from journeys.deliverability import _sent_by_journey

    journeys = {make_journey(tenant, name="One").pk, make_journey(tenant, name="Two").pk}
    now = clock.now()
    queries = [str(sends.filter(sent_at__gte=now - dt.timedelta(days=1), sent_at__lte=now).query)
               for sends in _sent_by_journey(tenant)]
    assert len(queries) == 2
    asked = set()
    for sql in queries:
        asked |= {pk for pk in journeys if f'"journey_id" = {pk} ' in sql or sql.endswith(f'"journey_id" = {pk}')}
        assert f'"tenant_id" = {tenant.pk}' in sql and '"sent_at" >=' in sql and '"sent_at" <=' in sql, sql
    assert asked == journeys
