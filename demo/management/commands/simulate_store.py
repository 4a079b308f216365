import sys
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from demo.simulation import BASE_REPEAT, Params, SimulationError, store_simulate
from lifecycle.models import Tenant


class Command(BaseCommand):
    help = ("Fill a store with a simulated history (customers, orders, journeys with holdout groups, emails, "
            "answers, points, referrals) whose 'Second order nudge' journey has a known true effect.")

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="The store's slug.")
        parser.add_argument("--customers", type=int, required=True, help="How many customers (each has 1+ orders).")
        parser.add_argument("--days", type=int, default=365, help="How far back the history goes (31-3650).")
        parser.add_argument("--true-lift", type=float, required=True,
                            help=f"The nudge's true effect: the absolute change in the probability of a second "
                                 f"order within 30 days of the first (base {BASE_REPEAT}); 0.05 = +5 points.")
        parser.add_argument("--seed", type=int, default=1, help="Same seed, same store (default 1).")
        parser.add_argument("--regulars", type=float, default=0.0,
                            help="0-1: how much a customer's first basket tells about a second order (regulars "
                                 "buy more and come back more; the average and the true lift stay). Default 0.")
        parser.add_argument("--method", choices=["copy", "insert"],
                            help="How rows are written: COPY (PostgreSQL's default) or INSERT (everywhere else).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")

    def handle(self, *args, tenant, customers, days, true_lift, seed, regulars, method, no_progress, **options):
        store = Tenant.objects.filter(slug=tenant).first()
        if store is None:
            known = ", ".join(Tenant.objects.order_by("slug").values_list("slug", flat=True)[:20]) or "none yet"
            raise CommandError(f"No store with the slug {tenant!r} (stores: {known}). "
                               "Create one first: manage.py create_tenant")
        params = Params(customers=customers, days=days, true_lift=true_lift, seed=seed, regulars=regulars)
        if params.problems():
            raise CommandError("; ".join(params.problems()))
        started = time.monotonic()
        with tqdm(total=customers, unit="customer", file=sys.stderr, disable=no_progress,
                  desc=f"simulating {tenant}") as bar:
            try:
                result = store_simulate(tenant=store, params=params, method=method, progress=bar.update)
            except SimulationError as exc:
                raise CommandError(str(exc)) from exc
        tally, seconds = result.tally, time.monotonic() - started
        treated = tally.treatment_converted / tally.treatment if tally.treatment else 0
        held = tally.holdout_converted / tally.holdout if tally.holdout else 0
        out = self.stdout
        out.write(f"Simulated {tally.customers} customers and {tally.orders} orders "
                  f"({tally.revenue:.2f} {store.currency}) over {days} days for {store.slug} in {seconds:.1f} s.")
        out.write(f"True lift of '{result.world.nudge.name}': {true_lift:+.3f} (second order within 30 days: "
                  f"{BASE_REPEAT:.2f} held out, {BASE_REPEAT + true_lift:.2f} treated).")
        out.write(f"As drawn (enrollments whose window has closed): treated {tally.treatment_converted}/"
                  f"{tally.treatment} = {treated:.3f}, held out {tally.holdout_converted}/{tally.holdout} = "
                  f"{held:.3f}, difference {treated - held:+.3f}.")
        out.write("Rows: " + ", ".join(f"{label.split('.')[-1]} {n}" for label, n in result.rows.items()))
