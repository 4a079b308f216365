"""CUPED on pre-period orders and spend: on a simulated store whose first basket tells something about a
second order, the holdout lift's interval narrows and still covers the known true lift; on the demo store
as it is (nothing before enrollment predicts the goal) it stays about as wide. Arms of an A/B split get the
same adjustment (test_abtests.py)."""

import datetime as dt

import pytest

from demo.simulation import Params, store_simulate
from journeys.abtests import lift_cuped
from lifecycle import clock
from workspace import metrics, metrics_journeys

pytestmark = pytest.mark.django_db
TRUE_LIFT = 0.08


def measured(tenant, regulars: float):
    result = store_simulate(tenant=tenant, params=Params(customers=2000, days=365, true_lift=TRUE_LIFT, seed=5,
                                                         regulars=regulars))
    since, until = result.now - dt.timedelta(days=367), result.now + dt.timedelta(days=1)
    with clock.frozen(result.now):
        dashboard = {lift.journey.pk: lift for lift in metrics_journeys.lifts(
            tenant, metrics.Period(since, until, dt.UTC), result.now)}[result.world.nudge.pk]
        adjusted = lift_cuped(tenant, result.world.nudge, since, until, result.now)
    return result, dashboard, adjusted


def test_cuped_narrows_the_lift_interval_and_still_covers_the_true_lift(tenant):
    result, dashboard, adjusted = measured(tenant, regulars=1.0)
    # Before: exactly the dashboard's lift (same customers, same Newcombe interval).
    assert (adjusted.treated.n, int(adjusted.treated.y)) == (dashboard.treated.customers, dashboard.treated.converted)
    assert (adjusted.holdout.n, int(adjusted.holdout.y)) == (dashboard.holdout.customers, dashboard.holdout.converted)
    assert adjusted.plain == dashboard.conversion
    assert (adjusted.treated.n, adjusted.holdout.n) == (result.tally.treatment, result.tally.holdout)
    # After: narrower, around the same effect, and the truth still inside.
    assert adjusted.cuped.half_width < 0.95 * adjusted.plain.half_width, (adjusted.plain, adjusted.cuped)
    assert adjusted.cuped.contains(TRUE_LIFT) and adjusted.plain.contains(TRUE_LIFT)
    assert abs(adjusted.cuped.estimate - adjusted.plain.estimate) < adjusted.plain.half_width / 2


def test_when_the_past_predicts_nothing_cuped_changes_almost_nothing(tenant):
    _, dashboard, adjusted = measured(tenant, regulars=0.0)
    assert adjusted.plain == dashboard.conversion
    assert adjusted.cuped.contains(TRUE_LIFT)
    assert abs(adjusted.cuped.half_width / adjusted.plain.half_width - 1) < 0.03
