import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from lifecycle import jsonbody
from lifecycle.bulk import BATCH_SIZE, orders_bulk_ingest
from lifecycle.models import Tenant


class Command(BaseCommand):
    help = (
        "Backfill order history from a JSON Lines file (one order per line, shaped like POST /api/v1/orders). "
        "Shows a progress bar; bad lines are reported with their line numbers and the rest still import. "
        "Imported history starts no journeys."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("path", help="A .jsonl file, or - for standard input.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, slug, path, no_progress, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no tenant with slug {slug!r}")
        if path == "-":
            stream, total_bytes = sys.stdin.buffer, None
        else:
            file = Path(path)
            if not file.is_file():
                raise CommandError(f"{path}: no such file")
            stream, total_bytes = file.open("rb"), file.stat().st_size
        totals = {"created": 0, "updated": 0, "unchanged": 0, "errors": 0}
        progress = tqdm(total=total_bytes, unit="B", unit_scale=True, desc=f"importing into {slug}",
                        disable=no_progress, file=sys.stderr)
        batch: list[tuple[int, object]] = []

        def flush() -> None:
            items = [item for _, item in batch]
            result = orders_bulk_ingest(tenant=tenant, items=items)
            for key in totals:
                totals[key] += getattr(result, key)
            for item in result.results:
                if item.result == "error":
                    line_no = batch[item.index][0]
                    self.stderr.write(f"line {line_no}: {item.error['message']}")
            batch.clear()

        with stream:
            for line_no, raw in enumerate(stream, start=1):
                progress.update(len(raw))
                if not raw.strip():
                    continue
                try:
                    batch.append((line_no, jsonbody.loads(raw)))  # bounded as the API's bodies are
                except jsonbody.JSONBodyError as exc:
                    totals["errors"] += 1
                    self.stderr.write(f"line {line_no}: not valid JSON ({exc.message})")
                    continue
                if len(batch) >= BATCH_SIZE:
                    flush()
            if batch:
                flush()
        progress.close()
        self.stdout.write(json.dumps(totals))
        if totals["errors"]:
            raise CommandError(f"{totals['errors']} line(s) could not be imported; the others were.")
