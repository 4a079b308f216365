"""The customer page's timeline and health read when things happened: a skipped step sits where it
was skipped (not at the future time it would have been sent), and the usual gap between orders is
worded for what it is (every day; orders on the same day give no usual gap)."""

import datetime as dt

import pytest

from journeys.models import Delivery
from lifecycle import clock
from lifecycle.models import Customer
from tests.factories import CustomerFactory, order_payload
from tests.journeys.helpers import at, make_journey, process_events
from workspace import timeline

pytestmark = pytest.mark.django_db

T0 = at("2026-11-02T09:00:00+00:00")
EXIT = at("2026-11-04T09:00:00+00:00")
NOW = at("2026-11-05T09:00:00+00:00")


def _order(api, external_id: str, when: dt.datetime):
    body = order_payload(external_id=external_id, number=f"#{external_id}", placed_at=when.isoformat(),
                         customer={"external_id": "ada-1", "email": "ada@example.com", "marketing_consent": True})
    with clock.frozen(when):
        assert api.post("/api/v1/orders", body).status_code == 201
        process_events()


def test_a_step_skipped_on_exit_sits_at_the_exit_not_at_its_future_due_time(api, tenant):
    make_journey(tenant, name="Nudge", steps=[("P10D", "Still thinking?")], exit_events=["order.placed"],
                 filters={"max_order_count": 1})
    _order(api, "O1", T0)  # enrolls: the nudge is due on day 10
    nudge = Delivery.objects.for_tenant(tenant).get(journey__name="Nudge")
    assert (nudge.state, nudge.due_at) == ("pending", T0 + dt.timedelta(days=10))
    _order(api, "O2", EXIT)  # the second order ends the journey: the nudge is skipped now
    nudge.refresh_from_db()
    assert nudge.state == "skipped" and nudge.due_at > NOW

    customer = Customer.objects.for_tenant(tenant).get(external_id="ada-1")
    with clock.frozen(NOW):
        items = timeline.timeline_page(tenant=tenant, customer=customer).items
    emails = [item for item in items if item.kind == "email"]
    assert [(item.at, item.state) for item in emails] == [(EXIT, "skipped")]
    # Newest first, and nothing from the future on top: the second order's own rows lead.
    assert max(item.at for item in items) <= NOW
    assert [item.kind for item in items][:1] != ["email"]
    assert [item.key for item in items] == sorted((item.key for item in items), reverse=True)


def _last_order_words(tenant, first: dt.datetime, last: dt.datetime, count: int) -> tuple[str, str]:
    customer = CustomerFactory(tenant=tenant, first_order_at=first, last_order_at=last, order_count=count)
    signal = next(s for s in timeline.health(tenant=tenant, customer=customer, now=NOW).signals
                  if s.name == "Last order")
    return signal.level, signal.words


def test_two_orders_on_the_same_day_give_no_usual_gap(tenant):
    level, words = _last_order_words(tenant, at("2026-11-01T08:00:00+00:00"), at("2026-11-01T14:00:00+00:00"), 2)
    assert words == ("3 days since the last order; its 2 orders came within a day of each other, "
                     "so no usual gap between orders yet.")
    assert level == timeline.UNKNOWN


def test_a_one_day_rhythm_reads_every_day_and_longer_ones_in_days(tenant):
    level, words = _last_order_words(tenant, at("2026-10-31T09:00:00+00:00"), at("2026-11-01T09:00:00+00:00"), 2)
    assert words == "4 days since the last order; usually every day (2 orders)."
    assert level == timeline.RED  # four times the usual gap
    level, words = _last_order_words(tenant, at("2026-10-01T09:00:00+00:00"), at("2026-10-31T09:00:00+00:00"), 3)
    assert words == "5 days since the last order; usually every 15 days (3 orders)."
    assert level == timeline.GREEN
