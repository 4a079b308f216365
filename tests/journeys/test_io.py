"""Journeys as code: validation with exact field paths, export/import round trips, update rules,
the API routes and the import/export commands."""

import copy
import datetime as dt
import json

import pydantic
import pytest
from django.core import mail
from django.core.management import ManagementUtility

from journeys import api as journeys_api
from journeys.definition import JourneyIn
from journeys.io import journey_export, journey_import
from journeys.models import Delivery, EmailTemplate, Enrollment, Journey, Step
from journeys.rendering import email_context
from journeys.template_checks import SAMPLE_CONTEXT
from lifecycle import clock
from lifecycle.api.errors import pydantic_fields
from tests.factories import order_payload

from .helpers import at, make_journey, process_events
from .test_engine import NOON, paid_order, send_due

pytestmark = pytest.mark.django_db

SUBJECT = "How is {{ order.item_titles }}, {{ first_name }}?"


def journey_json(**overrides):
    """A valid three-step journey: check-in, a condition, then one of two emails."""
    body = {
        "name": "Check-in",
        "trigger": "order_delivered",
        "exit_events": ["order.refunded", "order.placed"],
        "steps": [
            {"position": 1, "name": "Day 7", "wait_kind": "after_anchor", "anchor": "delivered_at", "wait": "P7D",
             "template": {"subject": SUBJECT, "body": "<p>Hi {{ first_name }}, how is it going?</p>",
                          "signature": "Mia, customer care"}},
            {"position": 2, "kind": "condition",
             "config": {"field": "order_count", "op": ">=", "value": 2, "then": 3, "else": 4}},
            {"position": 3, "wait": "P1D", "template": {"subject": "Thanks for coming back", "body": "<p>Thanks!</p>"}},
            {"position": 4, "wait": "P1D", "template": {"subject": "A tip", "body": "<p>Try this.</p>"}},
        ],
    }
    body.update(overrides)
    return body


def with_step(index, **fields):
    body = journey_json()
    body["steps"][index].update(fields)
    return body


def with_template(index, **fields):
    body = journey_json()
    body["steps"][index]["template"].update(fields)
    return body


def written(tenant) -> tuple[int, int, int]:
    return (Journey.objects.for_tenant(tenant).count(), Step.objects.for_tenant(tenant).count(),
            EmailTemplate.objects.for_tenant(tenant).count())


TRIGGERS = "'order_paid', 'first_order', 'repeat_order', 'order_delivered', 'order_refunded', " \
           "'feedback_negative', 'feedback_positive', 'custom', 'date', 'segment_entered' or 'support_contacted'"
ANCHORS = "'enrolled_at', 'placed_at', 'paid_at', 'fulfilled_at' or 'delivered_at'"

INVALID = {
    "unknown trigger": (journey_json(trigger="order_shipped"), {"trigger": [f"must be one of {TRIGGERS}"]}),
    "unknown kind": (with_step(1, kind="sms"), {"steps.1.kind": [
        "must be one of 'email', 'feedback_request', 'referral_invite', 'award_points', 'condition', 'ab_split', "
        "'webhook', 'discount_code', 'check_in' or 'community_invite'"]}),
    "a webhook step without its address": (with_step(2, kind="webhook", template=None), {"steps.2.config.url": [
        "is required"]}),
    "a loyalty invite step": (with_step(2, kind="loyalty_invite", template=None), {"steps.2.kind": [
        "'loyalty_invite' is not available yet: a loyalty invite step would be accepted and then do nothing. Use an "
        "email step, or leave it out"]}),
    "unknown anchor": (with_step(0, anchor="shipped_at"), {"steps.0.anchor": [f"must be one of {ANCHORS}"]}),
    "unknown entry policy": (journey_json(entry_policy="twice"), {"entry_policy": [
        "must be one of 'once_per_customer', 'once_per_order' or 'cooldown'"]}),
    "cooldown without its length": (journey_json(entry_policy="cooldown"), {"cooldown": [
        "is required when entry_policy is 'cooldown', such as P30D"]}),
    "unknown field": (journey_json(trigers="order_paid"), {"trigers": [
        "is not a field of this request; check its spelling"]}),
    "custom trigger without its event": (journey_json(trigger="custom"), {"custom_event_type": [
        "is required when trigger is 'custom': the event type that starts the journey, such as support.resolved"]}),
    "custom event on another trigger": (journey_json(custom_event_type="support.resolved"), {"custom_event_type": [
        "is only used when trigger is 'custom' (this journey's is 'order_delivered')"]}),
    "anchor wait without anchor": (with_step(0, anchor=""), {"steps.0.anchor": [
        f"is required when wait_kind is 'after_anchor': one of {ANCHORS}"]}),
    "anchor on another wait": (with_step(2, anchor="paid_at"), {"steps.2.anchor": [
        "is only used when wait_kind is 'after_anchor' (this step's is 'after_previous')"]}),
    "until_event without wait_event": (with_step(2, wait_kind="until_event", wait_max="P7D"), {"steps.2.wait_event": [
        "is required when wait_kind is 'until_event': the event type to wait for, such as support.resolved"]}),
    "until_event without a limit": (with_step(2, wait_kind="until_event", wait="PT0S", wait_event="support.resolved"),
                                    {"steps.2.wait_max": [
                                        "is required when wait_kind is 'until_event' (or set wait): how long to wait "
                                        "for the event at most, such as P7D"]}),
    "a wait in months": (with_step(0, wait="P1M"), {"steps.0.wait": [
        "'P1M' uses months or years, which have no fixed length; write days instead, such as P30D"]}),
    "a wait in words": (with_step(0, wait="7 days"), {"steps.0.wait": [
        "'7 days' is not an ISO 8601 duration such as P3D, PT2H or P1DT12H"]}),
    "a wait as a number": (with_step(0, wait=7), {"steps.0.wait": [
        "must be an ISO 8601 duration string such as P3D (3 days), PT2H (2 hours) or PT90S"]}),
    "condition to a missing step": (with_step(1, config={"field": "order_count", "op": ">=", "value": 2, "then": 7}),
                                    {"steps.1.config.then": ["points at position 7, and no step has that position"]}),
    "condition backwards": (with_step(1, config={"field": "order_count", "value": 2, "else": 1}),
                            {"steps.1.config.else": [
                                "goes back to step 1, making a loop (steps 1 → 2 → 1): a step runs at most once for a "
                                'customer, so the loop would stop there. End it there ("end") or point it at a step '
                                "outside the loop"]}),
    "condition value of the wrong type": (with_step(1, config={"field": "order_count", "value": "two", "then": 3}),
                                          {"steps.1.config.value": ["must be a whole number to compare with order_count"]}),
    "condition on an unknown fact": (with_step(1, config={"field": "age", "value": 2}), {"steps.1.config.field": [
        "must be one of 'bought', 'opened_step', 'clicked_step', 'did_event', 'order_count', 'total_spent', "
        "'days_since_last_order', 'points_balance', 'tier', 'latest_nps', 'latest_csat', 'latest_ces', "
        "'latest_review', 'health_band', 'marketing_consent', 'locale', 'ordered_since_enrollment' or "
        "'trigger_data'"]}),
    "a tier compared with a number": (with_step(1, config={"field": "tier", "value": 2}), {"steps.1.config.value": [
        "must be a string to compare with tier"]}),
    "ab_split joining before its variants": (
        with_step(1, kind="ab_split", config={"variants": [{"step": 3}, {"step": 4}], "then": 3}),
        {"steps.1.config.then": ["must be after every variant's step (the last is 4)"]}),
    "ab_split with two variants on one step": (
        with_step(1, kind="ab_split", config={"variants": [{"step": 3}, {"step": 3}]}),
        {"steps.1.config.variants.1.step": ["is also variants.0's step: each variant needs a step of its own"]}),
    "template with loops three deep": (with_template(2, body=(
        "{% for a in order.items %}{% for b in order.items %}{% for c in order.items %}x"
        "{% endfor %}{% endfor %}{% endfor %}")), {"steps.2.template.body": [
            "has {% for %} loops nested 3 deep; at most 2 (a loop inside a loop) are allowed, because every level "
            "multiplies the work and the size of each email"]}),
    "template looping over letters": (with_template(2, body="{% for c in order.item_titles %}{{ c }}{% endfor %}"),
                                      {"steps.2.template.body": [
                                          "loops over the letters of order.item_titles one by one: write "
                                          "{{ order.item_titles }} to show it, or loop over a list such as order.items"]}),
    "template padding to 20 MB": (with_template(2, body='{{ first_name|ljust:"20000000" }}'), {
        "steps.2.template.body": ['pads to more than 200 characters with |ljust:"20000000": use a number up to 200']}),
    "ab_split to a missing step": (with_step(1, kind="ab_split", config={"variants": [{"step": 3}, {"step": 9}]}),
                                   {"steps.1.config.variants.1.step": [
                                       "points at position 9, and no step has that position"]}),
    "ab_split with one variant": (with_step(1, kind="ab_split", config={"variants": [{"step": 3}]}),
                                  {"steps.1.config.variants": ["must have at least 2 item(s)"]}),
    "condition with a template": (with_step(1, template={"subject": "x", "body": "y"}), {"steps.1.template": [
        "must be left out: condition steps send nothing"]}),
    "email step without template": (with_step(2, template=None), {"steps.2.template": [
        "is required for an email step: give it a subject and a body"]}),
    "holdout above 100": (journey_json(holdout_percent=101), {"holdout_percent": ["must be at most 100"]}),
    "holdout below 0": (journey_json(holdout_percent=-1), {"holdout_percent": ["must be at least 0"]}),
    "duplicate positions": (with_step(3, position=3), {
        "steps.1.config.else": ["points at position 4, and no step has that position"],
        "steps.3.position": ["3 is already the position of steps.2"]}),
    "no steps": (journey_json(steps=[]), {"steps": ["must have at least 1 item(s)"]}),
    "template syntax error": (with_template(2, body="<p>{% if first_name %}Hi</p>"), {"steps.2.template.body": [
        "is not a valid template: Unclosed tag on line 1: 'if'. Looking for one of: elif, else, endif."]}),
    "template tag outside the sandbox": (with_template(2, body='{% include "email/layout.html" %}'),
                                         {"steps.2.template.body": [
                                             "is not a valid template: Invalid block tag on line 1: 'include'."]}),
    "misspelt placeholder": (with_template(0, subject="Hi {{ frist_name }}"), {"steps.0.template.subject": [
        "{{ frist_name }} is not a placeholder; "
        "use first_name, customer, store, unsubscribe_url, points_balance, tier, loyalty_url, discount_code or order"]}),
    "misspelt nested placeholder": (with_template(0, body="{{ order.numbr }}"), {"steps.0.template.body": [
        "{{ order.numbr }} is not a placeholder; order has number, total, item_titles or items"]}),
    "misspelt loop placeholder": (with_template(0, body="{% for item in order.items %}{{ item.name }}{% endfor %}"),
                                  {"steps.0.template.body": [
                                      "{{ item.name }} is not a placeholder; item has title, sku, quantity, "
                                      "image_url or url"]}),
    "bad translation": (with_template(0, translations={"de": {"subject": "Hallo {% endif %}"}}),
                        {"steps.0.template.translations.de.subject": [
                            "is not a valid template: Invalid block tag on line 1: 'endif'."]}),
    "translation locale": (with_template(0, translations={"German": {"subject": "Hallo"}}),
                           {"steps.0.template.translations.German": [
                               "is not a locale: use a language code such as de, or with a region such as fr-CA"]}),
    "filter locale": (journey_json(filters={"locales": ["de", "English"]}), {"filters.locales.1": [
        "is not a locale: use a language code such as de, or with a region such as fr-CA"]}),
    "empty subject": (with_template(0, subject=""), {"steps.0.template.subject": ["must not be empty"]}),
    "misspelt exit event": (journey_json(exit_events=["order.refund"]), {"exit_events.0": [
        "'order.refund' is not an event we record; use 'order.cancelled', 'order.delivered', 'order.fulfilled', "
        "'order.paid', 'order.placed' or 'order.refunded'"]}),
    "malformed exit event": (journey_json(exit_events=["Refunded"]), {"exit_events.0": [
        "'Refunded' is not an event type: use a dotted lower-case name such as order.refunded or support.contacted"]}),
    "repeated exit event": (journey_json(exit_events=["order.placed", "order.placed"]), {"exit_events.1": [
        "repeats exit_events.0 (order.placed)"]}),
    "duplicate template names": (journey_json(steps=[
        {"position": 1, "template": {"name": "Hello", "subject": "a", "body": "b"}},
        {"position": 2, "template": {"name": "Hello", "subject": "a", "body": "b"}}]), {"steps.1.template.name": [
            "is also the name of steps.0's template; each step's template needs its own name"]}),
    "filters out of range": (journey_json(filters={"min_total": "50", "max_total": "20", "skus": []}),
                             {"filters.max_total": ["must not be below min_total (50)"]}),
    "unknown filter": (journey_json(filters={"country": "DE"}), {"filters.country": [
        "is not a field of this request; check its spelling"]}),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_every_mistake_is_a_400_with_its_field_and_writes_nothing(case, api, tenant):
    body, fields = INVALID[case]

    response = api.post("/api/v1/journeys", body)

    assert response.status_code == 400, response.content
    assert response.json()["fields"] == fields
    assert response.json()["code"] == "validation_failed"
    first_field, [first_message, *_] = next(iter(fields.items()))
    more = f" (and {len(fields) - 1} more problem)" if len(fields) > 1 else ""
    assert response.json()["message"] == f"{first_field} {first_message}{more}"
    assert written(tenant) == (0, 0, 0)


def test_several_mistakes_are_reported_together(api, tenant):
    body = journey_json(holdout_percent=120, trigger="custom")
    body["steps"][0]["anchor"] = ""
    body["steps"][2]["template"]["body"] = "{{ order.totl }}"

    response = api.post("/api/v1/journeys", body)

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "custom_event_type": ["is required when trigger is 'custom': the event type that starts the journey, "
                              "such as support.resolved"],
        "holdout_percent": ["must be at most 100"],
        "steps.0.anchor": [f"is required when wait_kind is 'after_anchor': one of {ANCHORS}"],
        "steps.2.template.body": ["{{ order.totl }} is not a placeholder; order has number, total, item_titles "
                                  "or items"],
    }
    assert response.json()["message"] == (
        "custom_event_type is required when trigger is 'custom': the event type that starts the journey, such as "
        "support.resolved (and 3 more problems)")


def test_placeholders_a_later_feature_adds_may_wait_inside_an_if():
    body = with_template(0, body='{% if survey_url %}<a href="{{ survey_url }}">Answer</a>{% else %}Reply{% endif %}'
                                 "{% for item in order.items %}{{ forloop.counter }}. {{ item.title|upper }}{% endfor %}"
                                 "{% with n=order.number %}{{ n }}{% endwith %}")
    assert JourneyIn.model_validate(body).steps[0].template.body.startswith("{% if survey_url %}")


def test_what_a_template_may_name_depends_on_the_step_kind():
    body = with_template(0, body='<a href="{{ survey_url }}">Answer</a>')
    assert invalid_fields(body) == {"steps.0.template.body": [
        "{{ survey_url }} is not a placeholder; "
        "use first_name, customer, store, unsubscribe_url, points_balance, tier, loyalty_url, discount_code or order"]}
    body["steps"][0].update(kind="feedback_request", config={"survey": "ces"})
    assert JourneyIn.model_validate(body).steps[0].config == {"survey": "ces"}
    body["steps"][0]["template"] = None
    assert invalid_fields(body) == {"steps.0.template": [
        "is required for a feedback_request step: give it a subject and a body"]}


def invalid_fields(body):
    with pytest.raises(pydantic.ValidationError) as error:
        JourneyIn.model_validate(body)
    return pydantic_fields(error.value)


def test_the_sample_context_has_the_shape_emails_are_rendered_with(api, tenant):
    make_journey(tenant)
    with clock.frozen(NOON):
        paid_order(api, customer={"external_id": "c1", "first_name": "Ada"})
        process_events()
    delivery = Delivery.objects.for_tenant(tenant).select_related("customer__tenant", "enrollment__order",
                                                                  "step").get()

    def shape(value):
        if isinstance(value, dict):
            return {key: shape(item) for key, item in value.items()}
        if isinstance(value, list):
            return [shape(value[0])]
        return None

    assert shape(email_context(delivery)) == shape(SAMPLE_CONTEXT)


# --- round trip --------------------------------------------------------------------------

FULL = {
    "name": "Everything",
    "description": "Every field set to something other than its default.",
    "status": "paused",
    "trigger": "custom",
    "custom_event_type": "support.resolved",
    "filters": {"min_total": "20.00", "max_total": "500", "skus": ["BEANS-1KG"], "min_order_count": 1,
                "locales": ["de", "en-GB"], "consent": "required"},
    "entry_policy": "cooldown",
    "cooldown": "P30D",
    "replace_running": True,
    "exit_events": ["order.placed", "support.reopened"],
    "goal_event": "order.paid",
    "attribution_window": "P5D",
    "holdout_percent": 10,
    "message_class": "transactional",
    "priority": 7,
    "steps": [
        {"position": 1, "name": "Wait for the fix to stick", "wait_kind": "until_event", "wait": "PT0S",
         "wait_event": "support.confirmed", "wait_max": "P2DT12H", "kind": "email",
         "config": {"first_name_fallback": "friend"},
         "template": {"name": "Resolved · hello", "subject": "Sorted, {{ first_name }}?", "preheader": "One question",
                      "body": "<p>Is it sorted?</p>", "signature": "Jonas, support",
                      "translations": {"de": {"subject": "Erledigt, {{ first_name }}?"},
                                       "fr-CA": {"subject": "Réglé?", "body": "<p>Est-ce réglé?</p>"}}}},
        {"position": 2, "name": "Split", "wait_kind": "after_previous", "wait": "PT90S", "anchor": "",
         "wait_event": "", "wait_max": None, "kind": "ab_split",
         "config": {"variants": [{"step": 3, "weight": 3}, {"step": 5, "weight": 1}]}, "template": None},
        {"position": 3, "name": "Big spenders?", "wait_kind": "after_anchor", "wait": "P1D", "anchor": "paid_at",
         "wait_event": "", "wait_max": "P10D", "kind": "condition",
         "config": {"field": "total_spent", "op": ">=", "value": "100.00", "then": 5}, "template": None},
        {"position": 5, "name": "Points", "wait_kind": "after_previous", "wait": "P1W", "anchor": "",
         "wait_event": "", "wait_max": None, "kind": "award_points", "config": {"points": 50}, "template": None},
    ],
}


def test_export_import_into_another_store_and_export_again_gives_the_same_json(api, tenant, other_api, other_tenant):
    created = api.post("/api/v1/journeys", FULL)
    assert created.status_code == 201, created.content
    exported = api.get(f"/api/v1/journeys/{created.json()['id']}").json()
    assert created.json()["journey"] == exported

    again = other_api.post("/api/v1/journeys", exported)

    assert again.status_code == 201
    assert other_api.get(f"/api/v1/journeys/{again.json()['id']}").json() == exported
    assert again.json()["id"] != created.json()["id"]
    # Durations come back normalized; everything else as written.
    assert exported["steps"][1]["wait"] == "PT1M30S" and exported["steps"][3]["wait"] == "P7D"
    assert exported["steps"][0]["template"]["translations"] == FULL["steps"][0]["template"]["translations"]
    assert exported["filters"] == FULL["filters"]
    journey = Journey.objects.for_tenant(other_tenant).get()
    assert (journey.status, journey.cooldown, journey.holdout_percent) == ("paused", dt.timedelta(days=30), 10)


def test_an_export_is_valid_import_json(tenant):
    journey = make_journey(tenant, steps=[("P1D", "One"), ("P2D", "Two")], exit_events=["order.refunded"])

    exported = journey_export(journey)

    assert JourneyIn.model_validate(exported).name == journey.name
    assert [s["template"]["subject"] for s in exported["steps"]] == ["One", "Two"]
    assert [s["template"]["name"] for s in exported["steps"]] == [f"{journey.name} 1", f"{journey.name} 2"]


# --- create and update -------------------------------------------------------------------


def test_a_new_journey_is_a_draft_unless_the_json_says_otherwise(tenant):
    draft, created = journey_import(tenant=tenant, data=JourneyIn.model_validate(journey_json()))
    active, _ = journey_import(tenant=tenant, data=JourneyIn.model_validate(journey_json(name="B", status="active")))

    assert created is True
    assert (draft.status, active.status) == ("draft", "active")
    names = sorted(EmailTemplate.objects.for_tenant(tenant).filter(name__startswith="Check-in")
                   .values_list("name", flat=True))
    assert names == ["Check-in · step 1", "Check-in · step 3", "Check-in · step 4"]


def test_importing_the_same_json_again_changes_nothing(api, tenant):
    first = api.post("/api/v1/journeys", journey_json())
    journey = Journey.objects.for_tenant(tenant).get()
    before = (journey.updated_at, sorted(Step.objects.for_tenant(tenant).values_list("pk", "template_id")))

    again = api.post("/api/v1/journeys", journey_json())

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["created"] is False and again.json()["id"] == first.json()["id"]
    journey.refresh_from_db()
    assert (journey.updated_at, sorted(Step.objects.for_tenant(tenant).values_list("pk", "template_id"))) == before


def test_an_update_keeps_the_status_unless_told(tenant):
    journey, _ = journey_import(tenant=tenant, data=JourneyIn.model_validate(journey_json()))
    Journey.objects.for_tenant(tenant).filter(pk=journey.pk).update(status="active")

    journey_import(tenant=tenant, data=JourneyIn.model_validate(journey_json(description="New words")))
    assert Journey.objects.for_tenant(tenant).get().status == "active"
    journey_import(tenant=tenant, data=JourneyIn.model_validate(journey_json(status="paused")))
    assert Journey.objects.for_tenant(tenant).get().status == "paused"


def test_without_customers_in_it_an_update_replaces_steps_in_place(api, tenant):
    api.post("/api/v1/journeys", journey_json())
    kept = {s.position: (s.pk, s.template_id) for s in Step.objects.for_tenant(tenant)}
    body = journey_json(trigger="order_paid")
    body["steps"][0].update(wait="P10D", anchor="paid_at")
    body["steps"][3] = {"position": 6, "wait": "P2D", "template": {"subject": "New", "body": "<p>New</p>"}}
    body["steps"][1]["config"]["else"] = 6

    response = api.post("/api/v1/journeys", body)

    assert response.status_code == 200, response.content
    steps = {s.position: s for s in Step.objects.for_tenant(tenant).select_related("template")}
    assert sorted(steps) == [1, 2, 3, 6]
    assert (steps[1].pk, steps[1].template_id, steps[1].wait, steps[1].anchor) == (
        kept[1][0], kept[1][1], dt.timedelta(days=10), "paid_at")
    assert steps[6].template.subject == "New"
    # The removed step's template went with it; no orphans are left behind.
    assert sorted(EmailTemplate.objects.for_tenant(tenant).values_list("name", flat=True)) == [
        "Check-in · step 1", "Check-in · step 3", "Check-in · step 6"]
    assert response.json()["journey"]["trigger"] == "order_paid"


def enrolled(api, tenant, **journey_overrides):
    """The check-in journey, active, with one customer waiting for step 1."""
    api.post("/api/v1/journeys", journey_json(status="active", **journey_overrides))
    with clock.frozen(NOON):
        paid_order(api, external_id="O1", customer={"external_id": "c1", "first_name": "Ada", "locale": "de-DE"},
                   status="delivered", delivered_at="2026-11-23T08:30:00Z")
        process_events()
    assert Enrollment.objects.for_tenant(tenant).get().state == "active"
    return Delivery.objects.for_tenant(tenant).get()


def test_with_customers_in_it_content_may_change_and_pending_emails_use_it(api, tenant):
    delivery = enrolled(api, tenant)
    body = journey_json(description="Reworded", status="active")
    body["steps"][0]["name"] = "Day seven"
    body["steps"][0]["template"].update(subject="A week in, {{ first_name }}", signature="Jonas, support",
                                        translations={"de": {"subject": "Eine Woche, {{ first_name }}"}})

    response = api.post("/api/v1/journeys", body)

    assert response.status_code == 200, response.content
    assert Step.objects.for_tenant(tenant).get(position=1).template_id == delivery.step.template_id
    assert send_due(delivery.due_at) == ["sent"]
    assert mail.outbox[0].subject == "Eine Woche, Ada"  # the customer's locale is de-DE
    assert "Jonas, support" in mail.outbox[0].body


def test_with_customers_in_it_structure_cannot_change(api, tenant):
    delivery = enrolled(api, tenant)
    before = api.get(f"/api/v1/journeys/{delivery.journey_id}").json()
    body = journey_json(status="active", exit_events=["order.refunded"])
    body["steps"][0]["wait"] = "P3D"
    body["steps"][1]["config"].update(value=3, **{"else": 9})
    body["steps"].append({"position": 9, "template": {"subject": "More", "body": "<p>More</p>"}})
    del body["steps"][3]

    response = api.post("/api/v1/journeys", body)

    assert response.status_code == 409
    assert response.json() == {
        "code": "journeys.has_active_enrollments",
        "message": "1 customer is in 'Check-in' right now, so only its content can change (description, status, "
                   "step names and templates). To change its trigger, filters or steps, import it under a new "
                   "name and archive this one.",
        "fields": {
            "exit_events": ["cannot change while customers are in this journey"],
            "steps.0.wait": ["cannot change while customers are in this journey"],
            "steps.1.config": ["cannot change while customers are in this journey"],
            "steps.3": ["adds a step at position 9; steps cannot change while customers are in this journey"],
            "steps": ["removes the step at position 4; steps cannot change while customers are in this journey"],
        },
    }
    assert api.get(f"/api/v1/journeys/{delivery.journey_id}").json() == before


def test_a_step_with_send_history_is_not_removed(api, tenant):
    delivery = enrolled(api, tenant)
    assert send_due(delivery.due_at) == ["sent"]
    Enrollment.objects.for_tenant(tenant).update(state="completed")
    body = journey_json()
    del body["steps"][0]

    response = api.post("/api/v1/journeys", body)

    assert response.status_code == 409
    assert response.json()["code"] == "journeys.step_has_history"
    assert response.json()["fields"] == {
        "steps": ["the step at position 1 has 1 deliveries; removing it would delete that history"]}
    assert Step.objects.for_tenant(tenant).count() == 4


def test_a_template_name_used_by_another_journey_is_refused(api, tenant):
    other = make_journey(tenant, name="Other")
    body = with_template(2, name=f"{other.name} 1")

    response = api.post("/api/v1/journeys", body)

    assert response.status_code == 409
    assert response.json()["fields"] == {"steps.2.template.name": [
        "'Other 1' is already the name of another template in this store (used by journey 'Other'); "
        "give this one its own name"]}
    assert Journey.objects.for_tenant(tenant).count() == 1
    assert EmailTemplate.objects.for_tenant(tenant).get(name="Other 1").subject == "Day one"


def test_a_template_shared_with_another_journey_is_never_rewritten(tenant):
    journey, _ = journey_import(tenant=tenant, data=JourneyIn.model_validate(journey_json()))
    shared = Step.objects.for_tenant(tenant).get(journey=journey, position=1).template
    other = make_journey(tenant, name="Other", steps=[])
    Step.objects.for_tenant(tenant).create(tenant=tenant, journey=other, position=1, template=shared)

    journey_import(tenant=tenant, data=JourneyIn.model_validate(with_template(0, name="Own", subject="Changed")))

    shared.refresh_from_db()
    assert shared.subject == SUBJECT
    assert Step.objects.for_tenant(tenant).get(journey=journey, position=1).template.subject == "Changed"


# --- API -------------------------------------------------------------------------------


def test_list_shows_the_stores_journeys_with_counts(api, tenant):
    enrolled(api, tenant)
    api.post("/api/v1/journeys", journey_json(name="Second", trigger="order_refunded"))

    response = api.get("/api/v1/journeys")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["name"], r["status"], r["trigger"], r["steps"], r["library_key"]) for r in results] == [
        ("Check-in", "active", "order_delivered", 4, ""), ("Second", "draft", "order_refunded", 4, "")]
    assert results[0]["counts"] == {"active": 1, "completed": 0, "exited": 0, "holdout": 0, "rejected": 0}
    assert results[1]["counts"] == {"active": 0, "completed": 0, "exited": 0, "holdout": 0, "rejected": 0}
    assert response.json()["next"] is None


def test_list_pages_by_id(api, tenant, monkeypatch):
    monkeypatch.setattr(journeys_api, "PAGE_SIZE", 2)
    for name in ("A", "B", "C"):
        api.post("/api/v1/journeys", journey_json(name=name))

    first = api.get("/api/v1/journeys").json()
    second = api.get(first["next"].removeprefix("http://testserver")).json()

    assert [r["name"] for r in first["results"]] == ["A", "B"]
    assert first["next"] == f"http://testserver/api/v1/journeys?after={first['results'][1]['id']}"
    assert ([r["name"] for r in second["results"]], second["next"]) == (["C"], None)
    bad = api.get("/api/v1/journeys", {"after": "x"})
    assert (bad.status_code, bad.json()["fields"]) == (400, {"after": ["must be a whole number"]})


def test_detail_of_a_missing_journey_is_404(api, tenant):
    for journey_id in ("999999", "abc", "99999999999999999999"):
        response = api.get(f"/api/v1/journeys/{journey_id}")
        assert response.status_code == 404
        assert response.json() == {"code": "journeys.not_found", "message": f"no journey with id '{journey_id}'",
                                   "fields": {}}


def test_import_is_idempotent_with_a_key(api, tenant):
    first = api.post("/api/v1/journeys", journey_json(), headers={"Idempotency-Key": "j-1"})
    replay = api.post("/api/v1/journeys", journey_json(), headers={"Idempotency-Key": "j-1"})

    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.content == first.content


def test_import_needs_an_api_key(tenant):
    from rest_framework.test import APIClient

    response = APIClient().post("/api/v1/journeys", journey_json(), format="json")
    assert response.status_code == 401
    assert written(tenant) == (0, 0, 0)


# --- commands ----------------------------------------------------------------------------


@pytest.fixture
def run(capsys, monkeypatch):
    """A manage.py command as a shell runs it: its exit code, stdout and stderr."""
    from django.db import connections

    # run_from_argv closes every connection when the command ends; the test's transaction needs its own.
    monkeypatch.setattr(connections, "close_all", lambda: None)
    return lambda *argv: _run(capsys, *argv)


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = 0
    try:
        ManagementUtility(["manage.py", *argv]).execute()
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_import_journey_command_prints_the_id_and_whether_created(tenant, tmp_path, run):
    path = tmp_path / "journey.json"
    path.write_text(json.dumps(journey_json()))

    code, out, _ = run("import_journey", "acme", str(path))
    journey = Journey.objects.for_tenant(tenant).get()
    assert (code, json.loads(out)) == (0, {"id": journey.pk, "name": "Check-in", "created": True})

    code, out, _ = run("import_journey", "acme", str(path))
    assert (code, json.loads(out)) == (0, {"id": journey.pk, "name": "Check-in", "created": False})


def test_import_journey_command_lists_problems_by_field(tenant, tmp_path, run):
    path = tmp_path / "journey.json"
    body = copy.deepcopy(INVALID["duplicate positions"][0])
    body["holdout_percent"] = 101
    path.write_text(json.dumps(body))

    code, out, err = run("import_journey", "acme", str(path))

    assert code == 1 and out == ""
    assert err.splitlines() == [
        "holdout_percent: must be at most 100",
        "CommandError: the journey was not imported: 1 field(s) to fix",
    ]
    body["holdout_percent"] = 0
    path.write_text(json.dumps(body))
    code, _, err = run("import_journey", "acme", str(path))
    assert code == 1
    assert err.splitlines() == [
        "steps.1.config.else: points at position 4, and no step has that position",
        "steps.3.position: 3 is already the position of steps.2",
        "CommandError: the journey was not imported: 2 field(s) to fix",
    ]
    assert written(tenant) == (0, 0, 0)


def test_import_journey_command_reports_conflicts_bad_json_and_unknown_stores(api, tenant, tmp_path, run):
    enrolled(api, tenant)
    path = tmp_path / "journey.json"
    path.write_text(json.dumps(journey_json(trigger="order_paid")))

    code, _, err = run("import_journey", "acme", str(path))
    assert code == 1
    assert err.splitlines()[0] == "trigger: cannot change while customers are in this journey"
    assert err.splitlines()[1].startswith("CommandError: the journey was not imported: 1 customer is in 'Check-in'")

    path.write_text('{"name": ')
    assert run("import_journey", "acme", str(path))[2].strip() == (
        f"CommandError: {path}: not valid JSON: Expecting value at line 1, column 10")
    assert run("import_journey", "nope", str(path))[2].strip() == "CommandError: no tenant with slug 'nope'"
    assert run("import_journey", "acme", str(tmp_path / "missing.json"))[0] == 1


def test_export_journey_command_by_name_or_id(tenant, run):
    journey, _ = journey_import(tenant=tenant, data=JourneyIn.model_validate(journey_json()))

    code, by_name, _ = run("export_journey", "acme", "Check-in")
    _, by_id, _ = run("export_journey", "acme", str(journey.pk))

    assert code == 0
    assert json.loads(by_name) == json.loads(by_id) == journey_export(journey)
    code, _, err = run("export_journey", "acme", "Nope")
    assert (code, err.strip()) == (1, "CommandError: no journey named or numbered 'Nope' in acme")


def test_exported_file_imports_into_another_store(tenant, other_tenant, tmp_path, run):
    journey_import(tenant=tenant, data=JourneyIn.model_validate(FULL))
    _, exported, _ = run("export_journey", "acme", "Everything")
    path = tmp_path / "everything.json"
    path.write_text(exported)

    code, out, _ = run("import_journey", "globex", str(path))

    assert code == 0 and json.loads(out)["created"] is True
    assert journey_export(Journey.objects.for_tenant(other_tenant).get()) == json.loads(exported)


def test_an_imported_journey_runs(api, tenant):
    """Imported JSON drives the engine like any journey: the condition branches on the order count."""
    api.post("/api/v1/journeys", journey_json(status="active"))
    with clock.frozen(NOON):
        paid_order(api, external_id="O1", customer={"external_id": "c1", "first_name": "Ada", "locale": "en"},
                   status="delivered", delivered_at="2026-11-23T08:30:00Z",
                   lines=order_payload()["lines"][:1])
        process_events()

    for hours in range(72):
        send_due(at("2026-11-30T08:30:00+00:00") + dt.timedelta(hours=hours))

    # One order, so the condition (order_count >= 2) sends the customer to position 4.
    assert [m.subject for m in mail.outbox] == ["How is House beans 1 kg, Ada?", "A tip"]
    assert Enrollment.objects.for_tenant(tenant).get().state == "completed"
