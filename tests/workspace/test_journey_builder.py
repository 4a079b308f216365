"""The journey builder's actions, each with its exact outcome in the database and nothing else
changed: create, install from the library, settings, steps (add, edit, move, remove), the
checks before activation, activate / pause / archive, duplicate, export and import."""

import datetime as dt
import html
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from journeys.builder_checks import journey_problems
from journeys.io import journey_export, library_install, library_keys
from journeys.models import Delivery, EmailTemplate, Enrollment, Journey, Step
from lifecycle.models import Customer
from tests.journeys.helpers import make_journey

pytestmark = pytest.mark.django_db


def url(name: str, **kwargs) -> str:
    return reverse(f"workspace:{name}", kwargs={"tenant": "acme", **kwargs})


def rows(tenant) -> dict:
    """Every journey row of the store, to compare before and after."""
    return {model.__name__: list(model.objects.for_tenant(tenant).order_by("pk").values())
            for model in (Journey, Step, EmailTemplate, Enrollment, Delivery)}


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def follow_messages(client, response) -> list[str]:
    assert response.status_code == 302, response.content[:500]
    return messages_of(client.get(response["Location"]))


def steps_of(journey) -> list[tuple]:
    return list(Step.objects.for_tenant(journey.tenant_id).filter(journey=journey).order_by("position")
                .values_list("position", "name", "kind", "wait", "template__subject"))


def step_post(step: Step, **overrides) -> dict:
    """The step form as the page would post it, unchanged unless told."""
    from workspace.builder_forms import StepForm

    data = {key: ("" if value is None else value) for key, value in StepForm.initial_for(step).items()}
    data.update(overrides)
    return data


@pytest.fixture
def draft(tenant):
    return make_journey(tenant, name="After delivery", trigger=Journey.Trigger.ORDER_DELIVERED,
                        status=Journey.Status.DRAFT, steps=(("P1D", "Setup tips"), ("P6D", "Check-in"),
                                                            ("P7D", "Review request")))


# --- the list ------------------------------------------------------------------------


def test_the_list_shows_status_trigger_in_words_steps_and_capped_counts(as_marketer, tenant, draft, a_customer,
                                                                        monkeypatch):
    draft.filters = {"min_total": "50.00", "skus": ["BEANS-1KG"]}
    draft.entry_policy = Journey.EntryPolicy.ONCE_PER_CUSTOMER
    draft.save()
    first = Step.objects.for_tenant(tenant).get(journey=draft, position=1)
    for i in range(3):
        enrollment = Enrollment.objects.for_tenant(tenant).create(
            tenant=tenant, journey=draft, customer=a_customer, state=Enrollment.State.COMPLETED,
            enrolled_at=dt.datetime(2025, 1, 1 + i, tzinfo=dt.UTC))
        Delivery.objects.for_tenant(tenant).create(
            tenant=tenant, enrollment=enrollment, step=first, journey=draft, customer=a_customer,
            message_class="marketing", state=Delivery.State.SENT if i < 2 else Delivery.State.SKIPPED,
            sent_at=dt.datetime(2025, 1, 2 + i, tzinfo=dt.UTC) if i < 2 else None)
    Enrollment.objects.for_tenant(tenant).create(tenant=tenant, journey=draft, customer=a_customer,
                                                 state=Enrollment.State.REJECTED, enrolled_at=dt.datetime.now(dt.UTC))

    response = as_marketer.get(url("journeys"))
    body = response.content.decode()
    assert response.status_code == 200
    row = body[body.index(f'data-journey="{draft.pk}"'):]
    row = row[:row.index("</tr>")]
    assert "After delivery" in row and 'class="badge draft"' in row
    assert ("When an order is delivered, for orders of €50.00 or more, containing SKU BEANS-1KG, once per customer."
            in row)
    cells = [c.split(">", 1)[1].split("<", 1)[0] for c in row.split('<td class="num"')[1:]]
    assert cells == ["3", "3", "2"]  # steps, enrolled (the rejected one is not), sent

    monkeypatch.setattr("workspace.journeys.COUNT_CAP", 2)
    body = as_marketer.get(url("journeys")).content.decode()
    row = body[body.index(f'data-journey="{draft.pk}"'):]
    assert [c.split(">", 1)[1].split("<", 1)[0] for c in row.split('<td class="num"')[1:4]] == ["3", "2+", "2"]


def test_new_journey_is_a_draft_with_one_starter_email(as_marketer, tenant):
    before = rows(tenant)
    response = as_marketer.post(url("journey_new"), {"name": "  Welcome  ", "trigger": "first_order"})
    journey = Journey.objects.for_tenant(tenant).get()
    assert response["Location"] == url("journey", journey_id=journey.pk)
    assert (journey.name, journey.status, journey.trigger) == ("Welcome", "draft", "first_order")
    assert steps_of(journey) == [(1, "First email", "email", dt.timedelta(days=1), "A note from {{ store.name }}")]
    assert EmailTemplate.objects.for_tenant(tenant).count() == 1
    assert before["Journey"] == []

    again = as_marketer.post(url("journey_new"), {"name": "Welcome", "trigger": "order_paid"})
    assert "A journey named “Welcome” already exists: choose another name." in follow_messages(as_marketer, again)
    assert Journey.objects.for_tenant(tenant).count() == 1


# --- the library ---------------------------------------------------------------------


def test_the_gallery_describes_every_library_journey_in_words(as_marketer):
    body = as_marketer.get(url("journey_library")).content.decode()
    for key in library_keys():
        assert f'id="lib-{key}"' in body
    review = body[body.index('id="lib-review-request"'):]
    review = review[:review.index("</li>\n  \n  <li") if "</li>\n  \n  <li" in review else None]
    assert "Fourteen days after delivery" in review
    assert "14 days after delivery</strong>: asks for feedback: “How are you finding" in review
    assert 'name="key" value="review-request"' in review


def test_install_once_then_installing_again_points_at_the_installed_one(as_marketer, tenant):
    response = as_marketer.post(url("journey_library_install"), {"key": "review-request"})
    journey = Journey.objects.for_tenant(tenant).get()
    step = Step.objects.for_tenant(tenant).get(journey=journey)
    assert response["Location"] == url("journey", journey_id=journey.pk) + f"?step={step.pk}"
    assert (journey.name, journey.status, journey.library_key) == ("Review request", "draft", "review-request")
    before = rows(tenant)

    again = as_marketer.post(url("journey_library_install"), {"key": "review-request"})
    assert again["Location"] == url("journey", journey_id=journey.pk)
    assert "Not installed again: already installed as 'Review request'." in follow_messages(as_marketer, again)
    assert rows(tenant) == before
    body = as_marketer.get(url("journey_library")).content.decode()
    assert "installed · Draft" in body and "Open “Review request”" in body

    unknown = as_marketer.post(url("journey_library_install"), {"key": "../settings"})
    assert "There is no such journey in the library." in follow_messages(as_marketer, unknown)
    assert rows(tenant) == before


# --- trigger, filters and rules ---------------------------------------------------------


def settings_post(journey, **overrides) -> dict:
    from workspace.builder_forms import SettingsForm

    data = {}
    for key, value in SettingsForm.initial_for(journey).items():
        if isinstance(value, bool):
            if value:
                data[f"journey-{key}"] = "on"
        elif isinstance(value, list):
            data[f"journey-{key}"] = value
        else:
            data[f"journey-{key}"] = "" if value is None else value
    data.update({f"journey-{k}": v for k, v in overrides.items()})
    return {k: v for k, v in data.items() if v is not False}


def test_settings_change_the_trigger_and_filters_and_read_back_in_words(as_marketer, tenant, draft):
    response = as_marketer.post(url("journey_settings", journey_id=draft.pk), settings_post(
        draft, trigger="order_paid", min_total="50", skus="BEANS-1KG, FIL-500", entry_policy="once_per_customer",
        exit_events=["order.refunded"], exit_custom="support.escalated", holdout_percent="10"))
    assert response.status_code == 302, messages_of(response)
    draft.refresh_from_db()
    assert draft.trigger == "order_paid"
    assert draft.filters == {"min_total": "50.00", "skus": ["BEANS-1KG", "FIL-500"]}
    assert draft.entry_policy == "once_per_customer"
    assert draft.exit_events == ["order.refunded", "support.escalated"]
    assert draft.holdout_percent == 10
    page = as_marketer.get(url("journey", journey_id=draft.pk)).content.decode()
    assert ("When an order is paid, for orders of €50.00 or more, containing SKU BEANS-1KG or SKU FIL-500, once per "
            "customer. It stops when the order is refunded or “support.escalated” happens.") in page


@pytest.mark.parametrize(("overrides", "message"), [
    ({"min_total": "80", "max_total": "50"}, "must not be below min_total (80.00)"),
    ({"trigger": "custom", "custom_event_type": "order.refund"}, "'order.refund' is not an event we record"),
    ({"trigger": "custom", "custom_event_type": ""}, "name the event that starts the journey"),
    ({"entry_policy": "cooldown", "cooldown_days": ""}, "is needed when customers may enter again after a while"),
    ({"exit_custom": "Not An Event"}, "is not an event type"),
    ({"locales": "german"}, "is not a locale"),
])
def test_bad_settings_are_refused_beside_the_field_and_nothing_changes(as_marketer, tenant, draft, overrides,
                                                                      message):
    before = rows(tenant)
    response = as_marketer.post(url("journey_settings", journey_id=draft.pk), settings_post(draft, **overrides))
    assert response.status_code == 400
    assert message in html.unescape(response.content.decode())
    assert rows(tenant) == before


def test_a_live_journey_takes_new_words_but_not_a_new_trigger(as_marketer, tenant, draft):
    Journey.objects.for_tenant(tenant).filter(pk=draft.pk).update(status="active")
    draft.refresh_from_db()
    response = as_marketer.post(url("journey_settings", journey_id=draft.pk),
                                settings_post(draft, name="After delivery (v2)", description="Now with tips",
                                              trigger="order_paid", min_total="10"))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.name, draft.description, draft.trigger, draft.filters) == (
        "After delivery (v2)", "Now with tips", "order_delivered", {})

    # A service call that tries anyway is refused whole.
    from journeys.builder import BuilderError, journey_settings_update

    before = rows(tenant)
    with pytest.raises(BuilderError, match="pause it"):
        journey_settings_update(tenant=tenant, journey_id=draft.pk, values={"name": "X", "trigger": "order_paid"})
    assert rows(tenant) == before


# --- steps ---------------------------------------------------------------------------


def test_add_move_and_remove_steps(as_marketer, tenant, draft):
    ids = list(Step.objects.for_tenant(tenant).filter(journey=draft).order_by("position").values_list("pk", flat=True))
    response = as_marketer.post(url("journey_step_add", journey_id=draft.pk),
                                {"add-kind": "award_points", "add-wait_amount": "3", "add-wait_unit": "hours"})
    added = Step.objects.for_tenant(tenant).get(journey=draft, position=4)
    assert response["Location"] == url("journey", journey_id=draft.pk) + f"?step={added.pk}#editor"
    assert (added.kind, added.wait, added.template_id) == ("award_points", dt.timedelta(hours=3), None)

    as_marketer.post(url("journey_step_move", journey_id=draft.pk, step_id=ids[2]), {"direction": "up"})
    order = list(Step.objects.for_tenant(tenant).filter(journey=draft).order_by("position").values_list("pk", flat=True))
    assert order == [ids[0], ids[2], ids[1], added.pk]  # the rows move: each keeps its email and history
    as_marketer.post(url("journey_step_move", journey_id=draft.pk, step_id=ids[0]), {"direction": "up"})
    assert list(Step.objects.for_tenant(tenant).filter(journey=draft).order_by("position")
                .values_list("pk", flat=True)) == order  # the first step cannot go higher

    template_id = Step.objects.for_tenant(tenant).get(pk=ids[2]).template_id
    as_marketer.post(url("journey_step_remove", journey_id=draft.pk, step_id=ids[2]))
    assert steps_of(draft) == [(1, "", "email", dt.timedelta(days=1), "Setup tips"),
                               (2, "", "email", dt.timedelta(days=6), "Check-in"),
                               (3, "", "award_points", dt.timedelta(hours=3), None)]
    assert not EmailTemplate.objects.for_tenant(tenant).filter(pk=template_id).exists()


def test_moving_and_removing_keep_branches_pointing_at_the_same_steps(tenant, draft):
    from journeys.builder import step_move, step_remove

    steps = list(Step.objects.for_tenant(tenant).filter(journey=draft).order_by("position"))
    Step.objects.for_tenant(tenant).filter(pk=steps[0].pk).update(
        kind="condition", template=None, config={"field": "order_count", "op": ">=", "value": 2, "then": 3, "else": 2})
    step_move(tenant=tenant, journey_id=draft.pk, step_id=steps[2].pk, direction="up")
    assert Step.objects.for_tenant(tenant).get(pk=steps[0].pk).config == {
        "field": "order_count", "op": ">=", "value": 2, "then": 2, "else": 3}
    step_remove(tenant=tenant, journey_id=draft.pk, step_id=steps[1].pk)
    assert Step.objects.for_tenant(tenant).get(pk=steps[0].pk).config == {
        "field": "order_count", "op": ">=", "value": 2, "then": 2, "else": None}


def test_a_step_with_send_history_is_not_removed(as_marketer, tenant, draft, a_customer):
    step = Step.objects.for_tenant(tenant).get(journey=draft, position=2)
    enrollment = Enrollment.objects.for_tenant(tenant).create(tenant=tenant, journey=draft, customer=a_customer,
                                                              state="completed", enrolled_at=dt.datetime.now(dt.UTC))
    Delivery.objects.for_tenant(tenant).create(tenant=tenant, enrollment=enrollment, step=step, journey=draft,
                                               customer=a_customer, message_class="marketing", state="sent")
    before = rows(tenant)
    response = as_marketer.post(url("journey_step_remove", journey_id=draft.pk, step_id=step.pk))
    assert ("Step 2 has 1 deliveries on record; removing it would delete that history. Duplicate the journey to "
            "build a version without it.") in follow_messages(as_marketer, response)
    assert rows(tenant) == before


@pytest.mark.parametrize("status", ["active", "archived"])
def test_structure_is_locked_on_live_and_archived_journeys(as_marketer, tenant, draft, status):
    Journey.objects.for_tenant(tenant).filter(pk=draft.pk).update(status=status)
    step = Step.objects.for_tenant(tenant).get(journey=draft, position=2)
    before = rows(tenant)
    as_marketer.post(url("journey_step_add", journey_id=draft.pk),
                     {"add-kind": "email", "add-wait_amount": "1", "add-wait_unit": "days"})
    as_marketer.post(url("journey_step_move", journey_id=draft.pk, step_id=step.pk), {"direction": "up"})
    response = as_marketer.post(url("journey_step_remove", journey_id=draft.pk, step_id=step.pk))
    expected = "pause it" if status == "active" else "archived"
    assert any(expected in m for m in follow_messages(as_marketer, response))
    assert rows(tenant) == before


def test_structure_is_locked_while_customers_are_mid_journey(as_marketer, tenant, draft, a_customer, monkeypatch):
    Journey.objects.for_tenant(tenant).filter(pk=draft.pk).update(status="paused")
    Enrollment.objects.for_tenant(tenant).create(tenant=tenant, journey=draft, customer=a_customer, state="active",
                                                 enrolled_at=dt.datetime.now(dt.UTC))
    step = Step.objects.for_tenant(tenant).get(journey=draft, position=2)
    before = rows(tenant)
    response = as_marketer.post(url("journey_step_move", journey_id=draft.pk, step_id=step.pk), {"direction": "up"})
    assert any("1 customer is mid-journey" in m for m in follow_messages(as_marketer, response))
    assert rows(tenant) == before
    page = as_marketer.get(url("journey", journey_id=draft.pk)).content.decode()
    assert "1 customer is mid-journey" in page and 'id="add-step"' not in page

    # Counted up to a cap, so a journey with a million people in it costs the page no more.
    monkeypatch.setattr("journeys.builder.PEOPLE_CAP", 1)
    Enrollment.objects.for_tenant(tenant).create(tenant=tenant, journey=draft, customer=a_customer, state="active",
                                                 enrolled_at=dt.datetime.now(dt.UTC))
    page = as_marketer.get(url("journey", journey_id=draft.pk)).content.decode()
    assert "More than 1 customers are mid-journey" in page


def test_edit_a_step_timing_name_and_email(as_marketer, tenant, draft):
    step = Step.objects.for_tenant(tenant).select_related("template").get(journey=draft, position=3)
    others = [s for s in rows(tenant)["Step"] if s["id"] != step.pk]
    response = as_marketer.post(url("journey_step", journey_id=draft.pk, step_id=step.pk), step_post(
        step, name="Review request", timing="delivered_at", wait_amount="14", wait_unit="days", give_up_days="20",
        subject="How is {{ order.item_titles }}?", preheader="Two weeks in", body="<p>Hi {{ first_name }}</p>",
        signature="Lena"))
    assert response.status_code == 302, response.content.decode()[:2000]
    step.refresh_from_db()
    step.template.refresh_from_db()
    assert (step.name, step.wait_kind, step.anchor, step.wait, step.wait_max) == (
        "Review request", "after_anchor", "delivered_at", dt.timedelta(days=14), dt.timedelta(days=20))
    assert (step.template.subject, step.template.preheader, step.template.body, step.template.signature) == (
        "How is {{ order.item_titles }}?", "Two weeks in", "<p>Hi {{ first_name }}</p>", "Lena")
    assert [s for s in rows(tenant)["Step"] if s["id"] != step.pk] == others

    response = as_marketer.post(url("journey_step", journey_id=draft.pk, step_id=step.pk),
                                step_post(step, timing="event", wait_event="support.resolved", wait_amount="5"))
    step.refresh_from_db()
    assert (step.wait_kind, step.wait_event, step.wait_max, step.wait, step.anchor) == (
        "until_event", "support.resolved", dt.timedelta(days=5), dt.timedelta(0), "")


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"timing": "event", "wait_event": ""}, "wait_event", "name the event to wait for"),
    ({"timing": "event", "wait_event": "order.shipped"}, "wait_event", "'order.shipped' is not an event we record"),
    ({"wait_amount": "-1"}, "wait_amount", "Ensure this value is greater than or equal to 0."),
    ({"wait_amount": "4000", "wait_unit": "days"}, "wait_amount", "is longer than 3650 days"),
    ({"kind": "condition", "cond_field": "order_count", "cond_value": "two"}, "cond_value", "must be a whole number"),
    ({"kind": "feedback_request", "survey": ""}, "survey", "choose which survey the email asks"),
    ({"kind": "ab_split", "variants": "2:50, three"}, "variants", "“three” is not step:weight"),
])
def test_a_bad_step_is_refused_beside_its_field_and_nothing_changes(as_marketer, tenant, draft, overrides, field,
                                                                    message):
    step = Step.objects.for_tenant(tenant).get(journey=draft, position=1)
    before = rows(tenant)
    response = as_marketer.post(url("journey_step", journey_id=draft.pk, step_id=step.pk),
                                step_post(step, subject="Changed too", **overrides))
    assert response.status_code == 400
    assert message in response.context["step_form"].errors[field][0]
    assert message in html.unescape(response.content.decode())
    assert rows(tenant) == before


def test_turning_an_email_into_a_split_drops_its_email(as_marketer, tenant, draft):
    step = Step.objects.for_tenant(tenant).get(journey=draft, position=1)
    template_id = step.template_id
    response = as_marketer.post(url("journey_step", journey_id=draft.pk, step_id=step.pk), step_post(
        step, kind="condition", cond_field="order_count", cond_op=">=", cond_value="2", cond_then="3", cond_else=""))
    assert response.status_code == 302
    step.refresh_from_db()
    assert (step.kind, step.template_id, step.config) == (
        "condition", None, {"field": "order_count", "op": ">=", "value": 2, "then": 3, "else": "end"})
    assert not EmailTemplate.objects.for_tenant(tenant).filter(pk=template_id).exists()


def test_a_draft_keeps_a_broken_email_but_a_live_journey_refuses_one(as_marketer, tenant, draft):
    step = Step.objects.for_tenant(tenant).select_related("template").get(journey=draft, position=1)
    broken = "<p>{% if order %}no end</p>"
    response = as_marketer.post(url("journey_step", journey_id=draft.pk, step_id=step.pk), step_post(step, body=broken))
    assert response.status_code == 302
    assert EmailTemplate.objects.for_tenant(tenant).get(pk=step.template_id).body == broken

    Journey.objects.for_tenant(tenant).filter(pk=draft.pk).update(status="active")
    before = rows(tenant)
    response = as_marketer.post(url("journey_step", journey_id=draft.pk, step_id=step.pk),
                                step_post(step, body="<p>{{ first_name }</p>", subject=""))
    assert response.status_code == 400
    body = response.content.decode()
    assert "This journey is live, so its emails must be ready to send." in body
    assert "The subject is empty: write one." in body
    assert rows(tenant) == before

    response = as_marketer.post(url("journey_step", journey_id=draft.pk, step_id=step.pk),
                                step_post(step, subject="New words", body="<p>Hello {{ first_name }}</p>",
                                          timing="enrolled_at", wait_amount="9"))
    assert response.status_code == 302
    step.refresh_from_db()
    template = EmailTemplate.objects.for_tenant(tenant).get(pk=step.template_id)
    assert (template.subject, template.body) == ("New words", "<p>Hello {{ first_name }}</p>")
    assert (step.wait_kind, step.wait) == ("after_previous", dt.timedelta(days=1))  # structure ignored while live


# --- before activation ---------------------------------------------------------------


def test_activation_is_refused_with_every_problem_linked_to_its_step(as_marketer, tenant, draft):
    s1, s2, s3 = Step.objects.for_tenant(tenant).filter(journey=draft).order_by("position")
    EmailTemplate.objects.for_tenant(tenant).filter(pk=s1.template_id).update(
        subject="", body="<p>Hi</p>\n<p>{% if order %}Thanks</p>")
    Step.objects.for_tenant(tenant).filter(pk=s2.pk).update(
        kind="condition", template=None, config={"field": "order_count", "op": ">=", "value": 2, "then": 4})
    Step.objects.for_tenant(tenant).filter(pk=s3.pk).update(template=None)
    Step.objects.for_tenant(tenant).create(tenant=tenant, journey=draft, position=4, wait=dt.timedelta(days=400),
                                           kind="award_points", config={"points": 10})
    Step.objects.for_tenant(tenant).create(tenant=tenant, journey=draft, position=5, wait_kind="until_event",
                                           wait_event="order.shipped", wait_max=dt.timedelta(days=3),
                                           kind="award_points", config={"points": 10})
    before = rows(tenant)

    response = as_marketer.post(url("journey_status", journey_id=draft.pk), {"action": "activate"})
    assert response["Location"] == url("journey", journey_id=draft.pk) + "#problems"
    page = as_marketer.get(response["Location"])
    assert messages_of(page)[0].startswith("Not activated: ")
    problems = html.unescape(page.content.decode().split('id="problems"', 1)[1].split("</section>", 1)[0])
    expected = [
        (s1, "The subject is empty: write one."),
        (s1, "The body, line 2, is not a valid template: Unclosed tag on line 2: 'if'. Looking for one of: elif, "
             "else, endif."),
        (s3, "No step leads here: a split before it never goes to it, so it can never run."),
        (s3, "This step has no email yet: write a subject and a body."),
        (None, "This step can be due 407 days after the customer enters, past the journey's horizon of 365 days"),
        (None, "This step waits for an event that never comes ('order.shipped' is not an event we record"),
    ]
    for step, message in expected:
        assert message in problems, message
        if step is not None:
            assert f'<a href="?step={step.pk}#editor">Step {step.position}</a>' in problems
    assert rows(tenant) == before

    assert [p.message for p in journey_problems(draft) if p.position == 4] == [
        "This step can be due 407 days after the customer enters, past the journey's horizon of 365 days: "
        "shorten the waits."]


def test_placeholder_mistakes_and_empty_splits_are_caught(tenant, draft):
    s1, s2, s3 = Step.objects.for_tenant(tenant).filter(journey=draft).order_by("position")
    EmailTemplate.objects.for_tenant(tenant).filter(pk=s1.template_id).update(body="<p>Hi</p>\n\n<p>{{ frist_name }}</p>")
    Step.objects.for_tenant(tenant).filter(pk=s2.pk).update(kind="ab_split", template=None,
                                                            config={"variants": [{"step": 3, "weight": 1}]})
    messages = [(p.position, p.line, p.message) for p in journey_problems(draft)]
    assert (1, 3, "The body, line 3, {{ frist_name }} is not a placeholder; use first_name, customer, store, "
                  "unsubscribe_url, points_balance, tier, loyalty_url, discount_code or order") in messages
    assert any(position == 2 and "An A/B split needs at least two branches" in m for position, _, m in messages)


def test_activate_pause_archive(as_marketer, tenant, draft):
    other = make_journey(tenant, name="Other", status=Journey.Status.DRAFT)
    before_other = journey_export(other)
    for action, status in (("activate", "active"), ("pause", "paused"), ("activate", "active"),
                           ("archive", "archived")):
        response = as_marketer.post(url("journey_status", journey_id=draft.pk), {"action": action})
        assert response.status_code == 302
        draft.refresh_from_db()
        assert draft.status == status, action
    response = as_marketer.post(url("journey_status", journey_id=draft.pk), {"action": "activate"})
    assert "A journey that is archived cannot be activated." in follow_messages(as_marketer, response)
    draft.refresh_from_db()
    assert draft.status == "archived"
    assert journey_export(other) == before_other


def test_duplicate_is_a_draft_copy_with_its_own_emails(as_marketer, tenant, draft, a_customer):
    Journey.objects.for_tenant(tenant).filter(pk=draft.pk).update(status="active", library_key="first-use-tips")
    Enrollment.objects.for_tenant(tenant).create(tenant=tenant, journey=draft, customer=a_customer, state="active",
                                                 enrolled_at=dt.datetime.now(dt.UTC))
    before = rows(tenant)
    response = as_marketer.post(url("journey_duplicate", journey_id=draft.pk))
    copy = Journey.objects.for_tenant(tenant).get(name="After delivery (copy)")
    assert response["Location"] == url("journey", journey_id=copy.pk)
    assert (copy.status, copy.library_key, copy.trigger) == ("draft", "", "order_delivered")
    assert steps_of(copy) == steps_of(draft)
    copy_templates = set(Step.objects.for_tenant(tenant).filter(journey=copy).values_list("template_id", flat=True))
    assert copy_templates.isdisjoint(
        set(Step.objects.for_tenant(tenant).filter(journey=draft).values_list("template_id", flat=True)))
    assert Enrollment.objects.for_tenant(tenant).filter(journey=copy).count() == 0
    after = rows(tenant)
    assert [r for r in after["Journey"] if r["id"] != copy.pk] == before["Journey"]
    assert [r for r in after["Step"] if r["journey_id"] != copy.pk] == before["Step"]
    as_marketer.post(url("journey_duplicate", journey_id=draft.pk))
    assert Journey.objects.for_tenant(tenant).filter(name="After delivery (copy 2)").exists()


# --- export and import ---------------------------------------------------------------


def test_export_downloads_the_journey_as_import_json(as_marketer, draft):
    response = as_marketer.get(url("journey_export", journey_id=draft.pk))
    assert response["Content-Disposition"] == 'attachment; filename="after-delivery.json"'
    assert json.loads(response.content) == json.loads(json.dumps(journey_export(draft)))


def test_import_an_export_as_a_new_draft(as_marketer, tenant, draft):
    Journey.objects.for_tenant(tenant).filter(pk=draft.pk).update(status="active")
    data = journey_export(draft)
    data["name"] = "After delivery, imported"
    upload = SimpleUploadedFile("j.json", json.dumps(data).encode(), content_type="application/json")
    response = as_marketer.post(url("journey_import"), {"file": upload})
    imported = Journey.objects.for_tenant(tenant).get(name="After delivery, imported")
    assert response["Location"] == url("journey", journey_id=imported.pk)
    assert imported.status == "draft"  # whatever the file says: it goes live through the checks
    assert steps_of(imported) == steps_of(draft)
    assert list(Step.objects.for_tenant(tenant).filter(journey=imported).order_by("position")
                .values_list("template__name", flat=True)) == [
        "After delivery, imported · step 1", "After delivery, imported · step 2", "After delivery, imported · step 3"]


@pytest.mark.parametrize(("content", "message"), [
    (b"{not json", "This file is not JSON"),
    (b"[" * 100_000, "This file is not JSON we can read: The body's JSON is nested more than 32 levels deep."),
    (b'{"name": 1' + b"0" * 5000 + b"}", "numbers may have at most 40"),
    (json.dumps({"name": "X", "trigger": "order_paid", "steps": [{"position": 1, "template": {
        "subject": "Hi", "body": "{{ frist_name }}"}}]}).encode(),
     "steps.0.template.body: {{ frist_name }} is not a placeholder"),
    (json.dumps({"name": "X", "trigger": "order_shipped", "steps": []}).encode(), "trigger: Input should be"),
    (json.dumps({"name": "After delivery", "trigger": "order_paid", "steps": [{"position": 1, "template": {
        "subject": "Hi", "body": "Hi"}}]}).encode(), "A journey named “After delivery” already exists here."),
])
def test_import_refuses_bad_files_with_the_schema_messages(as_marketer, tenant, draft, content, message):
    before = rows(tenant)
    response = as_marketer.post(url("journey_import"), {"file": SimpleUploadedFile("j.json", content)})
    assert any(message in m for m in follow_messages(as_marketer, response)), message
    assert rows(tenant) == before


# --- roles ---------------------------------------------------------------------------


def test_a_viewer_sees_everything_read_only_and_every_write_is_403(as_viewer, tenant, draft, a_customer):
    library_install(tenant=tenant, keys=["review-request"])
    step = Step.objects.for_tenant(tenant).get(journey=draft, position=1)
    page = as_viewer.get(url("journey", journey_id=draft.pk) + f"?step={step.pk}").content.decode()
    assert "Setup tips" in page and 'id="preview-frame"' in page and 'id="step-readonly"' in page
    for control in ('id="step-form"', 'id="activate"', 'id="send-test"', 'id="add-step"', 'id="settings-form"',
                    'id="duplicate"', "Remove</button>"):
        assert control not in page, control
    listing = as_viewer.get(url("journeys")).content.decode()
    assert 'id="new-journey"' not in listing and "Duplicate</button>" not in listing
    assert 'name="key"' not in as_viewer.get(url("journey_library")).content.decode()

    before = rows(tenant)
    writes = [
        (url("journey_new"), {"name": "X", "trigger": "order_paid"}),
        (url("journey_library_install"), {"key": "win-back"}),
        (url("journey_import"), {}),
        (url("journey_settings", journey_id=draft.pk), settings_post(draft, name="X")),
        (url("journey_status", journey_id=draft.pk), {"action": "activate"}),
        (url("journey_duplicate", journey_id=draft.pk), {}),
        (url("journey_step_add", journey_id=draft.pk), {"add-kind": "email", "add-wait_amount": "1",
                                                        "add-wait_unit": "days"}),
        (url("journey_step", journey_id=draft.pk, step_id=step.pk), step_post(step, subject="X")),
        (url("journey_step_move", journey_id=draft.pk, step_id=step.pk), {"direction": "down"}),
        (url("journey_step_remove", journey_id=draft.pk, step_id=step.pk), {}),
        (url("journey_step_preview", journey_id=draft.pk, step_id=step.pk), {"subject": "X", "body": "Y"}),
        (url("journey_step_test", journey_id=draft.pk, step_id=step.pk), {"subject": "X", "body": "Y"}),
    ]
    for path, data in writes:
        assert as_viewer.post(path, data).status_code == 403, path
    assert rows(tenant) == before
    assert Customer.objects.for_tenant(tenant).count() == 1
