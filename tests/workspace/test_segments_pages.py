"""The segment pages: a marketer builds a segment from rules and sees its live count and sample, adds
the built-ins, exports CSV; a viewer looks but changes and exports nothing; mistakes are a 400 that
says what to fix."""

import pytest
from django.urls import reverse

from journeys.models import Journey, Segment
from lifecycle import clock
from tests.journeys.helpers import process_events
from tests.journeys.test_engine import NOON, paid_order

pytestmark = pytest.mark.django_db


def url(name, **kwargs):
    return reverse(f"workspace:{name}", kwargs={"tenant": "acme", **kwargs})


def shoppers(api):
    with clock.frozen(NOON):
        for name, n in (("one", 1), ("two", 2), ("three", 3)):
            for i in range(n):
                paid_order(api, external_id=f"{name}-{i}", customer={"external_id": name,
                                                                     "email": f"{name}@example.com"})
        process_events()


def form(**rules):
    data = {"name": "Repeat buyers", "description": "", "match": "all"}
    for i in range(5):
        data.update({f"rule{i}_{k}": "" for k in ("field", "op", "value", "what_kind", "what", "when", "days",
                                                 "data", "step")})
    data.update(rules)
    return data


def test_a_marketer_builds_a_segment_and_sees_its_count_sample_and_csv(api, tenant, as_marketer):
    shoppers(api)
    response = as_marketer.post(url("segment_new"), form(rule0_field="order_count", rule0_op=">=", rule0_value="2"))
    assert response.status_code == 302
    segment = Segment.objects.for_tenant(tenant).get()
    assert (segment.match, segment.rules) == ("all", [{"field": "order_count", "op": ">=", "value": 2}])

    page = as_marketer.get(url("segment", segment_id=segment.pk)).content.decode()
    assert '<strong id="segment-count">2</strong> customers now: order count is at least 2.' in page
    assert "three@example.com" in page and "two@example.com" in page and "one@example.com" not in page
    listed = as_marketer.get(url("segments")).content.decode()
    assert '<td class="num">2</td>' in listed

    csv = b"".join(as_marketer.get(url("segment_export", segment_id=segment.pk)).streaming_content).decode()
    lines = csv.strip().splitlines()
    assert lines[0] == "external_id,email,first_name,last_name,order_count,total_spent,last_order_at"
    assert [line.split(",")[:2] + [line.split(",")[4]] for line in lines[1:]] == [
        ["two", "two@example.com", "2"], ["three", "three@example.com", "3"]]


BAD = {
    "no rule": ({}, "add at least one rule: what the customers have in common"),
    "a word for a number": ({"rule0_field": "order_count", "rule0_value": "two"}, "must be a whole number"),
    "bought nothing named": ({"rule0_field": "bought", "rule0_value": "yes"},
                             "name one of product, sku or collection: what the customer bought"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_segment_is_a_400_that_says_what_to_fix_and_writes_nothing(case, tenant, as_marketer):
    rules, message = BAD[case]
    response = as_marketer.post(url("segment_new"), form(**rules))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Segment.objects.for_tenant(tenant).exists()


def test_builtins_install_once_and_the_feature_one_needs_a_name(tenant, as_marketer):
    assert as_marketer.post(url("segment_builtin"), {"key": "at_risk"}).status_code == 302
    assert as_marketer.post(url("segment_builtin"), {"key": "underused_feature", "feature": ""}).status_code == 302
    assert as_marketer.post(url("segment_builtin"), {"key": "underused_feature", "feature": "export"}).status_code == 302
    assert as_marketer.post(url("segment_builtin"), {"key": "nonsense"}).status_code == 404
    assert sorted(Segment.objects.for_tenant(tenant).values_list("name", "builtin")) == [
        ("At risk", "at_risk"), ("Underused feature: export", "underused_feature")]
    page = as_marketer.get(url("segments")).content.decode()
    assert 'id="builtin-at_risk"><strong>At risk</strong>' in page and "added" in page


def test_a_viewer_looks_but_neither_changes_nor_exports(api, tenant, as_viewer):
    from journeys.segments import builtin_definition, segment_save

    segment = segment_save(tenant=tenant, data=builtin_definition("champions"))
    assert as_viewer.get(url("segment", segment_id=segment.pk)).status_code == 200
    assert as_viewer.post(url("segment_new"), form(rule0_field="order_count", rule0_value="1")).status_code == 403
    assert as_viewer.post(url("segment_delete", segment_id=segment.pk)).status_code == 403
    assert as_viewer.get(url("segment_export", segment_id=segment.pk)).status_code == 403
    assert Segment.objects.for_tenant(tenant).count() == 1


def test_a_segment_a_journey_uses_cannot_be_deleted(api, tenant, as_marketer):
    from journeys.segments import builtin_definition, segment_save

    segment = segment_save(tenant=tenant, data=builtin_definition("champions"))
    body = {"name": "Champions only", "trigger": "order_paid", "filters": {"segment": segment.pk},
            "steps": [{"position": 1, "template": {"subject": "Hi", "body": "<p>Hi</p>"}}]}
    assert api.post("/api/v1/journeys", body).status_code == 201
    response = as_marketer.post(url("segment_delete", segment_id=segment.pk), follow=True)
    assert "journeys use this segment: Champions only. Change them first" in response.content.decode()
    assert Segment.objects.for_tenant(tenant).filter(pk=segment.pk).exists()
    assert Journey.objects.for_tenant(tenant).get().filters == {"segment": segment.pk}


def test_the_builder_sets_a_segment_trigger_entry_filter_and_exit_and_says_them(api, tenant, as_marketer):
    from journeys.segments import builtin_definition, segment_save
    from tests.workspace.test_journey_builder import settings_post

    champions = segment_save(tenant=tenant, data=builtin_definition("champions"))
    at_risk = segment_save(tenant=tenant, data=builtin_definition("at_risk"))
    journey = Journey.objects.for_tenant(tenant).create(tenant=tenant, name="Rescue", trigger="order_paid")
    data = settings_post(journey, trigger="segment_entered", trigger_segment=str(at_risk.pk),
                         segment=str(at_risk.pk), exit_segment=str(champions.pk))
    response = as_marketer.post(url("journey_settings", journey_id=journey.pk), data)
    assert response.status_code == 302, response.context["settings_form"].errors
    journey.refresh_from_db()
    assert (journey.trigger, journey.trigger_config) == ("segment_entered", {"segment": at_risk.pk})
    assert journey.filters == {"segment": at_risk.pk, "exit_segment": champions.pk}
    page = as_marketer.get(url("journey", journey_id=journey.pk)).content.decode()
    assert ("When a customer enters the segment “At risk”, in the segment “At risk”, once per order. It stops when "
            "the customer is in the segment “Champions”.") in page

    data.update({"journey-trigger": "date", "journey-trigger_fact": "days_since_last_order",
                 "journey-trigger_days": ""})
    response = as_marketer.post(url("journey_settings", journey_id=journey.pk), data)
    assert response.status_code == 400
    assert "say how many days after the last order, such as 60" in response.content.decode()
    journey.refresh_from_db()
    assert journey.trigger == "segment_entered"


def test_the_dashboard_filters_its_customer_figures_by_a_segment(api, tenant, as_marketer, other_tenant):
    from journeys.segments import SegmentIn, segment_save

    with clock.frozen(NOON):
        shoppers(api)
    segment = segment_save(tenant=tenant, data=SegmentIn(name="Repeat", rules=[
        {"field": "order_count", "op": ">=", "value": 2}]))
    with clock.frozen(NOON):
        everyone = as_marketer.get(url("home") + "?range=30d")
        repeat = as_marketer.get(url("home") + f"?range=30d&segment={segment.pk}")
        foreign = segment_save(tenant=other_tenant, data=SegmentIn(name="B's", rules=[
            {"field": "order_count", "op": ">=", "value": 0}]))
        refused = as_marketer.get(url("home") + f"?range=30d&segment={foreign.pk}")
    assert '<span class="value" id="kpi-new-customers">3</span>' in everyone.content.decode()
    body = repeat.content.decode()
    assert '<span class="value" id="kpi-new-customers">2</span>' in body
    assert "of the 2 customers now in “Repeat”" in body
    assert refused.status_code == 400
    assert "That segment is not one of this store&#x27;s: choose one from the list." in refused.content.decode()
