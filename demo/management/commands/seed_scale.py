import datetime as dt
import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from demo.scale_seed import REBUILD_INDEXES_FROM, STEPS_ORDER, SeedError, Sizes, store_seed_scale


class Command(BaseCommand):
    help = ("Fill one store with a big, consistent history at COPY speed (PostgreSQL only): customers, orders "
            "over two years with their lines and refunds, events, journeys with enrollments (10% held out) and "
            "deliveries in every state (some due now), survey answers, loyalty accounts and their ledger; then "
            "ANALYZE. Set-based SQL inside the database (demo/scale_seed.py): a million customers, five "
            "million orders and ten million deliveries take minutes. Deterministic: the same --seed and --now "
            "give the same rows. A store is seeded once: a second run on a store that has customers refuses "
            "(exit 1) and writes nothing. Progress on stderr, a JSON summary (rows per table, seconds per "
            "step) on stdout. Needs a superuser connection (foreign-key triggers are off during the load).")

    def add_arguments(self, parser):
        parser.add_argument("--tenant", default="scale", help="The store's slug, created if missing (default scale).")
        parser.add_argument("--customers", type=int, default=1_000_000)
        parser.add_argument("--orders", type=int, default=5_000_000)
        parser.add_argument("--deliveries", type=int, default=10_000_000)
        parser.add_argument("--neighbour-share", type=float, default=0.1,
                            help="A second store, <tenant>-neighbour, this fraction of the size (0: none; "
                                 "default 0.1), so every query must find its own store's rows among another's.")
        parser.add_argument("--seed", type=int, default=1, help="Same seed (and --now), same rows (default 1).")
        parser.add_argument("--now", help="The instant the history ends, ISO 8601 (default: now).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")

    def handle(self, *args, tenant, customers, orders, deliveries, neighbour_share, seed, now, no_progress,
               **options):
        if min(customers, orders, deliveries) < 1:
            raise CommandError("--customers, --orders and --deliveries must be at least 1")
        if not 0 <= neighbour_share <= 1:
            raise CommandError("--neighbour-share is a fraction between 0 and 1")
        try:
            instant = dt.datetime.fromisoformat(now) if now else None
        except ValueError as exc:
            raise CommandError(f"--now {now!r} is not an ISO 8601 date-time") from exc
        if instant is not None and instant.tzinfo is None:
            instant = instant.replace(tzinfo=dt.UTC)
        sizes = Sizes(customers, orders, deliveries)
        stores = 2 if neighbour_share > 0 else 1
        steps = len(STEPS_ORDER) * stores + 2 + (customers >= REBUILD_INDEXES_FROM)  # + queue, ANALYZE, + indexes
        started = time.monotonic()
        with tqdm(total=steps, unit="step", file=sys.stderr, disable=no_progress,
                  desc=f"seeding {tenant}") as bar:
            def step_done(name: str, rows: int, seconds: float) -> None:
                bar.set_postfix_str(f"{name}: {rows:,} in {seconds:.1f} s")
                bar.update(1)

            try:
                result = store_seed_scale(slug=tenant, sizes=sizes, seed=seed, now=instant,
                                          neighbour_share=neighbour_share, step_done=step_done)
            except SeedError as exc:
                raise CommandError(str(exc)) from exc
        summary = {"tenant": tenant, "tenant_id": result.tenant_id, "neighbour_id": result.neighbour_id,
                   "seed": seed, "sizes": {"customers": customers, "orders": orders, "deliveries": deliveries},
                   "rows": result.rows, "seconds": result.seconds,
                   "total_seconds": round(time.monotonic() - started, 1)}
        self.stdout.write(json.dumps(summary))
