"""A/B tests that decide: exact arm figures and intervals on a constructed test, the stopping rule's
verdict (a winner, or "not yet, N more customers needed"), promotion (by the service, by beat) and
the engine sending everyone down the promoted arm."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail

from journeys import builder
from journeys.abtests import (
    AUTO_PROMOTER,
    AbTestError,
    abtest_configure,
    abtest_promote,
    content_report,
    split_report,
    template_version_add,
)
from journeys.io import journey_export
from journeys.models import AbTest, Delivery, EmailTemplate, Journey, Step
from journeys.tasks import promote_winners
from lifecycle import clock
from lifecycle.errors import NotFound
from lifecycle.models import Event
from lifecycle.stats import Arm, ab_decide

from .ab_data import ASSIGNED, NOW, ab_store
from .helpers import process_events
from .test_engine import NOON, paid_order
from .test_one_arm import emails_by_customer, orders_for, rows_by_customer, send_everything

pytestmark = pytest.mark.django_db

SETTINGS = {"goal": "order", "window": dt.timedelta(days=7), "rule": "significance", "sample_size": 1000,
            "min_sample": 100, "confidence": 95, "auto_promote": False}


def close(value: float, expected: float, tolerance: float = 1e-4) -> bool:
    return abs(value - expected) <= tolerance


def test_each_arm_reports_its_funnel_conversion_and_revenue_with_intervals(tenant):
    journey, steps = ab_store(tenant)
    AbTest.objects.for_tenant(tenant).create(tenant=tenant, journey=journey, step=steps[1])  # the defaults
    report = split_report(tenant, steps[1], NOW)
    a, b = report.arms
    assert (a.label, a.step.pk, b.label, b.step.pk) == ("A", steps[2].pk, "B", steps[3].pk)
    assert (a.enrolled, a.sent, a.opened, a.clicked, a.converted, a.maturing) == (400, 400, 200, 80, 40, 0)
    assert (b.enrolled, b.sent, b.opened, b.clicked, b.converted, b.maturing) == (400, 400, 220, 100, 64, 5)
    # Only the orders inside the 7-day window count: the 99.00 orders of day 12 do not.
    assert (a.revenue, b.revenue) == (Decimal("1200.00"), Decimal("2240.00"))
    assert (a.revenue_per_customer, b.revenue_per_customer) == (Decimal("3.00"), Decimal("5.60"))
    # Wilson per arm, Newcombe for B − A, Welch for revenue per customer: the holdout lift's methods.
    assert close(a.rate_low, 0.074299) and close(a.rate_high, 0.133311)
    assert close(b.rate_low, 0.127333) and close(b.rate_high, 0.199136)
    assert a.versus_a is None
    assert close(b.versus_a.estimate, 0.06) and close(b.versus_a.low, 0.013344) and close(b.versus_a.high, 0.106820)
    rev = b.revenue_versus_a
    assert close(rev.estimate, 2.60) and close(rev.low, 1.059553) and close(rev.high, 4.140447)
    # CUPED on pre-period orders and spend: the same arms, so about the same estimate, and an interval.
    assert b.versus_a_cuped.contains(b.versus_a_cuped.estimate) and abs(b.versus_a_cuped.estimate - 0.06) < 0.01
    assert report.decision.reached and report.decision.winner == "B" and report.winner is b
    assert report.promoted is None


def test_the_stopping_rule_says_how_many_more_customers_it_needs(tenant):
    journey, steps = ab_store(tenant)
    abtest_configure(tenant=tenant, journey_id=journey.pk, step_id=steps[1].pk,
                     values={**SETTINGS, "rule": "sample", "sample_size": 500}, by="mia")
    report = split_report(tenant, steps[1], NOW)
    assert (report.decision.reached, report.decision.winner, report.decision.more) == (False, None, 200)
    assert report.decision.reason == "Not yet: 200 more customers needed (500 in each arm, the smallest has 400)."

    abtest_configure(tenant=tenant, journey_id=journey.pk, step_id=steps[1].pk,
                     values={**SETTINGS, "rule": "sample", "sample_size": 400}, by="mia")
    assert split_report(tenant, steps[1], NOW).decision.winner == "B"

    # At 99% the interval of B − A is −0.16 to +12.2 points: 22 more per arm lift its low end above 0.
    abtest_configure(tenant=tenant, journey_id=journey.pk, step_id=steps[1].pk,
                     values={**SETTINGS, "confidence": 99}, by="mia")
    report = split_report(tenant, steps[1], NOW)
    assert (report.decision.reached, report.decision.winner, report.decision.more) == (False, None, 44)
    assert report.decision.reason == "Not yet: about 44 more customers needed to tell the arms apart at 99% confidence."

    # Goal "click": 80 and 100 of 400 clicked, not yet told apart at 95%.
    abtest_configure(tenant=tenant, journey_id=journey.pk, step_id=steps[1].pk,
                     values={**SETTINGS, "goal": "click"}, by="mia")
    report = split_report(tenant, steps[1], NOW)
    assert [arm.converted for arm in report.arms] == [80, 100]
    assert (report.decision.winner, report.decision.more) == (None, 274)

    # Before anyone's window has closed, nobody counts.
    report = split_report(tenant, steps[1], ASSIGNED + dt.timedelta(days=6))
    assert [arm.enrolled for arm in report.arms] == [0, 0] and [arm.maturing for arm in report.arms] == [400, 405]
    assert report.decision.more == 200  # 100 in each arm first


def test_a_sample_that_ends_without_a_difference_names_no_winner():
    decision = ab_decide([Arm("A", 40, 400), Arm("B", 50, 400)], rule="sample", sample_size=400)
    assert (decision.reached, decision.winner, decision.more) == (True, None, 0)
    same = ab_decide([Arm("A", 40, 400), Arm("B", 40, 400)], rule="significance", min_sample=100)
    assert (same.reached, same.winner, same.more) == (False, None, None)


def test_promoting_changes_the_test_row_and_audits_it_and_nothing_else(tenant):
    journey, steps = ab_store(tenant)
    other, other_steps = ab_store(tenant, name="Another test")
    before_steps = list(Step.objects.for_tenant(tenant).order_by("pk").values_list("pk", "position", "config"))
    before_deliveries = list(Delivery.objects.for_tenant(tenant).order_by("pk").values_list("pk", "state", "step_id"))
    journey_row = Journey.objects.for_tenant(tenant).filter(pk=journey.pk).values().get()

    with clock.frozen(NOW):
        test = abtest_promote(tenant=tenant, journey_id=journey.pk, step_id=steps[1].pk, arm=str(steps[3].pk),
                              by="mia@example.com")
    assert (test.winner_id, test.promoted_at, test.promoted_by) == (steps[3].pk, NOW, "mia@example.com")
    assert list(AbTest.objects.for_tenant(tenant).values_list("step_id", "winner_id")) == [(steps[1].pk, steps[3].pk)]
    assert list(Step.objects.for_tenant(tenant).order_by("pk").values_list("pk", "position", "config")) == before_steps
    assert list(Delivery.objects.for_tenant(tenant).order_by("pk")
                .values_list("pk", "state", "step_id")) == before_deliveries
    assert Journey.objects.for_tenant(tenant).filter(pk=journey.pk).values().get() == journey_row
    audit = list(Event.objects.for_tenant(tenant).filter(type__startswith="store.").values_list("type", "data"))
    assert audit == [("store.journey_test_promoted", {"journey": journey.name, "journey_id": journey.pk, "step": 1,
                                                      "arm": "B", "arm_step": 3, "by": "mia@example.com"})]
    assert split_report(tenant, steps[1], NOW).promoted.label == "B"
    assert split_report(tenant, other_steps[1], NOW).promoted is None

    # Again: nothing changes, nothing more is logged.
    abtest_promote(tenant=tenant, journey_id=journey.pk, step_id=steps[1].pk, arm=str(steps[3].pk), by="bo")
    assert AbTest.objects.for_tenant(tenant).get().promoted_by == "mia@example.com"
    assert Event.objects.for_tenant(tenant).filter(type__startswith="store.").count() == 1

    # Not an arm of this split (the join step, another journey's arm): refused, nothing written.
    for wrong in (steps[4].pk, other_steps[2].pk):
        with pytest.raises(AbTestError) as refused:
            abtest_promote(tenant=tenant, journey_id=journey.pk, step_id=steps[1].pk, arm=str(wrong), by="bo")
        assert refused.value.code == "journeys.test_no_such_arm"
    with pytest.raises(NotFound):  # a split of another journey
        abtest_promote(tenant=tenant, journey_id=journey.pk, step_id=other_steps[1].pk, arm=str(other_steps[2].pk),
                       by="bo")
    assert AbTest.objects.for_tenant(tenant).get().winner_id == steps[3].pk
    assert Event.objects.for_tenant(tenant).filter(type__startswith="store.").count() == 1


def test_settings_are_checked_before_anything_is_written(tenant):
    journey, steps = ab_store(tenant)
    with pytest.raises(AbTestError) as refused:
        abtest_configure(tenant=tenant, journey_id=journey.pk, step_id=steps[1].pk,
                         values={**SETTINGS, "window": dt.timedelta(days=400), "sample_size": 3, "confidence": 80},
                         by="mia")
    assert set(refused.value.fields) == {"window", "sample_size", "confidence"}
    assert not AbTest.objects.for_tenant(tenant).exists()
    assert not Event.objects.for_tenant(tenant).filter(type__startswith="store.").exists()
    abtest_configure(tenant=tenant, journey_id=journey.pk, step_id=steps[1].pk,
                     values={**SETTINGS, "auto_promote": True}, by="mia")
    event = Event.objects.for_tenant(tenant).get(type="store.journey_test_changed")
    assert event.data["changes"] == {"auto_promote": [False, True]}


def test_beat_promotes_a_winner_once_the_rule_is_met_and_only_then(tenant, other_tenant):
    journey, steps = ab_store(tenant)
    abtest_configure(tenant=tenant, journey_id=journey.pk, step_id=steps[1].pk,
                     values={**SETTINGS, "auto_promote": True, "rule": "sample", "sample_size": 500}, by="mia")
    with clock.frozen(NOW):
        assert promote_winners() == 0  # 200 more customers needed
    assert AbTest.objects.for_tenant(tenant).get().promoted_at is None
    abtest_configure(tenant=tenant, journey_id=journey.pk, step_id=steps[1].pk,
                     values={**SETTINGS, "auto_promote": True}, by="mia")
    with clock.frozen(NOW):
        assert promote_winners() == 1
        assert promote_winners() == 0  # decided: not read again
    test = AbTest.objects.for_tenant(tenant).get()
    assert (test.winner_id, test.promoted_by, test.promoted_at) == (steps[3].pk, AUTO_PROMOTER, NOW)
    assert Event.objects.for_tenant(tenant).filter(type="store.journey_test_promoted",
                                                   data__by=AUTO_PROMOTER).count() == 1
    assert not AbTest.all_tenants.filter(tenant=other_tenant).exists()


def test_after_promotion_every_new_customer_gets_the_winning_arm(api, tenant):
    journey = builder.journey_create(tenant=tenant, name="Welcome test", trigger=Journey.Trigger.ORDER_PAID)
    builder.journey_settings_update(tenant=tenant, journey_id=journey.pk, values={"message_class": "transactional"})
    split = builder.step_add(tenant=tenant, journey_id=journey.pk, kind="ab_split", wait=dt.timedelta(0))
    for subject in ("Variant A", "Variant B", "Both arms go on here"):
        step = builder.step_add(tenant=tenant, journey_id=journey.pk, kind="email", wait=dt.timedelta(0))
        builder.step_update(tenant=tenant, journey_id=journey.pk, step_id=step.pk, values={},
                            content={"subject": subject, "body": "<p>Hi {{ first_name }}</p>", "preheader": "",
                                     "signature": ""})
    builder.journey_set_status(tenant=tenant, journey_id=journey.pk, action="activate")
    steps = {s.position: s for s in Step.objects.for_tenant(tenant).filter(journey=journey)}
    # The starter email is step 1, the split step 2, its arms steps 3 (A) and 4 (B), and they meet at 5.
    assert split.position == 2 and split.config["variants"] == [{"step": 3, "weight": 1}, {"step": 4, "weight": 1}]
    abtest_promote(tenant=tenant, journey_id=journey.pk, step_id=split.pk, arm=str(steps[4].pk), by="mia")

    orders_for(api, 20)
    send_everything(NOON + dt.timedelta(days=1))

    rows = rows_by_customer(tenant, journey)
    assert len(rows) == 20
    assert all(found == [(1, "sent"), (2, "sent"), (4, "sent"), (5, "sent")] for found in rows.values()), rows
    subjects = emails_by_customer()
    assert all(found[1:] == ["Variant B", "Both arms go on here"] for found in subjects.values()), subjects
    assert len(mail.outbox) == 60


def test_a_content_test_sends_each_customer_one_version_counts_them_and_promotes_one(api, tenant):
    journey = builder.journey_create(tenant=tenant, name="Subject test", trigger=Journey.Trigger.ORDER_PAID)
    builder.journey_settings_update(tenant=tenant, journey_id=journey.pk, values={"message_class": "transactional"})
    step = Step.objects.for_tenant(tenant).get(journey=journey)
    builder.step_update(tenant=tenant, journey_id=journey.pk, step_id=step.pk, values={},
                        content={"subject": "Version A", "body": "<p>Hi {{ first_name }}</p>", "preheader": "",
                                 "signature": ""})
    builder.journey_set_status(tenant=tenant, journey_id=journey.pk, action="activate")
    with clock.frozen(NOON - dt.timedelta(days=1)):
        assert template_version_add(tenant=tenant, journey_id=journey.pk, step_id=step.pk,
                                    content={"subject": "Version B"}, by="mia") == "B"
    step.refresh_from_db()

    orders_for(api, 40)
    send_everything(NOON + dt.timedelta(days=1))
    subjects = [message.subject for message in mail.outbox]
    assert len(subjects) == 40 and set(subjects) == {"Version A", "Version B"}
    by_customer = {d.customer_id: d for d in Delivery.objects.for_tenant(tenant).filter(step=step)}
    # Each customer got the version the seeded pick gives them; the report counts exactly those.
    assert {step.template.version_drawn(step.pk, cid) for cid in by_customer} == {"A", "B"}
    report = content_report(tenant, step, NOON + dt.timedelta(days=30))
    assert [arm.label for arm in report.arms] == ["A", "B"]
    assert [arm.enrolled for arm in report.arms] == [subjects.count("Version A"), subjects.count("Version B")]

    with clock.frozen(NOON + dt.timedelta(days=1, hours=12)):
        abtest_promote(tenant=tenant, journey_id=journey.pk, step_id=step.pk, arm="B", by="mia")
    assert EmailTemplate.objects.for_tenant(tenant).get(pk=step.template_id).promoted_version == "B"
    mail.outbox.clear()
    with clock.frozen(NOON + dt.timedelta(days=2)):
        for i in range(40, 60):
            paid_order(api, external_id=f"O{i}", customer={"external_id": f"c{i}", "email": f"c{i}@example.com",
                                                            "marketing_consent": True})
        process_events()
    send_everything(NOON + dt.timedelta(days=3))
    assert [message.subject for message in mail.outbox] == ["Version B"] * 20
    # Sends after the promotion are not part of the test.
    again = content_report(tenant, step, NOON + dt.timedelta(days=30))
    assert [arm.enrolled for arm in again.arms] == [arm.enrolled for arm in report.arms]
    assert again.promoted.label == "B"


def test_a_version_with_a_broken_placeholder_is_refused_and_nothing_is_written(tenant):
    journey, steps = ab_store(tenant)
    with pytest.raises(AbTestError) as refused:
        template_version_add(tenant=tenant, journey_id=journey.pk, step_id=steps[2].pk,
                             content={"subject": "Hi {{ nosuch }}"}, by="mia")
    assert refused.value.code == "journeys.content_problems" and "subject" in refused.value.fields
    assert EmailTemplate.objects.for_tenant(tenant).get(pk=steps[2].template_id).versions == []
    assert not AbTest.objects.for_tenant(tenant).exists()


def test_an_emails_versions_travel_with_the_journeys_json_and_its_copy(tenant):
    journey, steps = ab_store(tenant)
    template_version_add(tenant=tenant, journey_id=journey.pk, step_id=steps[4].pk,
                         content={"subject": "Thanks, {{ first_name }}", "body": "<p>B</p>"}, by="mia")
    exported = journey_export(Journey.objects.for_tenant(tenant).get(pk=journey.pk))
    assert exported["steps"][3]["template"]["versions"] == [{"subject": "Thanks, {{ first_name }}", "body": "<p>B</p>"}]
    assert exported["steps"][1]["template"]["versions"] == []
    copy = builder.journey_duplicate(tenant=tenant, journey_id=journey.pk, by="mia")
    template = Step.objects.for_tenant(tenant).select_related("template").get(journey=copy, position=4).template
    assert template.versions == [{"subject": "Thanks, {{ first_name }}", "body": "<p>B</p>"}]
    assert template.pk != steps[4].template_id
