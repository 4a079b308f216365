"""The audit log in the workspace: who changed what and when, with the before and after of each field,
searchable, exported as CSV, read-only, and nothing of it seen from another store."""

import csv
import datetime as dt
import html
import io
import json
import re
import zoneinfo
from decimal import Decimal

import pytest
from django.urls import reverse

from journeys.models import Journey, Step
from lifecycle.changes import field_changes
from lifecycle.models import Event
from lifecycle.timeline import event_append
from tests.journeys.helpers import make_journey
from workspace.builder_forms import StepForm

from .conftest import client_for
from .test_cross_tenant_pages import workspace_routes

pytestmark = pytest.mark.django_db

LOYALTY = {"enabled": "on", "points_per_unit": "2", "pending_days": "21", "first_order_bonus": "100",
           "review_bonus": "50", "birthday_bonus": "0", "event_bonuses_text": "newsletter.signed_up = 25",
           "tier_basis": "spend", "tier_downgrade": "never", "expiry_months": "12", "expiry_warning_days": "30"}


def url(tenant, name: str = "settings-audit", **kwargs) -> str:
    return reverse(f"workspace:{name}", kwargs={"tenant": tenant.slug, **kwargs})


def words(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def row_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="audit-(\d+)"', response.content.decode())]


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def store_event(tenant, type_: str, by: str, when: dt.datetime, **data) -> Event:
    return event_append(tenant=tenant, type=type_, occurred_at=when, data={**data, "by": by})


@pytest.fixture
def logged(tenant):
    """Three changes by two people on three days (UTC noon)."""
    return [store_event(tenant, "store.api_key_created", "olivia", dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC),
                        name="checkout", prefix="abc"),
            store_event(tenant, "store.member_removed", "mara", dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC),
                        user="sam", role="viewer"),
            store_event(tenant, "store.api_key_revoked", "olivia", dt.datetime(2026, 3, 3, 12, tzinfo=dt.UTC),
                        name="checkout", prefix="abc")]


def test_a_marketers_settings_change_shows_with_who_and_the_exact_before_and_after(as_marketer, tenant):
    assert as_marketer.post(url(tenant, "settings-loyalty"), LOYALTY).status_code == 302
    assert as_marketer.post(url(tenant, "settings-loyalty"), {**LOYALTY, "pending_days": "30"}).status_code == 302
    changed = Event.objects.for_tenant(tenant).get(type="store.loyalty_program_changed")
    assert changed.data == {"fields": ["pending_days"], "changes": {"pending_days": [21, 30]}, "by": "mara"}
    response = as_marketer.get(url(tenant))
    assert response.status_code == 200
    assert row_ids(response)[0] == changed.pk  # newest first
    row = re.search(rf'<tr id="audit-{changed.pk}">(.*?)</tr>', response.content.decode(), re.S).group(1)
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)))
    assert "mara" in text and "store.loyalty_program_changed" in text and "pending_days : 21 → 30" in text
    assert "append-only: nobody, not even an owner, can edit or delete a line" in words(response)


def test_a_journey_activation_shows_with_who(as_marketer, tenant):
    journey = make_journey(tenant, name="Welcome", trigger=Journey.Trigger.ORDER_DELIVERED,
                           status=Journey.Status.DRAFT, steps=(("P1D", "Hello"),))
    response = as_marketer.post(url(tenant, "journey_status", journey_id=journey.pk), {"action": "activate"})
    assert response.status_code == 302
    events = list(Event.objects.for_tenant(tenant).filter(type__startswith="store.").values_list("type", "data"))
    assert events == [("store.journey_activated", {"journey": "Welcome", "journey_id": journey.pk,
                                                   "changes": {"status": ["draft", "active"]}, "by": "mara"})]
    text = words(as_marketer.get(url(tenant)))
    assert "store.journey_activated" in text and "status : draft → active" in text and "mara" in text


def test_creating_duplicating_and_pausing_a_journey_are_recorded(as_marketer, tenant):
    as_marketer.post(url(tenant, "journey_new"), {"name": "Welcome", "trigger": "first_order"})
    journey = Journey.objects.for_tenant(tenant).get()
    as_marketer.post(url(tenant, "journey_duplicate", journey_id=journey.pk))
    copy = Journey.objects.for_tenant(tenant).exclude(pk=journey.pk).get()
    Journey.objects.for_tenant(tenant).filter(pk=journey.pk).update(status=Journey.Status.ACTIVE)
    as_marketer.post(url(tenant, "journey_status", journey_id=journey.pk), {"action": "pause"})
    as_marketer.post(url(tenant, "journey_status", journey_id=journey.pk), {"action": "archive"})
    events = list(Event.objects.for_tenant(tenant).filter(type__startswith="store.").order_by("pk")
                  .values_list("type", "data"))
    assert events == [
        ("store.journey_created", {"journey": "Welcome", "journey_id": journey.pk, "trigger": "first_order",
                                   "by": "mara"}),
        ("store.journey_created", {"journey": copy.name, "journey_id": copy.pk, "trigger": "first_order",
                                   "copied_from": "Welcome", "by": "mara"}),
        ("store.journey_paused", {"journey": "Welcome", "journey_id": journey.pk,
                                  "changes": {"status": ["active", "paused"]}, "by": "mara"}),
        ("store.journey_archived", {"journey": "Welcome", "journey_id": journey.pk,
                                    "changes": {"status": ["paused", "archived"]}, "by": "mara"})]


def test_journey_step_changes_are_recorded_once_each_with_who(as_marketer, tenant):
    journey = make_journey(tenant, name="Welcome", trigger=Journey.Trigger.ORDER_DELIVERED,
                           status=Journey.Status.DRAFT, steps=(("P1D", "Hello"), ("P2D", "Again")))
    first, second = Step.objects.for_tenant(tenant).filter(journey=journey).order_by("position")
    as_marketer.post(url(tenant, "journey_step_add", journey_id=journey.pk),
                     {"add-kind": "award_points", "add-wait_amount": "3", "add-wait_unit": "hours"})
    as_marketer.post(url(tenant, "journey_step_move", journey_id=journey.pk, step_id=second.pk), {"direction": "up"})
    as_marketer.post(url(tenant, "journey_step_remove", journey_id=journey.pk, step_id=first.pk))
    second.refresh_from_db()
    old_name = second.name
    form = {key: ("" if value is None else value) for key, value in StepForm.initial_for(second).items()}
    as_marketer.post(url(tenant, "journey_step", journey_id=journey.pk, step_id=second.pk),
                     {**form, "name": "Once more"})
    events = list(Event.objects.for_tenant(tenant).filter(type__startswith="store.").order_by("pk")
                  .values_list("type", "data__by"))
    assert events == [("store.journey_step_added", "mara"), ("store.journey_step_moved", "mara"),
                      ("store.journey_step_removed", "mara"), ("store.journey_step_changed", "mara")]
    changed = Event.objects.for_tenant(tenant).get(type="store.journey_step_changed")
    assert old_name != "Once more"
    assert changed.data["changes"] == {"name": [old_name, "Once more"]}
    assert f"name : {old_name or '(empty)'} → Once more" in words(as_marketer.get(url(tenant), {"what": "store.journey_step_changed"}))


def test_a_viewer_reads_the_log(as_viewer, tenant, logged):
    response = as_viewer.get(url(tenant))
    assert response.status_code == 200
    assert row_ids(response) == [e.pk for e in reversed(logged)]


def test_search_by_who_and_by_what_narrows_exactly(as_marketer, tenant, logged):
    assert row_ids(as_marketer.get(url(tenant), {"who": "olivia"})) == [logged[2].pk, logged[0].pk]
    assert row_ids(as_marketer.get(url(tenant), {"who": "mara"})) == [logged[1].pk]
    assert row_ids(as_marketer.get(url(tenant), {"what": "store.api_key_created"})) == [logged[0].pk]
    assert row_ids(as_marketer.get(url(tenant), {"who": "mara", "what": "store.api_key_created"})) == []
    assert row_ids(as_marketer.get(url(tenant), {"from": "2026-03-02", "to": "2026-03-02"})) == [logged[1].pk]
    assert row_ids(as_marketer.get(url(tenant), {"from": "2026-03-02"})) == [logged[2].pk, logged[1].pk]


def test_the_csv_has_the_header_and_exactly_the_filters_rows(as_marketer, tenant, logged):
    zone = zoneinfo.ZoneInfo(tenant.time_zone)
    rows = csv_rows(as_marketer.get(url(tenant), {"who": "olivia", "format": "csv"}))
    assert rows == [["when", "who", "what", "changes"],
                    [logged[2].occurred_at.astimezone(zone).isoformat(), "olivia", "store.api_key_revoked",
                     "name: checkout, prefix: abc"],
                    [logged[0].occurred_at.astimezone(zone).isoformat(), "olivia", "store.api_key_created",
                     "name: checkout, prefix: abc"]]
    assert csv_rows(as_marketer.get(url(tenant), {"what": "store.member_removed", "format": "csv"}))[1:] == [
        [logged[1].occurred_at.astimezone(zone).isoformat(), "mara", "store.member_removed", "role: viewer, user: sam"]]


@pytest.mark.parametrize(("params", "message"), [
    ({"from": "2026-13-01"}, "From '2026-13-01' is not a date: write it as YYYY-MM-DD"),
    ({"to": "yesterday", "format": "csv"}, "To 'yesterday' is not a date: write it as YYYY-MM-DD"),
    ({"from": "2026-03-05", "to": "2026-03-01"}, "The date range ends before it starts"),
    ({"what": "store.nothing"}, "What 'store.nothing' is not a kind of change this log records"),
])
def test_a_bad_search_is_400_with_a_message(as_marketer, tenant, logged, params, message):
    response = as_marketer.get(url(tenant), params)
    assert response.status_code == 400
    assert message in words(response)
    assert row_ids(response) == []


def test_another_stores_member_gets_404_and_sees_nothing(as_outsider, tenant, other_tenant, logged):
    for params in ({}, {"format": "csv"}):
        response = as_outsider.get(url(tenant), params)
        assert response.status_code == 404
        assert b"olivia" not in response.content and b"store.api_key" not in response.content
    own = as_outsider.get(url(other_tenant))
    assert own.status_code == 200 and row_ids(own) == []
    assert csv_rows(as_outsider.get(url(other_tenant), {"format": "csv"})) == [["when", "who", "what", "changes"]]


def test_nothing_edits_or_deletes_a_line(as_marketer, owner, tenant, logged):
    before = list(Event.objects.for_tenant(tenant).order_by("pk").values())
    for client in (as_marketer, client_for(owner)):
        for method in ("post", "put", "patch", "delete"):
            assert getattr(client, method)(url(tenant)).status_code == 405
    assert list(Event.objects.for_tenant(tenant).order_by("pk").values()) == before
    assert [name for name in workspace_routes() if "audit" in name] == ["workspace:settings-audit"]


def test_before_and_after_are_json_safe_and_a_secret_is_never_shown():
    class Before:
        cap, quiet, bonus, api_key = 16, dt.time(21, 0), Decimal("1.50"), "lc_old_secret"

    changes = field_changes(Before(), ["cap", "quiet", "bonus", "api_key"],
                            {"cap": 24, "quiet": dt.time(22, 30), "bonus": Decimal("2"), "api_key": "lc_new_secret"},
                            secret=["api_key"])
    assert changes == {"cap": [16, 24], "quiet": ["21:00:00", "22:30:00"], "bonus": ["1.50", "2"],
                       "api_key": ["(set)", "(changed)"]}
    assert "secret" not in json.dumps(changes)
