import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from lifecycle.csv_import import KINDS, FileRefused, csv_import
from lifecycle.models import Tenant
from lifecycle.tenancy import tenant_scope


class Command(BaseCommand):
    help = (
        "Import a store's customers or past orders from a CSV file (the columns of Settings → Import & export). "
        "The whole file or nothing: a rejected row writes nothing and is reported with its line and why. "
        "--dry-run says what an import would do and writes nothing. Rows are found by their external id, so a "
        "file imported twice changes nothing. Imported orders are history: they start no journeys."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("path", help="A .csv file (UTF-8), or - for standard input.")
        parser.add_argument("--dry-run", action="store_true", help="Check and count; write nothing.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, slug, kind, path, dry_run, no_progress, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no tenant with slug {slug!r}")
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            file = Path(path)
            if not file.is_file():
                raise CommandError(f"{path}: no such file")
            data = file.read_bytes()
        rows = max(data.count(b"\n") - 1, 0) + (0 if data.endswith(b"\n") else 1)
        progress = tqdm(total=rows, unit="row", desc=f"{'checking' if dry_run else 'importing'} {kind} into {slug}",
                        disable=no_progress, file=self.stderr._out)  # the stream itself: tqdm writes "\r" lines
        try:
            with tenant_scope(tenant):
                report = csv_import(tenant=tenant, kind=kind, data=data, dry_run=dry_run, by="manage.py import_csv",
                                    progress=progress.update)
        except FileRefused as exc:
            raise CommandError(exc.message) from exc
        finally:
            progress.close()
        for rejected in report.rejected:
            self.stderr.write(f"line {rejected.row}: {rejected.reason}")
        self.stdout.write(json.dumps({k: v for k, v in report.as_dict().items() if k != "rejected"}))
        if report.rejected:
            raise CommandError(f"{len(report.rejected)} row(s) rejected: nothing was imported. Fix them and run again.")
