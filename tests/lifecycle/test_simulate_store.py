"""simulate_store: a store with a known journey effect, and the dashboard's lift estimate recovering it."""

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from demo.simulation import Params, SimulationError, store_simulate
from journeys.models import Delivery, Enrollment
from lifecycle import clock
from lifecycle.aggregates import refresh_aggregates
from lifecycle.models import Customer, Event, Order
from loyalty.models import LedgerEntry, LoyaltyAccount
from workspace import metrics, metrics_journeys

pytestmark = pytest.mark.django_db


def whole_history(now: dt.datetime, days: int) -> metrics.Period:
    return metrics.Period(now - dt.timedelta(days=days + 2), now + dt.timedelta(days=1), dt.UTC)


def lift_of(tenant, result, journey):
    lifts = {lift.journey.pk: lift for lift in metrics_journeys.lifts(tenant, whole_history(result.now, 365),
                                                                        result.now)}
    return lifts[journey.pk]


@pytest.mark.parametrize("true_lift", [0.08, 0.0])
def test_the_dashboards_lift_interval_contains_the_true_lift(tenant, true_lift):
    result = store_simulate(tenant=tenant, params=Params(customers=2000, days=365, true_lift=true_lift, seed=5))
    with clock.frozen(result.now):
        nudge = lift_of(tenant, result, result.world.nudge)
        check_in = lift_of(tenant, result, result.world.check_in)
    assert nudge.verdict.enough, nudge.verdict.reason
    assert nudge.conversion.contains(true_lift), nudge.conversion
    assert nudge.conversion.half_width < 0.07
    # The dashboard counts exactly the enrollments the generator drew (windows closed), group by group.
    assert (nudge.treated.customers, nudge.treated.converted) == (result.tally.treatment,
                                                                  result.tally.treatment_converted)
    assert (nudge.holdout.customers, nudge.holdout.converted) == (result.tally.holdout, result.tally.holdout_converted)
    # The check-in journey does nothing: its interval straddles 0.
    assert check_in.conversion.contains(0.0), check_in.conversion


def test_a_simulated_store_is_consistent_with_the_apps_own_rules(tenant):
    result = store_simulate(tenant=tenant, params=Params(customers=400, days=200, true_lift=0.05, seed=9))
    customers = Customer.objects.for_tenant(tenant)
    assert customers.count() == result.tally.customers == 400
    assert Order.objects.for_tenant(tenant).count() == result.tally.orders
    # The aggregates the generator wrote are the ones order_ingest would keep.
    fields = ("order_count", "first_order_at", "last_order_at", "total_spent")
    before = list(customers.order_by("pk").values_list(*fields))
    refresh_aggregates(tenant, set(customers.values_list("pk", flat=True)))
    assert list(customers.order_by("pk").values_list(*fields)) == before
    # Every loyalty account's sums are its ledger's (manage.py check_ledgers).
    out = io.StringIO()
    call_command("check_ledgers", "--tenant", tenant.slug, "--no-progress", stdout=out)
    assert out.getvalue().strip().splitlines()[-1] == f"customers={LoyaltyAccount.objects.for_tenant(tenant).count()} mismatches=0"
    assert LedgerEntry.objects.for_tenant(tenant).exists()
    # Every order has its events, and the simulated history never starts a journey again.
    assert Event.objects.for_tenant(tenant).filter(type="order.placed").count() == result.tally.orders
    assert not Event.objects.for_tenant(tenant).filter(processed_at__isnull=True).exists()
    # The nudge: one enrollment per customer, held out about 20%, sends only to the treated group.
    enrollments = Enrollment.objects.for_tenant(tenant).filter(journey=result.world.nudge)
    assert enrollments.count() == 400
    assert 0.12 < enrollments.filter(state="holdout").count() / 400 < 0.28
    held = set(enrollments.filter(state="holdout").values_list("customer_id", flat=True))
    assert not Delivery.objects.for_tenant(tenant).filter(journey=result.world.nudge, customer_id__in=held).exists()
    states = set(Delivery.objects.for_tenant(tenant).values_list("state", flat=True))
    assert {"sent", "skipped", "pending"} <= states
    sent = Delivery.objects.for_tenant(tenant).filter(state="sent")
    assert sent.filter(opened_at__isnull=False).exists() and sent.filter(bounced_at__isnull=False).exists()
    assert not sent.filter(bounced_at__isnull=False, delivered_at__isnull=False).exists()
    assert not Order.objects.for_tenant(tenant).filter(placed_at__gt=result.now).exists()


def test_the_same_seed_gives_the_same_store_whichever_way_it_is_written(tenant, other_tenant):
    params = Params(customers=150, days=120, true_lift=0.1, seed=3)
    copied = store_simulate(tenant=tenant, params=params, method="copy")
    inserted = store_simulate(tenant=other_tenant, params=params, method="insert")
    assert copied.tally == inserted.tally
    assert copied.rows == inserted.rows

    def shape(t):
        return list(Order.objects.for_tenant(t).order_by("customer__external_id", "placed_at")
                    .values_list("customer__external_id", "total"))

    assert shape(tenant) == shape(other_tenant)


def test_a_different_seed_gives_a_different_store(tenant):
    first = store_simulate(tenant=tenant, params=Params(customers=150, days=120, true_lift=0.1, seed=3))
    second = store_simulate(tenant=tenant, params=Params(customers=150, days=120, true_lift=0.1, seed=4))
    assert first.tally != second.tally


@pytest.mark.django_db(transaction=True)
def test_several_jobs_write_the_same_customers_and_orders(tenant, other_tenant, monkeypatch):
    import demo.simulation as simulation

    monkeypatch.setattr(simulation, "JOB_BATCH", 60)  # 200 customers: four batches over two processes
    params = Params(customers=200, days=120, true_lift=0.1, seed=8)
    one = store_simulate(tenant=tenant, params=params)
    two = store_simulate(tenant=other_tenant, params=params, jobs=2)
    assert two.tally == one.tally
    assert two.rows["lifecycle.Order"] == one.rows["lifecycle.Order"] == Order.objects.for_tenant(other_tenant).count()


def test_the_command_prints_a_summary_and_a_progress_bar(tenant, capsys):
    out = io.StringIO()
    call_command("simulate_store", tenant.slug, "--customers", "120", "--days", "90", "--true-lift", "0.05",
                 "--seed", "2", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"Simulated 120 customers and {Order.objects.for_tenant(tenant).count()} orders (")
    assert lines[1] == ("True lift of 'Second order nudge': +0.050 (second order within 30 days: 0.20 held out, "
                        "0.25 treated).")
    assert lines[2].startswith("As drawn (enrollments whose window has closed): treated ")
    assert lines[3].startswith("Rows: ") and "Customer 120" in lines[3]
    assert "120/120" in capsys.readouterr().err  # tqdm, on stderr


@pytest.mark.parametrize(("args", "message"), [
    (["nope", "--customers", "10", "--true-lift", "0"], "No store with the slug 'nope' (stores: acme)."),
    (["acme", "--customers", "-5", "--true-lift", "0"], "--customers must be at least 1, not -5"),
    (["acme", "--customers", "10", "--days", "7", "--true-lift", "0"],
     "--days must be between 31 and 3650 (the nudge's window is 30 days), not 7"),
    (["acme", "--customers", "10", "--true-lift", "0.9"],
     "--true-lift is an absolute change in the probability of a second order within 30 days (base 0.20), so it "
     "must be between -0.20 and 0.80, not 0.9"),
])
def test_the_command_refuses_bad_input_and_writes_nothing(tenant, args, message):
    with pytest.raises(CommandError) as caught:
        call_command("simulate_store", *args, "--no-progress", stdout=io.StringIO())
    assert message in str(caught.value)
    assert Customer.objects.for_tenant(tenant).count() == 0
    assert Order.objects.for_tenant(tenant).count() == 0


def test_the_same_seed_twice_on_one_store_is_refused_before_writing(tenant):
    store_simulate(tenant=tenant, params=Params(customers=20, days=60, true_lift=0, seed=1))
    orders = Order.objects.for_tenant(tenant).count()
    with pytest.raises(SimulationError, match="already has the customers of a simulation with seed 1: pick another"):
        store_simulate(tenant=tenant, params=Params(customers=20, days=60, true_lift=0, seed=1))
    assert Order.objects.for_tenant(tenant).count() == orders


SQLITE_FIGURES = """
import datetime as dt, json
from django.contrib.auth import get_user_model
from django.test import Client
from lifecycle import clock
from lifecycle.models import Tenant
from workspace import metrics, metrics_journeys
from journeys.models import Journey
tenant = Tenant.objects.get(slug="demo")
now = clock.now()
period = metrics.Period(now - dt.timedelta(days=400), now + dt.timedelta(days=1), dt.UTC)
client = Client(HTTP_HOST="127.0.0.1")
client.force_login(get_user_model().objects.get(username="admin"))
pages = [client.get(f"/app/demo/{p}?range=365d").status_code
         for p in ("", "dashboard/journeys/", "dashboard/feedback/", "dashboard/programs/")]
print(json.dumps(figures(tenant, period, now) | {"pages": pages}))
"""


def figures(tenant, period, now) -> dict:
    """What the SQLite run and the PostgreSQL run must agree on (the same definition, run in both)."""
    from journeys.models import Journey

    nudge = Journey.objects.for_tenant(tenant).get(name="Second order nudge")
    lift = metrics_journeys.journey_lift(tenant, nudge, period, now)
    funnel = {f["journey"].name: [(s["sent"], s["delivered"], s["opened"], s["converted"], str(s["revenue"]))
                                  for s in f["steps"]] for f in metrics_journeys.journey_funnels(tenant, period)}
    overview = metrics.customer_metrics(tenant, period)
    return {"lift": [lift.treated.customers, lift.treated.converted, str(lift.treated.revenue.quantize(1)),
                     lift.holdout.customers, lift.holdout.converted],
            "funnel": funnel, "orders": overview["orders"], "revenue": str(overview["revenue"]),
            "repeat": overview["repeat_customers"], "median_days": overview["time_to_second"]["median_days"]}


@pytest.mark.slow
def test_the_demo_store_and_its_dashboards_on_sqlite_match_postgresql(tenant, tmp_path):
    """make run's path: seed_demo on SQLite (the INSERT writer, SQLite's date arithmetic in the lift's
    SQL), every dashboard page 200, and the same figures as the same simulation on PostgreSQL."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(LIFECYCLE_PROFILE="embedded", LIFECYCLE_VAR_DIR=str(tmp_path), PYTHONPATH=str(root))

    def manage(*args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    manage("migrate", "--noinput", "--skip-checks")
    assert "simulated orders of 300 customers" in manage("seed_demo", "--customers", "300", "--skip-checks")
    code = "from tests.lifecycle.test_simulate_store import figures\n" + SQLITE_FIGURES
    on_sqlite = json.loads(manage("shell", "-c", code).strip().splitlines()[-1])
    assert on_sqlite.pop("pages") == [200, 200, 200, 200]

    result = store_simulate(tenant=tenant, params=Params(customers=300, days=365, true_lift=0.10, seed=7))
    with clock.frozen(result.now):
        period = metrics.Period(result.now - dt.timedelta(days=400), result.now + dt.timedelta(days=1), dt.UTC)
        on_postgresql = json.loads(json.dumps(figures(tenant, period, result.now)))
    assert on_sqlite == on_postgresql
    assert on_sqlite["lift"][0] > 100 and on_sqlite["funnel"]["Second order nudge"][0][0] > 50
