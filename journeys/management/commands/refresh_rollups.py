import json
import sys
import time

from django.core.management.base import BaseCommand
from tqdm import tqdm

from journeys.models import Journey
from journeys.rollups import journeys_to_settle, outcomes_refresh_open, outcomes_settle
from lifecycle.models import Tenant
from lifecycle.tenancy import system_scope, tenant_scope

from ._common import tenant_or_error


class Command(BaseCommand):
    help = (
        "Settle the dashboards' journey outcome buckets now: what every enrollment and email whose attribution "
        "window has closed came to (beat does this every five minutes). --rebuild starts each journey over, for "
        "history written with past timestamps (simulate_store, seed_scale, a restore). A progress bar on stderr; "
        'prints {"journeys": n, "buckets": n, "seconds": s}.'
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="SLUG", help="Only this store (default: every store).")
        parser.add_argument("--rebuild", action="store_true", help="Delete and settle again from the start.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")

    def handle(self, *args, tenant, rebuild, no_progress, **options):
        started = time.monotonic()
        only = tenant_or_error(tenant) if tenant else None
        with system_scope():
            if rebuild:
                journeys = Journey.all_tenants.filter(**({"tenant": only} if only else {}))
                todo = list(journeys.order_by("tenant_id", "pk").values_list("tenant_id", "pk"))
            else:
                todo = [(t, j) for t, j in journeys_to_settle() if only is None or t == only.pk]
            tenants = Tenant.objects.in_bulk({t for t, _ in todo})
        buckets = 0
        with tqdm(total=len(todo), unit="journey", file=sys.stderr, disable=no_progress) as bar:
            for tenant_id, journey_id in todo:
                with tenant_scope(tenant_id):
                    buckets += outcomes_settle(tenant=tenants[tenant_id], journey_id=journey_id, rebuild=rebuild)
                    buckets += outcomes_refresh_open(tenant=tenants[tenant_id], journey_id=journey_id)
                bar.update(1)
        self.stdout.write(json.dumps({"journeys": len(todo), "buckets": buckets,
                                      "seconds": round(time.monotonic() - started, 1)}))
