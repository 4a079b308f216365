"""Outcome buckets: the dashboards' settled figures equal the live join, whatever the period and however
often beat settles; nothing is counted twice, nothing crosses stores."""

import datetime as dt
import io
import json
import zoneinfo

import pytest
from django.core.management import call_command

from demo.simulation import Params, store_simulate
from journeys.models import Enrollment, Journey, OutcomeBucket
from journeys.rollups import GRACE, floor_bucket, outcomes_settle
from journeys.tasks import settle_outcomes
from lifecycle import clock
from workspace import metrics, metrics_journeys

pytestmark = pytest.mark.django_db

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def figures(tenant, now: dt.datetime) -> dict:
    """Every journey figure for a few periods: whole local days, an unaligned instant, a short one."""
    periods = {
        "90 local days": metrics.Period(
            dt.datetime.combine((now - dt.timedelta(days=90)).astimezone(BERLIN).date(), dt.time(), BERLIN),
            dt.datetime.combine(now.astimezone(BERLIN).date() + dt.timedelta(days=1), dt.time(), BERLIN), BERLIN),
        "365 unaligned": metrics.Period(now - dt.timedelta(days=365, minutes=7), now, dt.UTC),
        "a fortnight long ago": metrics.Period(now - dt.timedelta(days=200, hours=5), now - dt.timedelta(days=186),
                                               dt.UTC),
    }
    out = {}
    for name, period in periods.items():
        out[name] = {
            "lift": [(lift.journey.pk, lift.treated, lift.holdout, lift.maturing)
                     for lift in metrics_journeys.lifts(tenant, period, now)],
            "funnels": [(item["journey"].pk, [{k: v for k, v in row.items() if k != "step"} | {"step": row["step"].pk}
                                              for row in item["steps"]])
                        for item in metrics_journeys.journey_funnels(tenant, period)],
        }
    return out


@pytest.fixture
def store(tenant):
    result = store_simulate(tenant=tenant, params=Params(customers=500, days=240, true_lift=0.1, seed=11))
    return result


def test_settled_buckets_give_exactly_the_live_figures(tenant, store):
    now = store.now
    with clock.frozen(now):
        live = figures(tenant, now)
        assert not OutcomeBucket.objects.for_tenant(tenant).exists()
        out = io.StringIO()
        call_command("refresh_rollups", "--tenant", tenant.slug, "--no-progress", stdout=out)
        summary = json.loads(out.getvalue())
        settled = figures(tenant, now)
    assert summary["journeys"] == Journey.objects.for_tenant(tenant).count() >= 2
    assert summary["buckets"] == OutcomeBucket.objects.for_tenant(tenant).count() > 100
    # The sends still in their window were read from "open" buckets, refreshed at this same instant.
    assert OutcomeBucket.objects.for_tenant(tenant).filter(kind="open").count() > 10
    assert settled == live
    # Something real was compared: the nudge has both groups and sends with engagement.
    lifts = {pk: (treated, holdout) for pk, treated, holdout, _ in live["365 unaligned"]["lift"]}
    treated, holdout = lifts[store.world.nudge.pk]
    assert treated.customers > 100 and holdout.customers > 20 and treated.converted > 0
    # Each enrollment whose window closed before the horizon is in exactly one bucket.
    nudge = Journey.objects.for_tenant(tenant).get(pk=store.world.nudge.pk)
    horizon = floor_bucket(now - nudge.attribution_window - GRACE)
    assert nudge.outcomes_settled_until == horizon
    closed = Enrollment.objects.for_tenant(tenant).filter(
        journey=nudge, enrolled_at__lt=horizon,
        state__in=["active", "completed", "exited", "holdout"]).count()
    in_buckets = sum(OutcomeBucket.objects.for_tenant(tenant).filter(journey=nudge, kind="lift")
                     .values_list("count", flat=True))
    assert in_buckets == closed > 0


def test_beat_settles_a_little_at_a_time_and_never_twice(tenant, other_tenant, store):
    start = store.now
    with clock.frozen(start - dt.timedelta(days=60)):
        first = settle_outcomes()  # both stores' journeys, as beat runs it (the other store has none)
    assert first > 0
    assert not OutcomeBucket.all_tenants.filter(tenant=other_tenant).exists()
    assert set(OutcomeBucket.all_tenants.values_list("tenant_id", flat=True)) == {tenant.pk}
    settled = OutcomeBucket.all_tenants.exclude(kind="open")
    before = sorted(settled.values_list("pk", "count", "converted", "opened"))
    with clock.frozen(start - dt.timedelta(days=60)):
        settle_outcomes()  # nothing new has closed: the settled buckets stay as they are (the open ones refresh)
    assert sorted(settled.values_list("pk", "count", "converted", "opened")) == before
    later = start - dt.timedelta(days=60) + dt.timedelta(hours=1)
    with clock.frozen(later):
        settle_outcomes()
    for journey in Journey.objects.for_tenant(tenant):
        assert journey.outcomes_settled_until == floor_bucket(later - journey.attribution_window - GRACE)
    with clock.frozen(start):
        settle_outcomes()
        assert figures(tenant, start) == _live(tenant, start)


def _live(tenant, now):
    """The same figures with no bucket at all (everything joined live)."""
    from django.db import transaction

    with transaction.atomic():
        sid = transaction.savepoint()
        OutcomeBucket.objects.for_tenant(tenant).delete()
        Journey.objects.for_tenant(tenant).update(outcomes_settled_until=None)
        result = figures(tenant, now)
        transaction.savepoint_rollback(sid)
    return result


def test_a_rebuild_starts_over_and_lands_on_the_same_buckets(tenant, store):
    with clock.frozen(store.now):
        call_command("refresh_rollups", "--no-progress", stdout=io.StringIO())
        before = sorted(OutcomeBucket.objects.for_tenant(tenant).values_list(
            "journey_id", "kind", "step_id", "bucket", "held", "count", "converted", "revenue", "opened"))
        journey = Journey.objects.for_tenant(tenant).get(pk=store.world.nudge.pk)
        assert outcomes_settle(tenant=tenant, journey_id=journey.pk) == 0  # up to date: writes nothing
        call_command("refresh_rollups", "--rebuild", "--no-progress", stdout=io.StringIO())
        after = sorted(OutcomeBucket.objects.for_tenant(tenant).values_list(
            "journey_id", "kind", "step_id", "bucket", "held", "count", "converted", "revenue", "opened"))
    assert after == before and len(before) > 100


def test_a_journey_with_nothing_yet_is_settled_up_to_its_horizon_as_nothing(tenant):
    journey = Journey.objects.for_tenant(tenant).create(tenant=tenant, name="Quiet",
                                                        trigger=Journey.Trigger.ORDER_PAID,
                                                        attribution_window=dt.timedelta(days=7))
    now = dt.datetime(2026, 3, 1, 12, 7, tzinfo=dt.UTC)
    assert outcomes_settle(tenant=tenant, journey_id=journey.pk, now=now) == 0
    journey.refresh_from_db()
    assert journey.outcomes_settled_until == dt.datetime(2026, 2, 22, 11, 0, tzinfo=dt.UTC)
    assert not OutcomeBucket.objects.for_tenant(tenant).exists()


def test_changing_the_goal_or_window_forgets_the_buckets_and_figures_follow_the_new_window(tenant, store):
    from journeys.builder import journey_settings_update

    with clock.frozen(store.now):
        call_command("refresh_rollups", "--no-progress", stdout=io.StringIO())
        nudge = Journey.objects.for_tenant(tenant).get(pk=store.world.nudge.pk)
        other = Journey.objects.for_tenant(tenant).exclude(pk=nudge.pk).first()
        kept = OutcomeBucket.objects.for_tenant(tenant).filter(journey=other).count()
        # As a marketer would: paused, and nobody mid-journey (the simulation's last customers are let go).
        Journey.objects.for_tenant(tenant).filter(pk=nudge.pk).update(status=Journey.Status.PAUSED)
        Enrollment.objects.for_tenant(tenant).filter(journey=nudge, state="active").update(state="exited")
        journey_settings_update(tenant=tenant, journey_id=nudge.pk, values={"attribution_window": dt.timedelta(days=3)})
        nudge.refresh_from_db()
        assert nudge.outcomes_settled_until is None
        assert not OutcomeBucket.objects.for_tenant(tenant).filter(journey=nudge).exists()
        assert OutcomeBucket.objects.for_tenant(tenant).filter(journey=other).count() == kept > 0
        live = figures(tenant, store.now)
        settle_outcomes()
        assert OutcomeBucket.objects.for_tenant(tenant).filter(journey=nudge).exists()
        assert figures(tenant, store.now) == live
        # A change of words only keeps them.
        before = OutcomeBucket.objects.for_tenant(tenant).filter(journey=nudge).count()
        journey_settings_update(tenant=tenant, journey_id=nudge.pk, values={"description": "Nudge, reworded"})
        assert OutcomeBucket.objects.for_tenant(tenant).filter(journey=nudge).count() == before


def test_open_buckets_are_as_of_their_refresh_and_newer_sends_are_joined_live(tenant, store):
    from journeys.models import Delivery
    from journeys.rollups import outcomes_refresh_open

    now = store.now
    with clock.frozen(now):
        call_command("refresh_rollups", "--no-progress", stdout=io.StringIO())
        nudge = Journey.objects.for_tenant(tenant).get(pk=store.world.nudge.pk)
        assert nudge.outcomes_open_until == floor_bucket(now)
        period = metrics.Period(now - dt.timedelta(days=30), now + dt.timedelta(days=1), dt.UTC)

        def opened():
            (item,) = [f for f in metrics_journeys.journey_funnels(tenant, period) if f["journey"].pk == nudge.pk]
            return sum(row["opened"] for row in item["steps"]), sum(row["sent"] for row in item["steps"])

        before_opened, before_sent = opened()
        # An open heard after the refresh, of an email sent before it: shown at the next refresh.
        late = (Delivery.objects.for_tenant(tenant).filter(journey=nudge, state="sent", opened_at__isnull=True,
                                                           sent_at__gte=nudge.outcomes_settled_until).first())
        Delivery.objects.for_tenant(tenant).filter(pk=late.pk).update(opened_at=now)
        assert opened() == (before_opened, before_sent)
        outcomes_refresh_open(tenant=tenant, journey_id=nudge.pk, now=now)
        assert opened() == (before_opened + 1, before_sent)


def test_a_journeys_sent_emails_are_read_by_its_sent_index(tenant):
    """Deliveries have no index on journey_id alone (each is one more write per claimed row): reads
    by journey go through delivery_journey_sent_idx, which only a condition on sent_at lets them use."""
    from django.db import connection, transaction

    from journeys.rollups import sends
    from tests.journeys.helpers import make_journey

    if connection.vendor != "postgresql":
        pytest.skip("plans are PostgreSQL's")
    journey = make_journey(tenant)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = sends(tenant, journey).explain()
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'journeys_delivery' AND indexdef LIKE %s",
            ["%(journey_id)"])
        single = cursor.fetchall()
    assert single == []
    from lifecycle import citus

    if citus.enabled(connection):  # a shard this small is read by its (tenant_id, id) key; one shard, though
        assert "Task Count: 1" in plan, plan
        return
    assert "delivery_journey_sent_idx" in plan, plan
