import datetime as dt
import time
import zoneinfo

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from demo.simulation import Params, store_simulate
from journeys.abtests import lift_cuped
from lifecycle import clock
from lifecycle.tenants import tenant_create

DEMO_ZONE = "Europe/Berlin"


class _Rollback(Exception):
    pass


class Command(BaseCommand):
    help = ("Before and after CUPED: the 'Second order nudge' lift of a simulated store (the demo store's by default: "
            "3,000 customers, seed 7, true lift +10 points) with its plain interval (Newcombe, as the dashboard) and "
            "its interval adjusted for pre-period orders and spend. Writes into a throwaway store, rolled back.")

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=3000)
        parser.add_argument("--days", type=int, default=365)
        parser.add_argument("--true-lift", type=float, default=0.10)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--regulars", type=float, nargs="+", default=[0.0, 0.6],
                            help="How much the first basket tells about a second order (demo/simulation/generate.py): "
                                 "0 is the demo store as it is; one store is simulated per value.")

    def handle(self, *args, customers, days, true_lift, seed, regulars, **options):
        for value in regulars:
            params = Params(customers=customers, days=days, true_lift=true_lift, seed=seed, regulars=value)
            if params.problems():
                raise CommandError("; ".join(params.problems()))
        out = self.stdout
        out.write(f"{'regulars':>8} {'period':>8} {'treated':>8} {'held out':>8}  {'lift, 95% interval':<26}"
                  f"{'CUPED, 95% interval':<26}{'half-width, points':<20}{'narrower':>8}")
        for value in regulars:
            started = time.monotonic()
            try:
                with transaction.atomic():
                    self._one(Params(customers=customers, days=days, true_lift=true_lift, seed=seed, regulars=value))
                    raise _Rollback
            except _Rollback:
                pass
            out.write(f"{'':>8} (simulated, measured and rolled back in {time.monotonic() - started:.1f} s)")
        out.write(f"True lift: {100 * true_lift:+.1f} points. CUPED narrows the interval by the share of the goal's "
                  "variance that orders and spend before enrollment explain: nothing when they explain nothing.")

    def _one(self, params: Params) -> None:
        tenant, _ = tenant_create(slug=f"cuped-demo-{params.seed}", name="CUPED demo", time_zone=DEMO_ZONE,
                                  currency="EUR")
        result = store_simulate(tenant=tenant, params=params)
        zone = zoneinfo.ZoneInfo(DEMO_ZONE)
        today = result.now.astimezone(zone).date()
        until = dt.datetime.combine(today + dt.timedelta(days=1), dt.time.min, zone)
        with clock.frozen(result.now):
            for label, days in (("90 days", 90), ("365 days", 365)):
                since = dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time.min, zone)
                measured = lift_cuped(tenant, result.world.nudge, since, until, result.now)
                plain, cuped = measured.plain, measured.cuped
                if plain is None or cuped is None:
                    self.stdout.write(f"{params.regulars:>8.2f} {label:>8}  not enough customers in a group")
                    continue
                narrower = 1 - cuped.half_width / plain.half_width
                self.stdout.write(
                    f"{params.regulars:>8.2f} {label:>8} {measured.treated.n:>8} {measured.holdout.n:>8}  "
                    f"{_interval(plain):<26}{_interval(cuped):<26}"
                    f"{100 * plain.half_width:>6.2f} → {100 * cuped.half_width:<10.2f}{100 * narrower:>7.1f}%")


def _interval(difference) -> str:
    return (f"{100 * difference.estimate:+.1f} ({100 * difference.low:+.1f} .. {100 * difference.high:+.1f})")
